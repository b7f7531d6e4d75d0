"""A turbulence model conditioned on a physical parameter, the viscosity: trajectories simulated at each of
``domain.viscosities`` carry ``log10(nu / 1e-2)`` as cond["vector"], the network embeds it, sampling is
told it (or takes a test clip's own), the "free" task gives no frames but keeps it, rollouts pass it to
every window and NetCDF outputs record it. With phiflow: tiny one-step trajectories (~1 s each)."""
import math
import warnings

import numpy as np
import pytest
import torch

from sciffusion.parameterization import EDMPrecond
from sciffusion.processes import make_process
from sciffusion_domains.video import turbulence
from sciffusion_domains.video.domain import VideoDomain
from sciffusion_domains.video.rollout import rollout

TINY = dict(length=3, frame_dt=0.05, substeps=1, spinup=0.0, chunk=2, viscosity=None)
NET = dict(channels=8, channel_mult=[1, 2], attention_levels=[1], temporal_levels=[1], head_channels=8)


@pytest.fixture()
def domain(tmp_path_factory, monkeypatch):
    pytest.importorskip("phi", reason="phiflow is not installed: pip install 'sciffusion[video]'")
    monkeypatch.setenv("SCIFFUSION_CACHE", str(tmp_path_factory.getbasetemp() / "viscosity_cache"))
    return VideoDomain(source="turbulence", size=16, frames=2, stride=1, train_trajectories=2, eval_trajectories=1,
                       simulation=TINY, viscosities=[1e-3, 1e-1], given_frames=1, given_tasks=["forecast", "free"])


def randomised(net: torch.nn.Module) -> torch.nn.Module:
    """The network with its zero-initialised layers (output, adaLN) made random, so that every input,
    the condition included, changes its output."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(0, 0.2)
    return net


def test_the_viscosity_vector_is_its_log_ratio_to_1e_2():
    assert turbulence.viscosity_vector(1e-2) == [0.0]
    assert turbulence.viscosity_vector(1e-3) == pytest.approx([-1.0])
    assert turbulence.viscosity_vector(3e-2) == pytest.approx([math.log10(3)])
    with pytest.raises(ValueError, match="viscosity must be > 0"):
        turbulence.viscosity_vector(0.0)
    for nu in (1e-3, 3e-3, 5.5e-3, 3e-2):  # back from the float32 vector a model is given, as the user wrote it
        assert turbulence.viscosity_of(torch.tensor(turbulence.viscosity_vector(nu), dtype=torch.float32)) == nu


def test_bad_viscosity_options_are_named():
    with pytest.raises(ValueError, match="set domain.simulation.viscosity=null"):
        VideoDomain(source="turbulence", viscosities=[1e-3, 1e-2], simulation={"viscosity": 1e-3})
    with pytest.raises(ValueError, match="needs domain.viscosities"):
        VideoDomain(source="turbulence", simulation={"viscosity": None})
    with pytest.raises(ValueError, match="distinct viscosities > 0"):
        VideoDomain(source="turbulence", viscosities=[1e-3, 1e-3], simulation={"viscosity": None})
    with pytest.raises(ValueError, match="is for source=turbulence"):
        VideoDomain(source="moving_digits", viscosities=[1e-3])
    with pytest.raises(ValueError, match="was not trained on several viscosities"):
        VideoDomain(source="moving_digits", size=32, frames=4, given_frames=1).condition(
            1, input=None, unconditional=True, viscosity=1e-3)


def test_clips_carry_the_viscosity_they_were_simulated_at(domain):
    train = domain.dataset("train")
    assert len(train) == 2 * 2 * 2  # 2 viscosities x 2 trajectories x 2 clips of 2 frames in 3
    vectors = [float(train[i][1][0]) for i in range(len(train))]
    assert vectors == pytest.approx([-1.0] * 4 + [1.0] * 4)
    # the same initial states at both viscosities: the first frames agree, the viscous one then loses
    # more enstrophy
    weak, strong = train[0][0], train[4][0]
    assert torch.allclose(weak[:, 0], strong[:, 0], atol=1e-5)
    assert float((strong[:, 1] ** 2).mean()) < 0.95 * float((weak[:, 1] ** 2).mean())
    batch = domain.collate([train[i] for i in (0, 4, 5)])
    assert batch.cond["vector"][:, 0].tolist() == pytest.approx([-1.0, 1.0, 1.0])
    assert "label" not in batch.cond
    net = randomised(domain.network(unet=NET))
    t = torch.full((3,), 0.5)
    out = net(batch.x, t, batch.space, batch.cond)
    other = net(batch.x, t, batch.space, {**batch.cond, "vector": -batch.cond["vector"]})
    assert not torch.allclose(out, other, atol=1e-4)  # the viscosity reaches the output
    dropped = {**batch.cond, "drop": torch.ones(3, dtype=torch.bool)}
    assert torch.allclose(net(batch.x, t, batch.space, dropped),
                          net(batch.x, t, batch.space, {**dropped, "vector": -batch.cond["vector"]}))
    dit = randomised(domain.network(kind="dit", dit=dict(patch_size=8, frame_patch_size=2, width=32, depth=1,
                                                         num_heads=2)))  # the other network kind embeds it too
    assert not torch.allclose(dit(batch.x, t, batch.space, batch.cond),
                              dit(batch.x, t, batch.space, {**batch.cond, "vector": -batch.cond["vector"]}), atol=1e-4)
    with pytest.raises(ValueError, match="vector_dim is set by the domain"):
        domain.network(unet={**NET, "vector_dim": 2})


def test_sampling_is_told_the_viscosity_or_takes_the_test_clips_own(domain, tmp_path):
    cond = domain.condition(3, input="test:1")  # test clip 1: the first viscosity's trajectory
    assert cond["vector"].tolist() == [[-1.0]] * 3 and cond["frame_mask"][:, 0].all()
    assert domain.condition(2, input="test:2")["vector"][:, 0].tolist() == pytest.approx([1.0] * 2)
    assert domain.condition(2, input="test:2", viscosity=1e-2)["vector"].tolist() == [[0.0]] * 2
    free = domain.condition(2, task="free", viscosity=1e-2)
    assert not free["frame_mask"].any() and free["vector"].shape == (2, 1)
    np.save(tmp_path / "clip.npy", domain.dataset("test")[0][0].numpy())
    with pytest.raises(ValueError, match="pass cond.viscosity=NU"):
        domain.condition(2, input=str(tmp_path / "clip.npy"))
    with pytest.raises(ValueError, match="pass cond.viscosity=NU"):
        domain.condition(2, task="free")
    with pytest.raises(ValueError, match="gives no frames"):
        domain.condition(2, task="free", input="test:0", viscosity=1e-2)
    with pytest.raises(ValueError, match="use cond.task=free"):
        domain.condition(2, unconditional=True, viscosity=1e-2)
    assert domain.condition(2, unconditional=True) == {}
    with pytest.warns(UserWarning, match="outside the trained range"):
        domain.condition(1, task="free", viscosity=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        domain.condition(1, task="free", viscosity=5e-3)  # inside the range: no warning


def test_rollouts_pass_the_viscosity_and_outputs_record_it(domain, tmp_path):
    xr = pytest.importorskip("xarray")
    process = make_process("edm")
    denoiser = EDMPrecond(randomised(domain.network(unet=NET)), process).eval()
    given = domain.dataset("test")[0][0][None, :, :1].repeat(2, 1, 1, 1, 1)  # data units
    clips = {nu: rollout(denoiser, process, domain, given, frames=3, steps=2, sampler="euler", seed=0,
                         cond={"vector": domain.condition(2, task="free", viscosity=nu)["vector"]})
             for nu in (1e-3, 1e-1)}
    assert clips[1e-3].shape == (2, 1, 3, 16, 16) and torch.equal(clips[1e-3][:, :, :1], given)
    assert not torch.allclose(clips[1e-3], clips[1e-1])
    cond = {"vector": domain.condition(2, task="free", viscosity=3e-2)["vector"]}
    decoded = domain.decode(domain.encode(clips[1e-3][:, :, :2]), None, cond)
    assert decoded[0].viscosity == pytest.approx(3e-2)
    domain.formats = ("nc",)
    domain.save(decoded, tmp_path)
    assert xr.open_dataset(tmp_path / "sample_00000.nc").attrs["viscosity"] == pytest.approx(3e-2)


@pytest.mark.slow
def test_the_experiment_trains_and_samples_free_clips_at_a_viscosity_through_the_cli(domain, tmp_path):
    """experiment=turbulence_viscosity_cpu (shrunk to the tiny trajectories above) trains 2 steps and
    ``cond.task=free cond.viscosity=NU`` samples clips whose NetCDF files record NU."""
    xr = pytest.importorskip("xarray")
    import sciffusion
    from sciffusion.testing import run_app

    tiny = ["domain.size=16", "domain.frames=2", "domain.stride=1", "domain.given_frames=1",
            "domain.train_trajectories=2", "domain.eval_trajectories=1", "domain.viscosities=[1e-3,1e-1]",
            "domain.simulation.length=3", "domain.simulation.frame_dt=0.05", "domain.simulation.substeps=1",
            "domain.simulation.spinup=0.0", "domain.simulation.chunk=2", "network.unet.channel_mult=[1,2]",
            "network.unet.attention_levels=[1]", "network.unet.temporal_levels=[1]"]
    run_app("train", "experiment=turbulence_viscosity_cpu", *tiny, "train.steps=2", "train.batch_size=4",
            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # the fixture's $SCIFFUSION_CACHE: nothing simulated
    model = sciffusion.load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert model.domain.viscosities == (1e-3, 1e-1) and model.domain.given_tasks == ("forecast", "free")
    clips = model.sample(2, steps=2, cond={"task": "free", "viscosity": 1e-2}, progress=False, verbose=False)
    model.save(clips, tmp_path / "free")
    assert xr.open_dataset(tmp_path / "free" / "sample_00001.nc").attrs["viscosity"] == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="pass cond.viscosity=NU"):
        model.sample(1, steps=2, cond={"task": "free"}, progress=False, verbose=False)
