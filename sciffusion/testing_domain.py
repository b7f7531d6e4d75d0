"""``assert_domain_contract``: what the core and the apps expect of every domain plugin.

One call checks a domain end to end on a few items: its dataset and collate give a ``Batch`` the
core can use, ``condition`` and ``template`` describe new samples shaped like the data, ``decode``,
``save`` and ``figure`` turn a batch into objects and files, ``state_dict`` survives a checkpoint
(``torch.load(weights_only=True)``) and a model folder (safetensors + JSON), and an unknown
condition is refused with its name. Plugin authors call it from their own tests::

    from sciffusion.testing import assert_domain_contract

    def test_contract(tmp_path):
        assert_domain_contract(RingDomain(size=64), tmp_path)
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from .domain import Batch, Domain, check_condition_request, space_to
from .state import State

BOGUS = "no_such_condition"


def _parts(x: State) -> dict[str, Tensor]:
    return {"x": x} if isinstance(x, Tensor) else dict(x)


def _check_state(x: State, space, n: int, what: str) -> None:
    if not isinstance(x, (Tensor, dict)):
        raise AssertionError(f"{what}: the state must be a tensor or a dict of tensors, got {type(x).__name__}")
    if space.batch_size(x) != n:
        raise AssertionError(f"{what}: its space counts {space.batch_size(x)} samples, expected {n}")
    for name, part in _parts(x).items():
        if part.is_floating_point() and not torch.isfinite(part).all():
            raise AssertionError(f"{what}: part {name!r} holds NaN or infinite values")


def _check_cond(cond: Any, n: int, what: str) -> None:
    if not isinstance(cond, dict):
        raise AssertionError(f"{what}: conditions must be a dict, got {type(cond).__name__}")
    for key, value in cond.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] != n:
            raise AssertionError(f"{what}: condition {key!r} has {value.shape[0]} rows for {n} samples")


def _same_layout(data: State, new: State) -> None:
    """A template is shaped like the data: same parts, trailing shapes and kinds (classes vs values)."""
    a, b = _parts(data), _parts(new)
    if set(a) != set(b):
        raise AssertionError(f"template parts {sorted(b)} differ from the data's {sorted(a)}")
    for name in a:
        if a[name].shape[1:] != b[name].shape[1:]:
            raise AssertionError(f"template part {name!r} has per-row shape {tuple(b[name].shape[1:])}, the data "
                                 f"{tuple(a[name].shape[1:])}")
        if a[name].is_floating_point() != b[name].is_floating_point():
            raise AssertionError(f"template part {name!r} is {b[name].dtype}, the data {a[name].dtype}")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype \
            and bool(torch.equal(a.cpu(), b.cpu()))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(u, v) for u, v in zip(a, b))
    return a == b


def _round_trip(state: dict[str, Any]) -> dict[str, Any]:
    """The state as a checkpoint returns it, then as a model folder returns that."""
    from .pretrained import join_tensors, split_tensors

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        loaded = torch.load(buffer, weights_only=True)
    except Exception as err:
        raise AssertionError(f"state_dict() does not load with weights_only=True ({err}); keep it to tensors and "
                             "plain values (numbers, strings, lists, dicts)") from None
    tensors: dict[str, Tensor] = {}
    try:
        text = json.dumps(split_tensors(loaded, tensors))
    except TypeError as err:
        raise AssertionError(f"state_dict() does not fit a model folder's JSON ({err}); keep it to tensors and "
                             "plain values") from None
    return join_tensors(json.loads(text), tensors)


def assert_domain_contract(domain: Domain, out_dir: str | Path, *, num_samples: int = 4, split: str = "train",
                           fresh: Callable[[], Domain] | None = None, figure: bool = True) -> Batch:
    """Check ``domain`` against the plugin contract on ``num_samples`` items of ``split``, writing
    files under ``out_dir``; ``fresh`` builds the same domain anew (same options, nothing learned
    yet) to load the state into, by default the domain itself. Returns the collated batch."""
    name = f"domain {domain.name!r}"
    out_dir = Path(out_dir)
    data = domain.dataset(split)
    if len(data) < num_samples:
        raise AssertionError(f"{name}: dataset({split!r}) has {len(data)} items, the check needs {num_samples}")
    batch = domain.collate([data[i] for i in range(num_samples)])
    if not isinstance(batch, Batch):
        raise AssertionError(f"{name}: collate must return a Batch, got {type(batch).__name__}")
    _check_state(batch.x, batch.space, num_samples, f"{name} collate")
    _check_cond(batch.cond, num_samples, f"{name} collate")
    if len(batch.to("cpu")) != num_samples or len(Batch(batch.x, space_to(batch.space, "cpu"))) != num_samples:
        raise AssertionError(f"{name}: the batch changed size when moved to the CPU")

    cond = domain.condition(num_samples, generator=torch.Generator().manual_seed(0))
    _check_cond(cond, num_samples, f"{name} condition")
    again = domain.condition(num_samples, generator=torch.Generator().manual_seed(0))
    if not _equal(cond, again):
        raise AssertionError(f"{name}: condition() with the same generator seed gave different conditions")
    x, space = domain.template(num_samples, generator=torch.Generator().manual_seed(0), cond=cond)
    if space.batch_size(x) != num_samples:
        raise AssertionError(f"{name}: template's space counts {space.batch_size(x)} samples, expected {num_samples}")
    _same_layout(batch.x, x)

    objects = domain.decode(batch.x, batch.space, batch.cond)
    if len(objects) != num_samples:
        raise AssertionError(f"{name}: decode returned {len(objects)} objects for {num_samples} samples")
    written = domain.save(objects, out_dir / "saved")
    if not written or not all(Path(p).is_file() for p in written):
        raise AssertionError(f"{name}: save must return the files it wrote, got {written}")
    if figure:
        path = domain.figure(objects, out_dir / "figure.png")
        if not Path(path).is_file():
            raise AssertionError(f"{name}: figure returned {path}, which does not exist")

    state = domain.state_dict()
    restored = fresh() if fresh is not None else domain
    restored.load_state_dict(_round_trip(state))
    if not _equal(restored.state_dict(), state):
        raise AssertionError(f"{name}: state_dict() after load_state_dict(state_dict()) differs; the state does "
                             "not survive a checkpoint")
    x2, space2 = restored.template(num_samples, generator=torch.Generator().manual_seed(0), cond=cond)
    if not _equal(_parts(x2), _parts(x)) or space2.batch_size(x2) != num_samples:
        raise AssertionError(f"{name}: a domain restored from the state draws other templates than the original")

    try:
        check_condition_request(domain, {BOGUS: 1})
        domain.condition(num_samples, **{BOGUS: 1})
    except ValueError as err:
        if BOGUS not in str(err):
            raise AssertionError(f"{name}: the error for an unknown condition does not name it: {err}") from None
    else:
        raise AssertionError(f"{name}: an unknown condition ({BOGUS}=1) was accepted silently")
    return batch
