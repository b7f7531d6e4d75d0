"""Physical diagnostics of the video domain against exact answers: spectra of single Fourier modes and
Parseval's identity, the discrete divergence and vorticity of staggered fields, the autocorrelation of
a travelling wave, fair CRPS and RMSE per lead by hand, persistence, and the pooled field metrics."""
import math

import numpy as np
import pytest

from sciffusion_domains.video import physics
from sciffusion_domains.video.metrics import field_metrics

N = 16
X = np.arange(N) * 2 * math.pi / N  # grid points of the periodic square [0, 2 pi)


def test_a_single_fourier_mode_sits_in_its_shell_with_its_enstrophy_and_energy():
    y, x = np.meshgrid(X, X, indexing="ij")
    omega = np.stack([np.cos(3 * x), 2 * np.sin(3 * x + 4 * y)])  # |k| = 3, and |k| = 5 with amplitude 2
    k, z = physics.enstrophy_spectrum(omega)
    _, e = physics.energy_spectrum(omega)
    assert np.allclose(k[:6], np.arange(6))
    expected_z = np.zeros_like(z)
    expected_z[0, 3], expected_z[1, 5] = 0.25, 1.0  # 1/2 mean(omega^2) = 1/2 * a^2 / 2
    assert np.allclose(z, expected_z, atol=1e-12)
    assert np.allclose(e, expected_z / np.maximum(k, 1) ** 2, atol=1e-12)  # E(k) = Z(k) / k^2


def test_shells_add_up_to_half_the_mean_square_and_velocity_spectra_match_vorticity_ones():
    rng = np.random.default_rng(0)
    field = rng.normal(size=(3, N, N))
    assert np.allclose(physics.enstrophy_spectrum(field)[1].sum(-1), 0.5 * (field**2).mean(axis=(-1, -2)))
    # a constant velocity has all its energy at k = 0; a staggered half-cell shift leaves the spectrum alone
    _, e = physics.velocity_energy_spectrum(np.stack([np.full((N, N), 2.0), np.zeros((N, N))]))
    assert e[0] == pytest.approx(2.0) and np.allclose(e[1:], 0)
    y, x = np.meshgrid(X, X, indexing="ij")
    shifted = np.stack([np.cos(2 * (y + math.pi / N)), np.zeros((N, N))])  # u = cos(2y) sampled on its faces
    _, e = physics.velocity_energy_spectrum(shifted)
    assert e[2] == pytest.approx(0.25) and e.sum() == pytest.approx(0.25)


def test_discrete_divergence_and_vorticity_of_staggered_fields():
    rng = np.random.default_rng(1)
    psi = rng.normal(size=(2, N, N))
    velocity = physics.velocity_from_streamfunction(psi)
    assert np.abs(physics.divergence(velocity)).max() < 1e-11  # divergence-free by construction
    dx = 2 * math.pi / N
    laplacian = (sum(np.roll(psi, s, axis=a) for s in (1, -1) for a in (-1, -2)) - 4 * psi) / dx**2
    omega = physics.vorticity(velocity)
    # omega = dv/dx - du/dy = -laplacian(psi), both at the cell corners: the 5-point stencil exactly
    assert np.allclose(omega, -laplacian, atol=1e-10)
    u = np.broadcast_to(np.sin(X), (N, N))  # u = sin(x) on the x-faces, v = 0
    div = physics.divergence(np.stack([u, np.zeros((N, N))]))
    assert np.allclose(div, (np.sin(X + dx) - np.sin(X)) / dx)
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, H, W\]"):
        physics.divergence(np.zeros((3, N, N)))


def test_autocorrelation_of_a_travelling_wave_is_the_cosine_of_its_phase_lag():
    t = np.arange(10)
    wave = np.cos(2 * X[None, None, None, None, :] - 0.3 * t[None, None, :, None, None])
    wave = np.broadcast_to(wave, (2, 1, 10, 4, N))
    rho = physics.temporal_autocorrelation(wave, max_lag=5)
    assert np.allclose(rho, np.cos(0.3 * np.arange(6)), atol=1e-12)
    with pytest.raises(ValueError, match="max_lag"):
        physics.temporal_autocorrelation(wave, max_lag=10)


def test_fair_crps_rmse_and_persistence_per_lead_by_hand():
    truth = np.array([1.0, 3.0]).reshape(1, 1, 2, 1, 1)  # one clip, two leads, one pixel
    ensemble = np.array([[0.0, 0.0], [2.0, 1.0]]).reshape(2, 1, 1, 2, 1, 1)  # members {0, 2}, then {0, 1}
    # lead 0: E|X - y| = 1, E|X - X'| over distinct pairs = 2 -> 0; lead 1: 2.5 - 1/2 * 1 = 2
    assert np.allclose(physics.crps_per_lead(ensemble, truth), [0.0, 2.0])
    # the plain estimator averages the pair term over all M^2 pairs (so it is 1/2 and 2.25 here)
    assert np.allclose(physics.crps_per_lead(ensemble, truth, fair=False), [0.5, 2.25])
    assert np.allclose(physics.rmse_per_lead(ensemble, truth), [0.0, 2.5])
    with pytest.raises(ValueError, match="2 members"):
        physics.crps_per_lead(ensemble[:1], truth)
    given = np.arange(6.0).reshape(1, 1, 3, 1, 2)
    assert np.array_equal(physics.persistence(given, 4), np.broadcast_to(given[:, :, 2:], (1, 1, 4, 1, 2)))


def test_field_metrics_are_zero_for_a_clip_against_itself_and_see_a_doubled_amplitude():
    rng = np.random.default_rng(2)
    psi = rng.normal(size=(3, 5, N, N)).cumsum(axis=1)  # [N, T, H, W], correlated in time
    velocity = physics.velocity_from_streamfunction(psi).transpose(0, 2, 1, 3, 4)  # [N, 2, T, H, W]
    same = field_metrics(velocity, velocity, field="velocity")
    assert same["spectrum_log_error"] == 0 and same["enstrophy_ratio"] == pytest.approx(1)
    assert same["autocorrelation_error"] == 0 and same["divergence_rms"] < 1e-11
    omega = physics.vorticity(velocity.transpose(0, 2, 1, 3, 4))[:, None]
    doubled = field_metrics(2 * omega, omega, field="vorticity")
    assert doubled["spectrum_log_error"] == pytest.approx(math.log10(4))
    assert doubled["enstrophy_ratio"] == pytest.approx(4) and doubled["autocorrelation_error"] < 1e-12
    assert "divergence_rms" not in doubled
