"""Checkpoints: atomic writes, safe loading with clear errors, RNG states, and bitwise-identical
resumption after a training process is killed with SIGKILL."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sciffusion.training import CheckpointError, load_checkpoint, save_checkpoint
from sciffusion.training.checkpoint import rng_state, set_rng_state


def test_round_trip_is_atomic_and_loads_with_weights_only(tmp_path):
    path = tmp_path / "ckpt" / "last.ckpt"
    state = {"step": 7, "model": {"w": torch.randn(3, 2)}, "config": {"a": [1, 2.5, "x", None]}}
    save_checkpoint(state, path)
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["config"] == state["config"]
    torch.testing.assert_close(loaded["model"]["w"], state["model"]["w"], rtol=0, atol=0)


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = save_checkpoint({"step": 1}, tmp_path / "last.ckpt")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_truncated_foreign_unsafe_and_missing_files_give_clear_errors(tmp_path):
    good = save_checkpoint({"step": 1, "model": {"w": torch.zeros(1000)}}, tmp_path / "good.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)

    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="not a sciffusion checkpoint"):
        load_checkpoint(foreign)

    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "sciffusion-checkpoint", "thing": Path("/")}, unsafe)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_checkpoint(unsafe)

    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_rng_states_survive_a_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    path = save_checkpoint({"rng": rng_state()}, tmp_path / "rng.ckpt")
    expected = (torch.rand(3), np.random.randn(3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(load_checkpoint(path)["rng"])
    torch.testing.assert_close(torch.rand(3), expected[0], rtol=0, atol=0)
    np.testing.assert_array_equal(np.random.randn(3), expected[1])
    assert random.random() == expected[2]


TRAIN = ["train.steps=300", "train.batch_size=16", "train.save_every=20", "train.log_every=50",
         "train.progress=false", "train.tensorboard=false", "train.ema_decay=0.9", "train.warmup=30",
         "domain.train_size=512", "network.hidden=16", "network.depth=2"]


def _train(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sciffusion.cli.train", *TRAIN, f"hydra.run.dir={run_dir}"],
                            cwd=run_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_gives_bitwise_identical_weights(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    victim = _train(killed)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"training ended before the kill: {victim.stderr.read()[-2000:]}"
    assert load_checkpoint(last)["step"] < 300

    uninterrupted = _train(reference)
    resumed = _train(killed)  # resume=auto picks up checkpoints/last.ckpt
    for proc in (uninterrupted, resumed):
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    a, b = (load_checkpoint(d / "checkpoints" / "last.ckpt") for d in (reference, killed))
    assert a["step"] == b["step"] == 300
    for part in ("model", "ema", "optimizer", "schedule"):
        assert _equal(a[part], b[part]), f"{part} differs after resuming"


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b
