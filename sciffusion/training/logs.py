"""Where training reports go: a JSON-lines file, TensorBoard (when installed) and a tqdm bar.

Only rank 0 logs; other ranks get a logger that does nothing.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


def forget_after(path: Path, step: int) -> None:
    """Drop the records after ``step`` from a metrics file: a run resumed from step N (or started afresh,
    N = 0) logs steps N+1... again, and each step must appear once. Rewritten atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _step_of(line) <= step]
    if len(kept) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept))
    os.replace(tmp, path)


def _step_of(line: str) -> float:
    """The step of a metrics record; a line that is not one (cut off by a kill mid-write) counts as after."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


class RunLogger:
    """Appends one JSON object per line to ``metrics.jsonl``; mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | Path, *, total_steps: int, start_step: int = 0, enabled: bool = True,
                 tensorboard: bool = True, progress: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        self.bar = None
        self.file = None  # opened at the first record: a run that logs nothing leaves no empty file
        self._last_time, self._last_step = time.perf_counter(), start_step
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        forget_after(self.path, start_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: TensorBoard too drops what a killed run logged after its checkpoint.
                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start_step + 1)
            except ImportError:
                warnings.warn("TensorBoard is not installed, logging to metrics.jsonl only; "
                              "pip install 'sciffusion[tensorboard]'", stacklevel=2)
        if progress:
            self.bar = tqdm(total=total_steps, initial=start_step, desc="train", dynamic_ncols=True)

    def throughput(self, step: int, batch_size: int) -> dict[str, float]:
        """Steps and samples per second since the previous call."""
        now = time.perf_counter()
        steps_per_s = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        return {"steps_per_s": steps_per_s, "samples_per_s": steps_per_s * batch_size}

    def log(self, step: int, values: dict[str, Any], *, kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": step, "kind": kind, "time": time.time(), **values}
        if self.file is None:
            self.file = open(self.path, "a", buffering=1)
        self.file.write(json.dumps(record, default=float) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)
        if self.bar is not None and kind == "train":
            self.bar.set_postfix(loss=f"{values.get('loss', float('nan')):.4g}",
                                 it_s=f"{values.get('steps_per_s', 0):.1f}", refresh=False)

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()
        if self.bar is not None:
            self.bar.close()
