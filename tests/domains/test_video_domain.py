"""The video plugin: batches of clips, digit-pair conditions, GIF / MP4 / .npy / frame-grid outputs, float
clips standardised and restored, the domain contract, and a tiny train / sample / forecast by
inpainting on the time axis through the CLI (the given frames come back exactly)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import sciffusion
from sciffusion import registry
from sciffusion.testing import assert_domain_contract, run_app
from sciffusion_domains.video.domain import VideoDomain
from sciffusion_domains.video.inverse import known_frames

TINY = dict(size=32, frames=6, train_clips=16, eval_clips=8)


@pytest.fixture(scope="module")
def digits() -> VideoDomain:
    return VideoDomain(**TINY, conditional=True)


def test_registered_under_video():
    assert registry.load_class("video") is VideoDomain
    assert (VideoDomain.config_dir() / "domain" / "moving_digits.yaml").is_file()


def test_batches_are_clips_with_digit_pair_labels(digits):
    batch = digits.collate([digits.dataset("train")[i] for i in range(3)])
    assert batch.x.shape == (3, 1, 6, 32, 32) and batch.cond["label"].dtype == torch.long
    assert digits.shape == (1, 6, 32, 32) and digits.num_classes == 100
    assert not VideoDomain(**TINY).collate([digits.dataset("train")[0]]).cond


def test_conditions_name_the_digits_in_any_order(digits):
    assert digits.condition(3, label=73)["label"].tolist() == [37, 37, 37]
    assert digits.condition(4, label=[5, 21])["label"].tolist() == [5, 12, 5, 12]
    assert digits.condition(56)["label"][:3].tolist() == [0, 1, 2]
    assert len(set(digits.condition(55)["label"].tolist())) == 55  # every sorted pair once
    with pytest.raises(ValueError, match="0..99"):
        digits.condition(2, label=100)
    with pytest.raises(ValueError, match="unconditional"):
        VideoDomain(**TINY).condition(2, label=3)


def test_save_writes_gifs_npys_and_a_frame_grid(digits, tmp_path):
    batch = digits.collate([digits.dataset("val")[i] for i in range(2)])
    clips = digits.decode(batch.x, batch.space, batch.cond)
    files = digits.save(clips, tmp_path)
    label = int(batch.cond["label"][0])
    assert [p.name for p in files[:3]] == [f"sample_00000_{label:02d}.{f}" for f in ("gif", "mp4", "npy")]
    assert len(files) == 6  # domain.formats: gif, mp4, npy (MP4s are checked in test_video_outputs.py)
    gif = Image.open(files[0])
    assert gif.n_frames == 6 and gif.size == (32, 32) and gif.info["loop"] == 0
    assert np.array_equal(np.load(files[2]), batch.x[0].numpy())
    grid = Image.open(digits.figure(clips, tmp_path / "figure.png"))
    assert grid.width > 6 * 64 and grid.height >= 2 * 64


def test_float_clips_are_standardised_and_decoded_back(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(tmp_path / f"field{i}.npy", (5.0 + 2.0 * rng.standard_normal((12, 2, 8, 8))).astype(np.float32))
    domain = VideoDomain(source="folder", root=str(tmp_path), frames=4)
    batch = domain.collate([domain.dataset("train")[i] for i in range(3)])
    assert abs(float(batch.x.mean())) < 0.3 and abs(float(batch.x.std()) - 1) < 0.2
    restored = domain.decode(batch.x, batch.space)[0].values
    assert np.allclose(restored, domain.dataset("train")[0][0].numpy(), atol=1e-5)
    fresh = VideoDomain(source="folder", root=str(tmp_path / "elsewhere"), frames=4)
    fresh.load_state_dict(domain.state_dict())  # sampling reads no data
    assert fresh.shape == (2, 4, 8, 8) and np.allclose(fresh.decode(batch.x, batch.space)[0].values, restored)


def test_bad_options_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown video source 'mp4'"):
        VideoDomain(source="mp4")
    with pytest.raises(ValueError, match="needs root"):
        VideoDomain(source="zarr")
    with pytest.raises(ValueError, match="labelled clips"):
        VideoDomain(source="folder", root=str(tmp_path), conditional=True)


def test_known_frames_of_forecast_and_interpolation():
    assert known_frames(6, task="forecast", given=2).tolist() == [True, True, False, False, False, False]
    assert known_frames(7, task="interpolate", every=3).tolist() == [True, False, False, True, False, False, True]
    with pytest.raises(ValueError, match="0 < guidance.given < 6"):
        known_frames(6, task="forecast", given=6)


def test_metrics_tell_frozen_clips_from_moving_ones(digits):
    reference = digits.reference("test")
    assert abs(digits.metrics(digits.reference("val"), reference)["motion_ratio"] - 1) < 0.2
    frozen = digits.reference("val")
    for clip in frozen:
        clip.values[:] = clip.values[:, :1]
    assert digits.metrics(frozen, reference)["motion_ratio"] == 0


def test_metrics_add_the_judges_scores_for_two_digits_at_32_px(digits):
    """The shipped 32-px judge scores real clips near the floor, reads their digits (the reference clips
    carry their true pair) and sees frozen clips as not real."""
    real = digits.metrics(digits.reference("val"), digits.reference("test"))
    assert {"frame_fd", "video_fd", "identity_kept", "digits_recognised", "judged_real"} <= set(real)
    assert real["digits_recognised"] > 0.5 and real["judged_real"] > 0.7
    frozen = digits.reference("val")
    for clip in frozen:
        clip.values[:] = clip.values[:, :1]
    assert digits.metrics(frozen, digits.reference("test"))["judged_real"] < real["judged_real"] - 0.3


def test_keeps_the_domain_contract(digits, tmp_path):
    assert_domain_contract(digits, tmp_path, fresh=lambda: VideoDomain(**TINY, conditional=True))


def test_train_sample_and_forecast_through_the_cli(tmp_path):
    run_app("train", "experiment=moving_digits_tiny", "domain.frames=6", "domain.train_clips=16",
            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3
    model = sciffusion.load(ckpt)  # in-process: a second app subprocess would double the test's time
    model.save(model.sample(2, steps=2, cond={"label": 37}, progress=False, verbose=False), tmp_path / "free")
    assert sorted(p.name for p in (tmp_path / "free").glob("*.gif")) == ["sample_00000_37.gif", "sample_00001_37.gif"]
    assert np.load(tmp_path / "free" / "sample_00000_37.npy").shape == (1, 6, 32, 32)
    out = tmp_path / "forecast"
    run_app("sample", f"checkpoint={ckpt}", "num_samples=2", "steps=2", "guidance=forecast", "guidance.input=test:1",
            "guidance.given=2", "progress=false", f"out_dir={out}", cwd=tmp_path)
    given = np.load(out / "input.npy")
    assert json.loads((out / "known_frames.json").read_text())["known"] == [0, 1]
    for i in range(2):
        sample = np.load(out / f"sample_0000{i}.npy")
        assert sample.shape == (1, 6, 32, 32) and np.array_equal(sample[:, :2], given[:, :2])
        assert not np.allclose(sample[:, 2:], given[:, 2:])
    assert (out / "observation.png").is_file() and (out / "figure.png").is_file()


def test_a_forecaster_by_conditioning_is_given_the_first_frames(tmp_path):
    domain = VideoDomain(**TINY, given_frames=2)
    batch = domain.collate([domain.dataset("train")[i] for i in range(3)])
    assert torch.equal(batch.cond["frames"], batch.x) and batch.cond["frame_mask"][:, :2].all()
    assert not batch.cond["frame_mask"][:, 2:].any()
    net = domain.network(unet=dict(channels=8, channel_mult=[1, 2], attention_levels=[1], head_channels=8))
    assert net.context and net(batch.x, torch.rand(3), batch.space, batch.cond).shape == batch.x.shape
    cond = domain.condition(4, input="test:1")
    assert cond["frames"].shape == (4, 1, 6, 32, 32)
    assert torch.equal(cond["frames"][3], domain.dataset("test")[1][0])
    np.save(tmp_path / "clip.npy", domain.dataset("test")[1][0].numpy())
    assert torch.equal(domain.condition(1, input=str(tmp_path / "clip.npy"))["frames"][0], cond["frames"][0])
    with pytest.raises(ValueError, match="cond.input=test:K"):
        domain.condition(2)
    assert domain.condition(2, unconditional=True) == {}  # free clips: nothing given, as condition dropout trains
    with pytest.raises(ValueError, match="was not trained with given frames"):
        VideoDomain(**TINY).condition(2, input="test:0")
    with pytest.raises(ValueError, match="network.unet.context is set by the domain"):
        VideoDomain(**TINY).network(unet=dict(context=True))


def test_a_model_trained_to_forecast_and_interpolate_draws_a_task_per_clip():
    """given_tasks=[forecast, interpolate]: each training clip is given its first frames or every
    given_every-th frame and the last (a mix within a batch, reproducible from torch's seed), and
    sampling picks the task with cond.task."""
    domain = VideoDomain(**TINY, given_frames=2, given_tasks=["forecast", "interpolate"], given_every=2)
    forecast, interpolate = [True, True, False, False, False, False], [True, False, True, False, True, True]
    items = [domain.dataset("train")[i] for i in range(16)]
    torch.manual_seed(0)
    masks = domain.collate(items).cond["frame_mask"].tolist()
    assert forecast in masks and interpolate in masks and all(m in (forecast, interpolate) for m in masks)
    torch.manual_seed(0)
    assert domain.collate(items).cond["frame_mask"].tolist() == masks
    assert domain.condition(3, input="test:0", task="interpolate")["frame_mask"].tolist() == [interpolate] * 3
    assert domain.condition(3, input="test:0")["frame_mask"].tolist() == [forecast] * 3
    only_forecast = VideoDomain(**TINY, given_frames=2)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert only_forecast.collate(items).cond["frame_mask"].tolist() == [forecast] * 16
    assert torch.equal(torch.get_rng_state(), state)  # one task draws nothing: older runs resume exactly
    with pytest.raises(ValueError, match="trained for given_tasks"):
        only_forecast.condition(2, input="test:0", task="interpolate")
    with pytest.raises(ValueError, match="not trained with given frames"):
        VideoDomain(**TINY).condition(2, task="forecast")
    with pytest.raises(ValueError, match="given_tasks must be distinct names"):
        VideoDomain(**TINY, given_frames=2, given_tasks=["extrapolate"])
    with pytest.raises(ValueError, match="needs a model trained with given frames"):
        VideoDomain(**TINY, given_tasks=["interpolate"])
    with pytest.raises(ValueError, match="given_every must be in 2..5"):
        VideoDomain(**TINY, given_frames=2, given_tasks=["interpolate"], given_every=6)


def test_the_space_time_dit_is_the_other_network_kind():
    """``network.kind=dit`` builds the DiT on space-time patches with the domain's channels, classes and
    given-frame context, as the U-Net gets them."""
    from sciffusion_domains.dense.networks.spacetime_dit import SpaceTimeDiT

    domain = VideoDomain(**TINY, given_frames=2)
    batch = domain.collate([domain.dataset("train")[i] for i in range(2)])
    net = domain.network(kind="dit", dit=dict(patch_size=8, frame_patch_size=2, width=32, depth=1, num_heads=2))
    assert isinstance(net, SpaceTimeDiT) and net.context
    assert net(batch.x, torch.rand(2), batch.space, batch.cond).shape == batch.x.shape
    with pytest.raises(ValueError, match="network.dit.context is set by the domain"):
        VideoDomain(**TINY).network(kind="dit", dit=dict(context=True))
    with pytest.raises(ValueError, match="unknown video network kind 'vit'"):
        VideoDomain(**TINY).network(kind="vit")


def test_cfg_is_allowed_on_the_given_frames_and_refused_with_no_condition():
    """A forecaster's given frames are a condition classifier-free guidance can drop (droppable_conditions),
    though the domain is not class-conditional; plain clips have none, and guidance=cfg is refused."""
    from sciffusion.cli import checks

    cfg, config = {"_target_": checks.CFG_TARGET}, {"loss": {"cond_dropout": 0.1}}
    forecaster, plain = VideoDomain(**TINY, given_frames=2), VideoDomain(**TINY)
    assert forecaster.droppable_conditions and not forecaster.conditional and not plain.droppable_conditions
    checks.cfg_has_an_effect(cfg, config, forecaster)
    with pytest.raises(ValueError, match="guidance=cfg does nothing here"):
        checks.cfg_has_an_effect(cfg, config, plain)
