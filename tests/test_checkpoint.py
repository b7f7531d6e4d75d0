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


def test_half_weights_halve_a_sampling_checkpoint_and_load_back_within_float16_rounding(tmp_path):
    from sciffusion.training import for_sampling, half_weights

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.Linear(64, 8))
    weights = net.state_dict()  # float32 weights and buffers, an int64 num_batches_tracked
    state = {"step": 3, "config": {}, "domain": {"autoencoder": {"options": {}, "weights": {"w": torch.randn(4, 4)}},
                                                  "base": {"critic": {"options": {"depth": 2},
                                                                      "weights": {"v": torch.randn(3)}}},
                                                  "grid": {"weights": {"area": torch.rand(5)}},  # data, not a network
                                                  "mean": torch.zeros(2)},
             "ema": {"decay": 0.99, "num_updates": 3, "module": weights}, "optimizer": {"state": {}}}
    full, half = for_sampling(state), for_sampling(state, half=True)
    assert "optimizer" not in half and half["model"] is half["ema"]["module"]  # one copy on disk
    assert half["model"]["0.weight"].dtype == torch.float16
    assert half["model"]["1.num_batches_tracked"].dtype == torch.int64  # only float32 tensors change
    assert half["domain"]["autoencoder"]["weights"]["w"].dtype == torch.float16  # a latent domain's autoencoder
    assert state["domain"]["base"]["critic"]["weights"]["v"].dtype == torch.float32
    assert half["domain"]["base"]["critic"]["weights"]["v"].dtype == torch.float16  # at any depth
    assert half["domain"]["base"]["critic"]["options"] == {"depth": 2}
    assert half["domain"]["mean"].dtype == torch.float32  # other domain state as it was
    assert half["domain"]["grid"]["weights"]["area"].dtype == torch.float32  # a "weights" entry of data stays
    assert state["domain"]["autoencoder"]["weights"]["w"].dtype == torch.float32  # the input is left alone
    assert full["model"]["0.weight"].dtype == torch.float32
    save_checkpoint(full, tmp_path / "full.ckpt")
    save_checkpoint(half, tmp_path / "half.ckpt")
    assert (tmp_path / "half.ckpt").stat().st_size < 0.6 * (tmp_path / "full.ckpt").stat().st_size
    loaded = load_checkpoint(tmp_path / "half.ckpt")["model"]
    copy = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.BatchNorm1d(64), torch.nn.Linear(64, 8))
    copy.load_state_dict(loaded)  # load_state_dict casts back into the float32 parameters
    assert copy[0].weight.dtype == torch.float32
    for key, value in weights.items():
        if value.is_floating_point():  # each weight within float16's rounding, 2^-11 of itself
            assert (copy.state_dict()[key] - value).abs().max() <= value.abs().max() * 2**-11
    assert not torch.equal(copy[0].weight, net[0].weight)  # rounded, not stored twice at full precision
    x = torch.randn(16, 64)
    net.eval(), copy.eval()
    torch.testing.assert_close(copy(x), net(x), rtol=0, atol=5e-3)
    with pytest.raises(ValueError, match="beyond float16's range.*float32"):
        half_weights({"w": torch.tensor([1e5])})
