"""The turbulence source: random incompressible initial states, coarse-graining that keeps the
divergence zero, disjoint seed ranges per split; with phiflow, tiny trajectories that are deterministic,
cached, incompressible and lose energy (no forcing), and the domain's clips and NetCDF output."""
import math
import sys

import numpy as np
import pytest

from sciffusion_domains.video import physics, turbulence
from sciffusion_domains.video.domain import VideoDomain

TINY = dict(length=2, frame_dt=0.05, substeps=1, spinup=0.0, chunk=2)  # one phiflow step: its overhead is ~1 s


def test_seed_ranges_of_the_splits_are_disjoint():
    seeds = {s: {turbulence.trajectory_seed(s, i) for i in (0, 1, 99_999)} for s in ("train", "val", "test")}
    assert not seeds["train"] & seeds["val"] and not seeds["val"] & seeds["test"] and not seeds["train"] & seeds["test"]
    assert turbulence.trajectory_seed("train", 0, seed=1) == 1_000_000
    with pytest.raises(ValueError, match="0..99999"):
        turbulence.trajectory_seed("train", 100_000)


def test_initial_states_are_incompressible_with_the_requested_energy_and_spectral_peak():
    v = turbulence.initial_velocity(3, 32, peak_wavenumber=4.0, energy=0.5)
    assert v.shape == (2, 32, 32) and np.abs(physics.divergence(v)).max() < 1e-10
    assert 0.5 * (v**2).sum(0).mean() == pytest.approx(0.5)
    k, e = physics.velocity_energy_spectrum(v)
    assert 2 <= np.argmax(e) <= 5  # E(k) ~ k^4 exp(-2 (k / 4)^2) peaks at k = 4 (one draw: near it)
    assert np.array_equal(v, turbulence.initial_velocity(3, 32, peak_wavenumber=4.0, energy=0.5))


def test_coarse_graining_averages_faces_and_keeps_the_divergence_zero():
    fine = turbulence.initial_velocity(0, 32, peak_wavenumber=6.0, energy=1.0)
    coarse = turbulence.coarse_grain(fine, 2)
    assert coarse.shape == (2, 16, 16) and np.abs(physics.divergence(coarse)).max() < 1e-10
    assert coarse[0, 0, 0] == pytest.approx(fine[0, :2, 0].mean())  # the two fine x-faces on a coarse one
    assert np.array_equal(turbulence.coarse_grain(fine, 1), fine)


def test_without_phiflow_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "phi", None)
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        turbulence.simulate([0], turbulence.Simulation(size=8, **TINY))


@pytest.fixture()
def phiflow():
    pytest.importorskip("phi", reason="phiflow is not installed: pip install 'sciffusion[video]' "
                        "(or pip install phiflow==3.4.0)")


@pytest.mark.slow
def test_trajectories_are_deterministic_cached_incompressible_and_decay(phiflow, tmp_path, monkeypatch):
    monkeypatch.setenv("SCIFFUSION_CACHE", str(tmp_path))
    sim = turbulence.Simulation(size=16, **TINY)
    first = turbulence.trajectories("train", 2, sim, progress=False)
    files = list((tmp_path / "video" / "turbulence").glob("train-16px-2x2-*.npy"))
    assert first.shape == (2, 2, 2, 16, 16) and first.dtype == np.float32 and len(files) == 1
    assert np.array_equal(turbulence.trajectories("train", 2, sim, progress=False), first)  # from the cache
    assert np.array_equal(turbulence.trajectories("train", 2, sim, cache=False, progress=False), first)
    # without spin-up the first frame is the seeded initial state (already divergence-free, so the
    # projection keeps it): the layout going into phiflow and coming out agree
    start = np.stack([turbulence.initial_velocity(turbulence.trajectory_seed("train", i), 16, peak_wavenumber=4.0,
                                                  energy=0.5) for i in range(2)])
    assert np.allclose(first[:, 0], start, atol=1e-5)
    # the solver's output is incompressible (CG to 1e-8) and, unforced, loses kinetic energy
    scale = np.abs(first).max() * 16 / (2 * math.pi)
    assert np.abs(physics.divergence(first)).max() < 1e-4 * scale
    energy = 0.5 * (first.astype(np.float64) ** 2).sum(axis=2).mean(axis=(-1, -2))
    assert (energy[:, 1] < energy[:, 0]).all() and not np.allclose(first[:, 1], first[:, 0], atol=1e-3)
    test = turbulence.trajectories("test", 1, sim, progress=False)
    assert not np.allclose(test[0], first[0]) and not np.allclose(test[0], first[1])


@pytest.mark.slow
def test_domain_clips_are_standardised_and_saved_as_netcdf(phiflow, tmp_path, monkeypatch):
    xr = pytest.importorskip("xarray")
    monkeypatch.setenv("SCIFFUSION_CACHE", str(tmp_path / "cache"))
    domain = VideoDomain(source="turbulence", size=16, frames=2, stride=1, train_trajectories=2, eval_trajectories=1,
                         simulation=TINY)
    assert domain.shape == (1, 2, 16, 16) and len(domain.dataset("train")) == 2
    batch = domain.collate([domain.dataset("train")[i] for i in range(2)])
    assert abs(float(batch.x.mean())) < 0.5 and batch.x.shape == (2, 1, 2, 16, 16)
    clips = domain.decode(batch.x, batch.space)
    files = domain.save(clips, tmp_path / "out")
    assert sorted(p.suffix for p in files if p.stem == "sample_00000") == [".gif", ".mp4", ".nc", ".npy"]
    stored = xr.open_dataset(tmp_path / "out" / "sample_00001.nc")
    assert np.allclose(stored["vorticity"].values, clips[1].values[0], atol=1e-6)
    assert np.allclose(stored["time"].values, [0.0, 0.05]) and stored["x"].values[1] == pytest.approx(2 * math.pi / 16)
    assert np.allclose(clips[1].values[0], domain.dataset("train")[1][0][0].numpy(), atol=1e-5)
    scores = domain.metrics(clips, clips)
    assert scores["spectrum_log_error"] == 0 and scores["enstrophy_ratio"] == pytest.approx(1)
    with pytest.raises(ValueError, match="domain.simulation.size"):
        VideoDomain(source="turbulence", simulation={"size": 8})
    with pytest.raises(ValueError, match="unknown turbulence field"):
        turbulence.as_field(np.zeros((1, 2, 4, 4)), "pressure")
