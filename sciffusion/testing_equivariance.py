"""``assert_equivariant``: check a point-cloud function under rotations, reflections, translations
and permutations of the points, as e3nn's ``assert_equivariant`` does for irreps.

The function takes a batch and its space, ``fn(x, space) -> y`` with ``y`` shaped like ``x``:

* a one-tensor state ``x [N, F]`` in a ``GraphSpace``: the columns ``positions`` (by default the
  space's ``zero_mean`` columns, else 0..2) are 3-D coordinates, every other column a scalar;
* a ``dict`` state in a ``PartsSpace``: the part ``positions`` (default ``"pos"``) holds the
  coordinates ``[N, 3]``; the other node parts (``GraphSpace``) are scalars or class indices, and
  edge parts (``EdgeSpace``) follow the nodes' permutation through their index.

Everything runs in float64: floating inputs are converted, so ``fn`` (a network built with
``dtype=torch.float64``, a sampling run driven by it) must accept float64. Atoms are permuted within
each sample, so rows of a sample stay where they were (PyG's layout) and per-sample conditions stay
valid; ``fn`` closes over its conditions and times.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from .space import GraphSpace
from .state import EdgeSpace, PartsSpace, State

CHECKS = ("rotation", "reflection", "translation", "permutation")


def random_isometry(generator: torch.Generator, *, reflect: bool) -> Tensor:
    """A random orthogonal 3x3 matrix (float64) with determinant -1 if ``reflect`` else +1."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if (torch.det(q) < 0) != reflect:
        q = q @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    return q


def _within_sample_permutation(batch: Tensor, generator: torch.Generator) -> Tensor:
    """``perm [N]``: new row k is old row perm[k]; rows only move among the rows of their sample."""
    perm = torch.arange(batch.numel())
    for b in torch.unique(batch).tolist():
        rows = torch.nonzero(batch == b).flatten()
        perm[rows] = rows[torch.randperm(rows.numel(), generator=generator)]
    return perm


class _Layout:
    """Where the coordinates are and how the batch's rows are grouped into samples."""

    def __init__(self, x: State, space, positions):
        if isinstance(x, Tensor):
            if not isinstance(space, GraphSpace):
                raise TypeError(f"assert_equivariant takes point clouds: a one-tensor state needs a GraphSpace, "
                                f"got {type(space).__name__}")
            cols = list(positions) if positions is not None else (list(space.zero_mean) or [0, 1, 2])
            if len(cols) != 3:
                raise ValueError(f"positions must name 3 coordinate columns, got {cols}")
            self.part, self.cols, self.node_space = None, cols, space
        else:
            if not isinstance(space, PartsSpace):
                raise TypeError(f"a dict state needs a PartsSpace, got {type(space).__name__}")
            part = positions if positions is not None else "pos"
            if part not in x:
                raise ValueError(f"positions={part!r} is not a part of the state; its parts are {sorted(x)}; pass "
                                 "positions=<the coordinate part>")
            self.part, self.cols, self.node_space = part, [0, 1, 2], space[part]

    def act(self, x: State, space, *, rotation=None, shift=None, perm=None):
        """``(g x, g space)``: coordinates rotated and shifted per sample, then node rows permuted."""
        batch = self.node_space.batch

        def move(v: Tensor) -> Tensor:
            pos = v[:, self.cols]
            if rotation is not None:
                pos = pos @ rotation.T.to(v)
            if shift is not None:
                pos = pos + shift.to(v)[batch]
            out = v.clone()
            out[:, self.cols] = pos
            return out

        if isinstance(x, Tensor):
            x = move(x)
            return (x, space) if perm is None else (x[perm], space)
        x = {**x, self.part: move(x[self.part])}
        if perm is None:
            return x, space
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        parts, spaces = {}, {}
        for name, part_space in space.items():
            if isinstance(part_space, EdgeSpace):  # same edge rows, the nodes they join renamed
                index = inverse.to(part_space.index.device)[part_space.index].sort(0).values
                parts[name] = x[name]
                spaces[name] = EdgeSpace(index, part_space.batch, part_space.num_samples, part_space.num_nodes)
            else:
                parts[name], spaces[name] = x[name][perm], part_space
        return parts, PartsSpace(spaces)

    def pieces(self, y: State) -> dict[str, Tensor]:
        """Named pieces of an output, for the error message: coordinates and the rest."""
        if isinstance(y, Tensor):
            rest = [c for c in range(y.shape[1]) if c not in self.cols]
            return {"positions": y[:, self.cols], "other columns": y[:, rest]}
        return dict(y)


def _to_float64(x: State) -> State:
    conv = lambda v: v.to(torch.float64) if v.is_floating_point() else v
    return conv(x) if isinstance(x, Tensor) else {k: conv(v) for k, v in x.items()}


def _error(got: Tensor, expected: Tensor) -> float:
    """max |got - expected| relative to max(|expected|, 1); class indices must match exactly."""
    if got.shape != expected.shape:
        return float("inf")
    if not expected.is_floating_point():
        return float((got != expected).any())
    if expected.numel() == 0:
        return 0.0
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(1.0))


def assert_equivariant(fn: Callable, x: State, space, *, positions: Sequence[int] | str | None = None,
                       translate_outputs: bool = False, checks: Sequence[str] = CHECKS, tolerance: float = 1e-9,
                       seed: int = 0) -> dict[str, float]:
    """Assert ``fn(g x, g space) == g' fn(x, space)`` for a random rotation, a rotation composed with
    a reflection, a translation of each sample and a permutation of each sample's atoms; ``g'`` is
    ``g`` but translates the outputs' coordinates only with ``translate_outputs`` (a denoiser's
    prediction of centred positions does not move with its input; a function that returns moved
    points does). Errors are ``max |difference| / max(|expected|, 1)`` in float64; returns them
    by check and raises ``AssertionError`` naming each check and output that exceeds ``tolerance``."""
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {list(CHECKS)}")
    x = _to_float64(x)
    layout = _Layout(x, space, positions)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        out = fn(x, space)
    samples = layout.node_space.num_samples
    errors, problems = {}, []
    for check in checks:
        action = {"rotation": dict(rotation=random_isometry(g, reflect=False)),
                  "reflection": dict(rotation=random_isometry(g, reflect=True)),
                  "translation": dict(shift=5.0 * torch.randn(samples, 3, generator=g, dtype=torch.float64)),
                  "permutation": dict(perm=_within_sample_permutation(layout.node_space.batch.cpu(), g).to(
                      layout.node_space.batch.device))}[check]
        moved_x, moved_space = layout.act(x, space, **action)
        with torch.no_grad():
            got = fn(moved_x, moved_space)
        out_action = dict(action)
        if not translate_outputs:
            out_action.pop("shift", None)
        expected, _ = layout.act(out, space, **out_action)
        worst = 0.0
        for name, want in layout.pieces(expected).items():
            err = _error(layout.pieces(got)[name], want)
            worst = max(worst, err)
            if not err <= tolerance:
                problems.append(f"{check}: {name} off by {err:.3g} > {tolerance:g}")
        errors[check] = worst
    if problems:
        raise AssertionError("the function is not equivariant: " + "; ".join(problems))
    return errors
