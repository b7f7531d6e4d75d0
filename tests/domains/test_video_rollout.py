"""Autoregressive rollout past the model's window with tiny untrained models: shapes, the given frames
kept exactly, reproducible under a seed, by conditioning (a forecaster) and by inpainting (any model)."""
import pytest
import torch

from sciffusion.parameterization import EDMPrecond
from sciffusion.processes import make_process
from sciffusion_domains.video.domain import VideoDomain
from sciffusion_domains.video.rollout import rollout

TINY = dict(size=16, frames=4, train_clips=8, eval_clips=4)
UNET = dict(channels=8, channel_mult=[1, 2], attention_levels=[1], head_channels=8)


def parts(**options):
    domain = VideoDomain(**TINY, **options)
    torch.manual_seed(0)
    net = domain.network(unet=UNET)
    for p in net.parameters():  # an untrained UNet outputs zeros; random weights make windows differ
        torch.nn.init.normal_(p, std=0.05)
    process = make_process("edm")
    return domain, EDMPrecond(net, process).eval(), process


@pytest.mark.parametrize("options, method", [({"given_frames": 2}, None), ({}, "replace")])
def test_rollout_keeps_the_given_frames_and_is_reproducible(options, method):
    domain, denoiser, process = parts(**options)
    start = torch.stack([domain.dataset("test")[i][0] for i in range(2)])[:, :, :2]  # [2, 1, 2, 16, 16]
    kwargs = dict(frames=7, steps=2, sampler="euler", **({"method": method} if method else {}))
    clips = rollout(denoiser, process, domain, start, seed=3, **kwargs)
    assert clips.shape == (2, 1, 7, 16, 16)  # 2 given + 3 windows of 2 new frames, cut to 7
    assert torch.equal(clips[:, :, :2], start)
    assert torch.isfinite(clips).all() and not torch.allclose(clips[:, :, 2:], clips[:, :, 1:2].expand(-1, -1, 5, -1, -1))
    assert torch.equal(rollout(denoiser, process, domain, start, seed=3, **kwargs), clips)
    assert not torch.equal(rollout(denoiser, process, domain, start, seed=4, **kwargs), clips)


def test_rollout_checks_its_given_frames():
    domain, denoiser, process = parts(given_frames=2)
    start = torch.zeros(1, 1, 3, 16, 16)
    with pytest.raises(ValueError, match="trained on 2 given frames"):
        rollout(denoiser, process, domain, start, frames=6)
    free, denoiser, process = parts()
    with pytest.raises(ValueError, match="model's window"):
        rollout(denoiser, process, free, torch.zeros(1, 1, 4, 16, 16), frames=6)
    with pytest.raises(ValueError, match="new_frames must be in 1..2"):
        rollout(denoiser, process, free, torch.zeros(1, 1, 2, 16, 16), frames=6, new_frames=3)
    with pytest.raises(ValueError, match=r"\[B, C, k, H, W\]"):
        rollout(denoiser, process, free, torch.zeros(1, 1, 2, 8, 8), frames=6)


def test_rollout_with_fewer_new_frames_a_window_keeps_the_first_of_each():
    domain, denoiser, process = parts(given_frames=2)
    start = torch.stack([domain.dataset("test")[i][0] for i in range(2)])[:, :, :2]
    kwargs = dict(steps=2, sampler="euler", seed=5)
    one_window = rollout(denoiser, process, domain, start, frames=4, **kwargs)  # 2 given + 2 new
    strided = rollout(denoiser, process, domain, start, frames=5, new_frames=1, **kwargs)  # 3 windows of 1
    assert strided.shape == (2, 1, 5, 16, 16) and torch.equal(strided[:, :, :2], start)
    # window 0 is the same draw either way; a stride of 1 keeps only its first new frame
    assert torch.equal(strided[:, :, 2], one_window[:, :, 2])
    assert not torch.allclose(strided[:, :, 3], one_window[:, :, 3])


@pytest.mark.parametrize("options", [{"given_frames": 2}, {}])
def test_a_rollout_started_at_low_noise_continues_the_last_known_frame(options):
    domain, denoiser, process = parts(**options)
    start = torch.stack([domain.dataset("test")[i][0] for i in range(2)])[:, :, :2]
    kwargs = dict(frames=6, steps=3, sampler="heun", seed=1)
    last = start[:, :, 1:2].expand(-1, -1, 4, -1, -1)
    # from scaled sigma 0.01 the model can change little: every new frame is the last given one, nearly
    warm = rollout(denoiser, process, domain, start, start_sigma=0.01, **kwargs)
    assert torch.equal(warm[:, :, :2], start)
    assert (warm[:, :, 2:] - last).abs().max() < 0.1
    cold = rollout(denoiser, process, domain, start, **kwargs)  # from pure noise: the untrained model's own frames
    assert (cold[:, :, 2:] - last).abs().max() > 0.5
    assert torch.equal(rollout(denoiser, process, domain, start, start_sigma=0.01, **kwargs), warm)


def test_a_rollout_started_from_the_extrapolation_carries_the_motion_on():
    """From scaled sigma 0.01 with ``start_from="extrapolation"`` the new frames are the optical-flow
    extrapolation of the given ones (a blob moving a pixel a frame goes on moving), not the last frame."""
    from sciffusion_domains.video.extrapolation import extrapolate_frames

    domain, denoiser, process = parts(given_frames=2)
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    blob = lambda t: torch.exp(-((rows - 7) ** 2 + (cols - 4 - t) ** 2) / 8) * 2 - 1  # noqa: E731 (in [-1, 1])
    start = torch.stack([blob(0), blob(1)])[None, None]  # [1, 1, 2, 16, 16]
    kwargs = dict(frames=4, steps=3, sampler="heun", seed=1, start_sigma=0.01)
    moved = rollout(denoiser, process, domain, start, start_from="extrapolation", **kwargs)
    truth = torch.stack([blob(2), blob(3)])
    assert (moved[0, 0, 2:] - extrapolate_frames(start, 2, 2)[0, 0]).abs().max() < 0.1
    assert (moved[0, 0, 2:] - truth).norm() < 0.3 * (start[0, 0, 1:2] - truth).norm()  # nearer than persistence
    with pytest.raises(ValueError, match="start_from='flow'"):
        rollout(denoiser, process, domain, start, start_from="flow", **kwargs)


def test_a_rollout_started_from_the_models_mean_starts_where_the_model_says_at_the_top_level():
    """``start_from="mean"``: the new frames start as the denoiser's output at the process's top noise level
    for the window's given frames (its forecast mean). A denoiser that knows the motion there (the last
    given frame one pixel on per frame) and changes nothing below: from scaled sigma 0.004 the new frames
    are that mean, not the last frame."""
    from sciffusion_domains.video.networks import FRAME_MASK, FRAMES

    domain, _, process = parts(given_frames=2)
    top = float(process.t_max)

    class KnowsTheMotion(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))  # where the rollout finds the device
            self.top_calls = 0

        def forward(self, x, t, space=None, cond=None):
            if not torch.allclose(t, torch.full_like(t, top)):
                return x  # below the top: nothing to change
            self.top_calls += 1
            last = cond[FRAMES][:, :, 1]  # the window's latest given frame (2 given)
            assert cond[FRAME_MASK][:, :2].all() and not cond[FRAME_MASK][:, 2:].any()
            return torch.stack([last.roll(lead, dims=-1) for lead in range(-1, 3)], dim=2)

    denoiser = KnowsTheMotion()
    start = torch.stack([domain.dataset("test")[i][0] for i in range(2)])[:, :, :2]
    # the denoiser changes nothing below the top, so each window keeps its start noise (0.004) and passes it on
    # to the next: after 3 windows at most about 0.004 * sqrt(3) * 4.5 (max of 512 Gaussians) = 0.03
    kwargs = dict(frames=5, steps=3, sampler="heun", seed=1, start_sigma=0.004, new_frames=1)
    moved = rollout(denoiser, process, domain, start, start_from="mean", **kwargs)
    assert denoiser.top_calls == 3  # once a window
    expected = start[:, :, 1]
    for frame in range(2, 5):  # each new frame is the one before it moved one pixel on
        expected = expected.roll(1, dims=-1)
        assert (moved[:, :, frame] - expected).abs().max() < 0.03
    assert (moved[:, :, 4] - start[:, :, 1]).abs().max() > 0.5
    held = rollout(denoiser, process, domain, start, **kwargs)  # persistence: the last frame stays
    assert (held[:, :, 4] - start[:, :, 1]).abs().max() < 0.03


def test_a_rollout_start_needs_a_noise_level_grid_and_a_level_the_process_has():
    domain, denoiser, process = parts(given_frames=2)
    start = torch.zeros(1, 1, 2, 16, 16)
    with pytest.raises(ValueError, match="grid in noise level"):
        rollout(denoiser, process, domain, start, frames=4, grid="uniform_t", start_sigma=1.0)
    with pytest.raises(ValueError, match="at most 80"):
        rollout(denoiser, process, domain, start, frames=4, start_sigma=100.0)


def test_the_rollout_command_continues_a_clip_past_the_window_and_writes_the_domains_files(tmp_path):
    """``python -m sciffusion_domains.video.rollout`` with the shipped viscosity model, from a .npy clip (no
    data on disk): the given frames come back exactly, every member has the asked length, and the viscosity
    asked is the one every window was given and the NetCDF records."""
    import json

    import numpy as np
    import xarray as xr

    from sciffusion_domains.video import rollout as rollout_module

    clip = np.random.default_rng(0).normal(size=(1, 6, 32, 32)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    out = tmp_path / "roll"
    rollout_module.main(["checkpoint=turbulence_viscosity", f"input={tmp_path / 'clip.npy'}", "frames=21",
                         "members=2", "steps=2", "viscosity=3e-3", "new_frames=6", f"out_dir={out}"])
    result = json.loads((out / "rollout.json").read_text())
    assert result["frames"] == 21 and result["given"] == 4 and result["window"] == 16
    assert result["figure_every"] == 2  # at most 16 frames a member in figure.png
    for member in range(2):
        values = np.load(out / f"sample_0000{member}.npy")
        assert values.shape == (1, 21, 32, 32)
        np.testing.assert_array_equal(values[:, :4], clip[:, :4])  # the given frames, bit for bit
        dataset = xr.open_dataset(out / f"sample_0000{member}.nc")
        assert dataset.sizes["time"] == 21 and dataset.attrs["viscosity"] == 3e-3
    assert (out / "figure.png").is_file() and (out / "sample_00000.gif").is_file()
    assert not np.allclose(np.load(out / "sample_00000.npy")[:, 4:], np.load(out / "sample_00001.npy")[:, 4:])


def test_the_rollout_command_names_what_is_wrong(tmp_path):
    import numpy as np

    from sciffusion_domains.video import rollout as rollout_module

    with pytest.raises(SystemExit, match="give checkpoint="):
        rollout_module.parse([])
    np.save(tmp_path / "short.npy", np.zeros((2, 32, 32), np.float32))
    with pytest.raises(ValueError, match="holds 2 frames; the rollout starts from 4"):
        rollout_module.main(["checkpoint=turbulence", f"input={tmp_path / 'short.npy'}", f"out_dir={tmp_path}"])
    np.save(tmp_path / "wide.npy", np.zeros((6, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"\[C, H, W\] = \(1, 32, 32\)"):
        rollout_module.main(["checkpoint=turbulence", f"input={tmp_path / 'wide.npy'}", f"out_dir={tmp_path}"])
    with pytest.raises(FileNotFoundError, match="neither test:K nor a .npy"):
        rollout_module.main(["checkpoint=turbulence", "input=nowhere.npy", f"out_dir={tmp_path}"])
    np.save(tmp_path / "ok.npy", np.zeros((6, 32, 32), np.float32))
    with pytest.raises(ValueError, match="not trained on several viscosities"):
        rollout_module.main(["checkpoint=turbulence", f"input={tmp_path / 'ok.npy'}", "viscosity=1e-3",
                             f"out_dir={tmp_path}"])


def test_rollout_settings_come_from_the_user_then_the_checkpoint_then_the_library():
    from sciffusion_domains.video.rollout import rollout_settings

    stored = {"new_frames": 1, "start_sigma": 0.5}
    chosen, sources = rollout_settings(stored)
    assert chosen == {"new_frames": 1, "start_sigma": 0.5, "start_from": "persistence"}
    assert sources == {"new_frames": "checkpoint sampling_defaults", "start_sigma": "checkpoint sampling_defaults",
                       "start_from": "library default"}
    chosen, sources = rollout_settings(stored, new_frames=3, start_sigma=0.25, start_from="extrapolation")
    assert chosen == {"new_frames": 3, "start_sigma": 0.25, "start_from": "extrapolation"}
    assert set(sources.values()) == {"given"}
    assert rollout_settings(stored, start_sigma="none")[0]["start_sigma"] is None  # pure noise over the stored level
    assert rollout_settings(None)[0] == {"new_frames": None, "start_sigma": None, "start_from": "persistence"}
    with pytest.raises(ValueError, match="give a noise level"):
        rollout_settings(stored, start_sigma="cold")
    with pytest.raises(ValueError, match="start_from='flow'"):
        rollout_settings(stored, start_from="flow")
    with pytest.raises(ValueError, match="rollout defaults hold \\['steps'\\]"):
        rollout_settings({"steps": 3})


def test_the_shipped_moving_digits_forecaster_rolls_out_with_its_measured_window_settings(tmp_path):
    """``checkpoint=moving_digits`` with no window settings rolls out one new frame a window from the last
    frame at 0.5 (what it stores): the same clips as ``rollout`` called with those, other clips with
    ``start_sigma=none``, and rollout.json says where each setting came from."""
    import json

    import numpy as np

    import sciffusion
    from sciffusion import shipped
    from sciffusion_domains.video import rollout as rollout_module

    if shipped.lookup("moving_digits").path() is None:
        pytest.skip("the moving_digits checkpoint is not installed")
    clip = np.random.default_rng(0).uniform(size=(1, 4, 32, 32)).astype(np.float32)
    np.save(tmp_path / "clip.npy", clip)
    common = ["checkpoint=moving_digits", f"input={tmp_path / 'clip.npy'}", "frames=7", "members=2", "steps=3"]
    rollout_module.main([*common, f"out_dir={tmp_path / 'stored'}"])
    result = json.loads((tmp_path / "stored" / "rollout.json").read_text())
    assert result["windows"].startswith("new_frames=1 start_sigma=0.5 start_from=persistence (checkpoint "
                                        "sampling_defaults: new_frames, start_sigma")
    model = sciffusion.load("moving_digits")
    expected = rollout(model.denoiser, model.process, model.domain, torch.from_numpy(clip)[None].expand(2, -1, -1, -1, -1),
                       frames=7, steps=3, new_frames=1, start_sigma=0.5)
    stored = np.stack([np.load(tmp_path / "stored" / f"sample_0000{m}.npy") for m in range(2)])
    np.testing.assert_allclose(stored, expected.numpy(), atol=1e-6)
    from_python, used = rollout_module.model_rollout(model, torch.from_numpy(clip)[None].expand(2, -1, -1, -1, -1),
                                                     frames=7, steps=3, verbose=False)
    assert torch.equal(from_python, expected) and used["windows"] == result["windows"]
    rollout_module.main([*common, "start_sigma=none", f"out_dir={tmp_path / 'cold'}"])
    cold = np.stack([np.load(tmp_path / "cold" / f"sample_0000{m}.npy") for m in range(2)])
    assert "given: start_sigma" in json.loads((tmp_path / "cold" / "rollout.json").read_text())["windows"]
    assert not np.allclose(cold[:, :, 4:], stored[:, :, 4:])
