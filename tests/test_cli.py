"""The Hydra apps end to end, as a user runs them: train, sample, evaluate, sweeps, torchrun,
config errors, and an external plugin installed with pip."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sciffusion.cli import sample, train
from sciffusion.testing import run_app
from sciffusion.training import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
TINY = ["train.steps=6", "train.batch_size=32", "train.progress=false", "train.tensorboard=false",
        "train.log_every=2", "train.save_every=3", "domain.train_size=256", "domain.test_size=128",
        "network.hidden=16", "network.depth=2"]
SAMPLE = ["num_samples=20", "batch_size=8", "steps=4"]


run = run_app


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("train") / "run"
    run("train", *TINY, f"hydra.run.dir={run_dir}", "train.keep_every=3", cwd=run_dir.parent)
    return run_dir


def test_train_writes_config_checkpoints_and_metrics(trained):
    assert (trained / "config.yaml").is_file()
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["last.ckpt", "step_00000003.ckpt",
                                                                          "step_00000006.ckpt"]
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert all(np.isfinite(r["loss"]) and r["steps_per_s"] > 0 for r in records)
    state = load_checkpoint(trained / "checkpoints" / "last.ckpt")
    assert state["step"] == 6 and state["config"]["domain"]["name"] == "toy"


def test_sample_and_evaluate_write_native_files_figure_and_metrics(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.ckpt"
    run("sample", f"checkpoint={ckpt}", *SAMPLE, f"out_dir={tmp_path / 's'}", cwd=tmp_path)
    assert np.load(tmp_path / "s" / "samples.npy").shape == (20, 2)
    assert (tmp_path / "s" / "samples.csv").is_file() and (tmp_path / "s" / "figure.png").stat().st_size > 1000
    run("evaluate", f"checkpoint={ckpt}", *SAMPLE, f"out_dir={tmp_path / 'e'}", cwd=tmp_path)
    result = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert result["num_samples"] == 20 and {"mean_error", "cov_error", "mode_weight_gap"} <= set(result["metrics"])


def test_sampling_is_identical_on_one_and_two_ranks(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.ckpt"
    # A stochastic sampler, so that the noise, not only the prior draw, must follow the per-chunk seeds.
    args = [f"checkpoint={ckpt}", *SAMPLE, "sampler=euler_maruyama", "figure=false"]
    run("sample", *args, f"out_dir={tmp_path / 'one'}", cwd=tmp_path)
    run("sample", *args, f"out_dir={tmp_path / 'two'}", cwd=tmp_path, torchrun=2)
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "samples.npy"), np.load(tmp_path / "two" / "samples.npy"))


def test_ddp_on_two_ranks_matches_one_process_with_the_same_global_batch(tmp_path):
    common = [*TINY, "train.batch_size=16", "train.save_every=6", "train.grad_clip=0.5"]
    run("train", *common, "train.accumulate=2", f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    run("train", *common, "train.accumulate=1", f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path, torchrun=2)
    one, two = (load_checkpoint(tmp_path / d / "checkpoints" / "last.ckpt") for d in ("one", "two"))
    for key in one["model"]:
        torch.testing.assert_close(one["model"][key], two["model"][key], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(one["ema"]["module"][key], two["ema"]["module"][key], rtol=1e-5, atol=1e-6)


def test_multirun_sweep(tmp_path):
    run("train", "--multirun", *TINY, "train.steps=2", "optim.lr=1e-3,1e-4", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path)
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / "checkpoints" / "last.ckpt").is_file()
    lrs = {load_checkpoint(tmp_path / "sweep" / j / "checkpoints" / "last.ckpt")["config"]["optim"]["lr"] for j in "01"}
    assert lrs == {1e-3, 1e-4}


@pytest.mark.parametrize("override, message", [
    ("train.stpes=3", "stpes"),
    ("train.steps=many", "steps"),
    ("domain=nonexistent", "toy"),  # Hydra lists the available domains
])
def test_config_errors_are_reported_before_any_work(tmp_path, override, message):
    out = run("train", override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert out.returncode != 0 and message in out.stderr
    assert not (tmp_path / "run").exists()


def test_external_plugin_trains_and_samples_through_the_cli(tmp_path, monkeypatch):
    """A third-party package registering a domain under the entry-point group is trained and sampled like a
    built-in one. It is installed into a folder of its own on PYTHONPATH (the apps' subprocesses find its
    entry point there), not into the shared environment, where other test workers listing domains would
    see it come and go."""
    source, target = tmp_path / "plugin_pkg", tmp_path / "site"
    shutil.copytree(Path(__file__).parent / "plugin_pkg", source)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(source)], capture_output=True, text=True, env=ENV,
                             timeout=300)
    assert install.returncode == 0, install.stderr
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")])))
    run_dir = tmp_path / "run"
    run("train", "domain=ring", "experiment=ring_quick", "train.progress=false", "train.tensorboard=false",
        f"hydra.run.dir={run_dir}", cwd=tmp_path)
    run("sample", f"checkpoint={run_dir / 'checkpoints' / 'last.ckpt'}", *SAMPLE, f"out_dir={tmp_path / 's'}",
        cwd=tmp_path)
    assert len(json.loads((tmp_path / "s" / "points.json").read_text())) == 20
    assert (tmp_path / "s" / "figure.png").read_text() == "20 points\n"


def test_classifier_free_guidance_with_a_condition_from_the_command_line(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = [f"checkpoint={ckpt}", *SAMPLE, "cond.label=2", f"out_dir={tmp_path}"]
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        train_cfg = compose("train", overrides=["experiment=toy_cfg", *TINY, "train.steps=3"])
        guided_cfg = compose("sample", overrides=args + ["guidance=cfg", "guidance.scale=3.0"])
        plain_cfg = compose("sample", overrides=args)
    torch.set_num_threads(1)
    train.run(train_cfg, tmp_path / "run")
    assert load_checkpoint(ckpt)["config"]["loss"]["cond_dropout"] == 0.2
    _, guided = sample.draw(OmegaConf.to_container(guided_cfg, resolve=True))
    _, plain = sample.draw(OmegaConf.to_container(plain_cfg, resolve=True))
    assert len(guided) == len(plain) == 20 and not np.allclose(np.stack(guided), np.stack(plain))


def test_demo_writes_figure_metrics_and_samples(tmp_path, capsys):
    from sciffusion import demo

    threads = torch.get_num_threads()
    try:
        out = demo.main(["--out", str(tmp_path / "demo"), "--only", "toy", "--toy-steps", "20"])
    finally:
        torch.set_num_threads(threads)
    toy = out / "toy"
    assert {"figure.png", "metrics.json", "samples.npy", "samples.csv", "run"} <= {p.name for p in toy.iterdir()}
    assert "mean_error" in json.loads((toy / "metrics.json").read_text())
    printed = capsys.readouterr().out
    assert str(toy) in printed and "figure.png" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["toy"]["ok"] and summary["toy_joint"]["ok"]  # the mixed point + label example too
    assert "label_consistency" in json.loads((out / "toy_joint" / "metrics.json").read_text())


def test_demo_samples_every_shipped_checkpoint_molecules_first(tmp_path):
    """The demo's plan: one ordinary command per shipped checkpoint, molecules first."""
    from sciffusion import demo

    plan = demo.demo_steps(tmp_path)
    names = [name for name, _, _ in plan]
    folder = {"images_latent": "latent"}  # where a step's checkpoint lives, where not in its domain's folder
    shipped = [d for d, f in [("molecules", "qm9_joint_cpu.ckpt"), ("molecules_edm", "qm9_cpu.ckpt"),
                              ("images", "mnist_unet.ckpt"), ("images_2step", "mnist_consistency.ckpt"),
                              ("images_latent", "mnist_latent_unet.ckpt"), ("weather", "hadisst_forecast.ckpt"),
                              ("video", "turbulence_forecast.ckpt"), ("video_digits", "moving_digits_forecast.ckpt"),
                              ("audio", "spoken_digits.ckpt")]
               if demo.shipped(folder.get(d, demo.DOMAIN_OF.get(d, d)), f) is not None]
    assert names[:len(shipped)] == shipped and (not shipped or names[0] == shipped[0])
    assert {demo.DOMAIN_OF.get(name, name) for name in names} <= set(shipped)  # extra steps belong to a domain
    if demo.shipped("latent", "spoken_digits_latent_unet.ckpt") is not None:  # beside the pixel audio model's steps
        assert names.index("audio_latent") > names.index("audio")
    for _, _, command in plan:
        assert command[0] == "-m" and any(arg.startswith("checkpoint=") for arg in command)
