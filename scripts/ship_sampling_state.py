"""Add to every shipped checkpoint what sampling needs without its data, and the sampling settings
that measured best for it, without touching its weights:

    python scripts/ship_sampling_state.py [--check]

For each checkpoint in ``sciffusion.shipped.SHIPPED``: the domain is built from the checkpoint's
config with its stored state, its ``state_dict()`` is completed from the data (the image shape and
classes, QM9's atom-count histograms and property statistics, the weather grid and recent windows),
and ``sampling_defaults`` is set from ``Shipped.best``. Every other key is compared before and after
and the file is re-saved atomically (``save_checkpoint``). ``--check`` only reports what would change.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

from sciffusion import shipped
from sciffusion.cli import build
from sciffusion.training import load_checkpoint, save_checkpoint


def same(a: Any, b: Any) -> bool:
    """Exact equality of nested checkpoint values (tensors bit for bit)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and \
            a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def complete(name: str, entry: shipped.Shipped, check: bool) -> None:
    path = entry.path()
    if path is None:
        print(f"{name}: not installed, skipped")
        return
    state = load_checkpoint(path)
    domain = build.build_domain(state["config"])
    domain.load_state_dict(state.get("domain", {}))
    new = dict(state, domain=domain.state_dict(), sampling_defaults=dict(entry.best, measured=entry.measured))
    kept = [k for k in state if k not in ("domain", "sampling_defaults")]
    assert all(same(state[k], new[k]) for k in kept), f"{name}: a key besides domain/sampling_defaults changed"
    for key, value in state.get("domain", {}).items():
        assert same(value, new["domain"][key]), f"{name}: the stored domain state {key!r} changed"
    added = sorted(set(new["domain"]) - set(state.get("domain", {})))
    print(f"{name}: {path.name}: domain state + {added or 'nothing'}; sampling_defaults {new['sampling_defaults']}")
    if not check:
        mode = path.stat().st_mode & 0o777
        save_checkpoint({k: v for k, v in new.items() if k not in ("format", "version")}, path)
        path.chmod(mode)  # the temporary file was private


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report only, write nothing")
    args = parser.parse_args()
    for name, entry in shipped.SHIPPED.items():
        complete(name, entry, args.check)


if __name__ == "__main__":
    main()
