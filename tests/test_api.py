"""sciffusion.load: shipped names, sampling with no data at all, the checkpoint's sampling defaults
under the user's options, model folders in safetensors, and the progress bar."""
from __future__ import annotations

import json

import pytest
import torch

import sciffusion
from sciffusion import settings, shipped
from sciffusion.registry import loadable

DOMAIN_OF = {"qm9": "qm9", "qm9_alpha": "qm9", "qm9_joint": "qm9_joint", "qm9_joint_noh": "qm9_joint",
             "qm9_joint_alpha": "qm9_joint",
             "digits": "images", "digits_consistency": "images", "digits_latent": "latent",
             "spoken_digits_latent": "latent",
             "spoken_digits": "audio", "spoken_digits_2step": "audio", "hadisst": "weather", "hadisst_forecast_2step": "weather",
             "turbulence": "video", "turbulence_interpolate": "video", "turbulence_viscosity": "video",
             "moving_digits": "video"}


def _gone(*args, **kwargs):
    raise FileNotFoundError("the data were moved (test)")


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """An empty cache and every domain's data source raising, as after the data were deleted."""
    monkeypatch.setenv("SCIFFUSION_CACHE", str(tmp_path / "empty_cache"))
    classes = loadable()
    if "images" in classes:
        monkeypatch.setattr(classes["images"], "dataset", _gone)
    if "qm9" in classes:
        monkeypatch.setattr(classes["qm9"], "_load", _gone)
    if "qm9_joint" in classes:
        monkeypatch.setattr(classes["qm9_joint"], "_split", _gone)
    if "audio" in classes:
        monkeypatch.setattr(classes["audio"], "_clips", _gone)
    if "weather" in classes:
        monkeypatch.setattr(classes["weather"], "source", property(_gone))
    if "video" in classes:
        monkeypatch.setattr(classes["video"], "dataset", _gone)


def _shipped(name: str):
    if DOMAIN_OF[name] not in loadable() or shipped.lookup(name).path() is None:
        pytest.skip(f"the {name} checkpoint or its domain plugin is not installed")


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_every_shipped_checkpoint_samples_without_its_data(name, no_data, tmp_path):
    _shipped(name)
    model = sciffusion.load(name)
    objects = model.sample(2, steps=2, cond=shipped.lookup(name).free_cond, progress=False, verbose=False)
    assert len(objects) == 2
    assert model.save(objects, tmp_path / "out", figure=False)
    assert model.sampling_defaults["sampler"] == shipped.lookup(name).best["sampler"]


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_every_shipped_file_stores_the_settings_its_registry_entry_names(name):
    """What a user gets with no settings given (the file's ``sampling_defaults``) is what ``shipped.SHIPPED``
    says measured best, and the file says where it was measured in the entry's words: a file re-shipped or
    an entry edited alone would make them part. An empty options dict and none are the same settings."""
    from sciffusion.training.checkpoint import load_checkpoint

    path = shipped.lookup(name).path()
    if path is None:
        pytest.skip(f"the {name} checkpoint is not installed")

    def settings_of(defaults):
        return {k: v for k, v in defaults.items() if v != {}}

    entry = shipped.lookup(name)
    assert settings_of(load_checkpoint(path)["sampling_defaults"]) == settings_of(dict(entry.best, measured=entry.measured))


def test_unknown_names_list_the_shipped_ones():
    from sciffusion.training import CheckpointError

    with pytest.raises(CheckpointError, match="no checkpoint at no_such_model.*digits"):
        sciffusion.load("no_such_model")


def test_settings_the_user_gives_win_over_the_checkpoint_and_the_library():
    defaults = {"sampler": "dpmpp_2m", "steps": 20, "grid": "karras", "guidance": {"name": "cfg", "scale": 2.0}}
    config = {"sampling": {"sampler": "euler", "steps": 7, "grid": "uniform_t", "options": {"churn": 1.0}}}
    chosen = settings.resolve({"steps": 5}, defaults, config)
    assert (chosen.sampler, chosen.steps, chosen.grid) == ("dpmpp_2m", 5, "karras")
    assert chosen.guidance["scale"] == 2.0 and chosen.guidance["_target_"].endswith("ClassifierFreeGuidance")
    assert chosen.sources["steps"] == "given" and chosen.sources["sampler"] == "checkpoint sampling_defaults"
    assert chosen.sampler_options == {}  # euler's options stay with euler
    assert settings.resolve({"sampler": "euler"}, defaults, config).sampler_options == {"churn": 1.0}
    assert settings.resolve({"guidance": "none"}, defaults, config).guidance is None
    assert settings.resolve({"guidance": {"none": True}}, defaults, config).guidance is None
    assert settings.resolve({"guidance": 3.0}, defaults, config).guidance["scale"] == 3.0
    plain = settings.resolve({}, None, {})
    assert (plain.sampler, plain.steps, plain.grid, plain.guidance) == ("heun", 32, "karras", None)
    assert "library default" in plain.describe()
    with pytest.raises(ValueError, match="no such core guidance"):
        settings.resolve({"guidance": "nonsense"})


def test_digits_sample_with_the_measured_guidance_unless_told_otherwise(capsys):
    _shipped("digits")
    model = sciffusion.load("digits")
    assert model.settings().guidance["scale"] == 2.0
    assert model.settings(guidance="none").guidance is None
    a = model.sample(2, steps=2, seed=3, progress=False)
    assert "guidance=ClassifierFreeGuidance(scale=2.0)" in capsys.readouterr().out
    b = model.sample(2, steps=2, generator=torch.Generator().manual_seed(0), progress=False, verbose=False)
    c = model.sample(2, steps=2, seed=3, progress=False, verbose=False)
    assert all((x.pixels == y.pixels).all() for x, y in zip(a, c))
    assert len(b) == 2


def test_save_pretrained_round_trip_gives_the_same_samples(tmp_path, no_data):
    _shipped("spoken_digits")
    model = sciffusion.load("spoken_digits")
    folder = model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "domain.safetensors", "model.safetensors"]
    meta = json.loads((folder / "config.json").read_text())
    assert meta["sampling_defaults"]["steps"] == 25 and meta["config"]["domain"]["name"] == "audio"
    again = sciffusion.load(folder)
    x = model.sample(2, steps=2, progress=False, verbose=False)
    y = again.sample(2, steps=2, progress=False, verbose=False)
    assert all((a.log_spec == b.log_spec).all() for a, b in zip(x, y))
    for key, value in model.denoiser.state_dict().items():
        assert torch.equal(value, again.denoiser.state_dict()[key])


def test_a_damaged_model_folder_names_what_is_wrong(tmp_path):
    from sciffusion.training import CheckpointError

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        sciffusion.load(tmp_path)


def test_progress_bar_counts_sampler_steps(capsys):
    from sciffusion.progress import SamplingProgress

    with SamplingProgress(5, 2, 4) as bar:  # three chunks of four steps
        for _ in range(3):
            for i in range(4):
                bar.sampler_options()["callback"]({"i": i})
            bar.chunk_done(2)
        assert bar.bar.n == 12 == bar.bar.total
    assert SamplingProgress(5, 2, 4, enabled=False).sampler_options() == {}


def test_the_sample_app_uses_the_checkpoint_settings_unless_given(tmp_path, capsys):
    _shipped("digits")
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from sciffusion.cli import sample

    base = ["checkpoint=digits", "num_samples=2", "batch_size=2", "steps=2", "progress=false", f"out_dir={tmp_path}"]
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        stored = OmegaConf.to_container(compose("sample", overrides=base), resolve=True)
        mine = OmegaConf.to_container(compose("sample", overrides=[*base, "guidance=none", "sampler=euler"]),
                                      resolve=True)
    sample.draw(stored)
    assert (stored["sampler"], stored["steps"], stored["grid"]) == ("dpmpp_2m", 2, "karras")
    assert "guidance=ClassifierFreeGuidance(scale=2.0)" in capsys.readouterr().out
    _, objects = sample.draw(mine)
    assert mine["sampler"] == "euler" and len(objects) == 2
    assert "guidance=none (given: sampler, steps, guidance" in capsys.readouterr().out


def test_guidance_options_alone_change_the_stored_guidance():
    defaults = {"sampler": "dpmpp_2m", "steps": 20, "grid": "karras",
                "guidance": {"name": "cfg", "scale": 2.0, "interval": [0.1, 0.9]}}
    chosen = settings.resolve({"guidance": {"scale": 3}}, defaults)
    assert chosen.guidance["_target_"].endswith("ClassifierFreeGuidance")
    assert (chosen.guidance["scale"], chosen.guidance["interval"]) == (3, [0.1, 0.9])
    assert chosen.sources["guidance"] == "given over checkpoint sampling_defaults"
    assert settings.resolve({"guidance": 4.0}, defaults).guidance["interval"] == [0.1, 0.9]  # a CFG scale too
    assert settings.resolve({"guidance": {}}, defaults).guidance["scale"] == 2.0  # empty: not given
    assert settings.resolve({"guidance": {"name": "cfg", "scale": 5}}, defaults).guidance["interval"] is None
    with pytest.raises(ValueError, match="guidance.scale=3 given without a guidance.*guidance=cfg guidance.scale=3"):
        settings.resolve({"guidance": {"scale": 3}}, {"guidance": None})


def test_sample_app_guidance_scale_alone_applies_to_the_digits_stored_guidance():
    _shipped("digits")
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from sciffusion.cli import checks

    model = sciffusion.load("digits")

    def chosen(*overrides):
        with initialize_config_module("sciffusion.conf", version_base="1.3"):
            opts = OmegaConf.to_container(compose("sample", overrides=["checkpoint=digits", *overrides]), resolve=True)
        return model.settings(guidance=opts["guidance"]).guidance, opts

    guidance, opts = chosen("guidance.scale=3")
    assert guidance["scale"] == 3 and guidance["_target_"] == checks.CFG_TARGET
    checks.check_sampling({**opts, "guidance": guidance}, model.config, model.domain)
    assert chosen()[0]["scale"] == 2.0 and chosen("guidance=none")[0] is None
    assert chosen("guidance=cfg", "guidance.scale=4")[0]["scale"] == 4
    typo, opts = chosen("guidance.scael=3")
    with pytest.raises(ValueError, match="guidance.scael: not an option of .*ClassifierFreeGuidance; its options "
                                         "are scale, interval"):
        checks.check_sampling({**opts, "guidance": typo}, model.config, model.domain)


@pytest.mark.parametrize("name", sorted(shipped.SHIPPED))
def test_shipped_checkpoints_hold_only_what_sampling_needs(name):
    """No optimiser, schedule or RNG state (they only serve resuming and would triple the size); the
    model's weights are the EMA's."""
    from sciffusion.training import load_checkpoint
    from sciffusion.training.checkpoint import SHIPPED_KEYS

    path = shipped.lookup(name).path()
    if path is None:
        pytest.skip(f"the {name} checkpoint is not installed")
    state = load_checkpoint(path)
    assert set(state) <= {*SHIPPED_KEYS, "model", "ema"}, sorted(set(state) - {*SHIPPED_KEYS, "model", "ema"})
    assert all(torch.equal(state["model"][k], v) for k, v in state["ema"]["module"].items())


def test_a_missing_shipped_file_names_the_extra_that_installs_it(monkeypatch):
    """The latent weights ship with the images plugin (the latent domain wraps it): no 'latent' extra."""
    monkeypatch.setattr(shipped.Shipped, "path", lambda self: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'sciffusion\[images\]'"):
        shipped.resolve("digits_latent")
    with pytest.raises(FileNotFoundError, match=r"pip install 'sciffusion\[audio\]'"):
        shipped.resolve("spoken_digits_2step")
