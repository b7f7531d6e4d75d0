"""The wb2 path end to end under ``torchrun``: two gloo ranks, a DataLoader worker each opening the
synthetic store itself, statistics computed by rank 0 and read from the cache by rank 1."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("xarray")
pytest.importorskip("zarr")

from sciffusion.testing import run_app  # noqa: E402
from sciffusion_domains.weather.synthetic import write_synthetic_store  # noqa: E402


@pytest.mark.slow
def test_two_ranks_train_the_tiny_wb2_experiment_with_loader_workers(tmp_path):
    path = write_synthetic_store(tmp_path / "s.zarr", variables=["2m_temperature", "geopotential"], levels=[500],
                                 shape=(16, 32), steps=120)
    run_dir = tmp_path / "run"
    run_app("train", "experiment=wb2_tiny", f"domain.sources.0.path={path}", f"hydra.run.dir={run_dir}",
            f"domain.stats_cache={tmp_path / 'cache'}", cwd=tmp_path, torchrun=2, timeout=240)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "cache").glob("weather_stats_*.npz"))) == 1
