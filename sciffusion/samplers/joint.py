"""Sampling a state with continuous and categorical parts on one time grid.

The continuous part runs any of the core's samplers unchanged (``ddpm``, ``ddim``, ``heun``,
``dpmpp_2m``, ``unipc``...); the categorical parts take their reverse step ("posterior": the exact
ancestral step of the mixing process; "euler": the discrete flow's Euler / tau-leaping step, with
``eta`` for corrector / remasking noise) after each of the continuous sampler's steps, from the
class probabilities of the denoiser's first evaluation at that step's time. The denoiser always sees
the whole current state, and receives the previous estimate in ``cond[SELF_COND]``
(self-conditioning). At the last step (to t = 0) categorical parts are drawn from the denoiser's
probabilities (``final="sample"``, what the exact process does) or set to their most probable class
(``final="argmax"``).

A second-order sampler such as Heun evaluates the denoiser again at t_{i+1} before the categorical
parts have stepped there; that evaluation sees them at t_i. A purely categorical state needs no
continuous sampler: the loop below steps it directly.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..categorical import CategoricalProcess, sample_classes, step_probs
from ..joint import SELF_COND, JointProcess
from ..parameterization import Cond
from ..state import PartsSpace
from ._common import Grid

FINALS = ("sample", "argmax")


def _step_categorical(process: CategoricalProcess, x_t: Tensor, p0: Tensor, t: float, s: float, *,
                      method: str, eta: float, final: str, generator) -> Tensor:
    if s == 0.0 and final == "argmax":
        return process.consistent(x_t, p0.double(), _full(process.kappa, t, x_t))[0].argmax(-1)
    probs = step_probs(process, method, x_t, p0.double(), _full(process.kappa, t, x_t), _full(process.kappa, s, x_t),
                       eta=eta)
    return sample_classes(probs, generator)


def _full(kappa: Callable[[Tensor], Tensor], t: float, like: Tensor) -> Tensor:
    return kappa(torch.full(like.shape, t, dtype=torch.float64, device=like.device))


def sample_joint(denoiser, x: dict[str, Tensor], ts: Tensor | list[float], *, process: JointProcess,
                 space: PartsSpace, sampler: str = "ddpm", categorical: str = "posterior", eta: float = 0.0,
                 final: str = "sample", cond: Cond | None = None, generator: torch.Generator | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None, **options) -> dict[str, Tensor]:
    """Run ``denoiser`` (a joint denoiser: dict state in, dict of x0 estimates / probabilities out)
    from the state ``x`` at ts[0] down the grid ``ts`` to t = 0; returns the final state.

    ``sampler`` (with ``options``) drives the continuous part; ``categorical`` and ``eta`` choose the
    categorical step; ``callback`` receives ``{"i", "t", "t_next", "x", "x0_hat"}`` with dict states.
    """
    from . import SAMPLERS

    if final not in FINALS:
        raise ValueError(f"unknown final categorical step {final!r}; choose one of {FINALS}")
    process.check(x)
    cond = {} if cond is None else cond
    grid = Grid.of(process.grid_process, ts)
    continuous, categorical_parts = process.continuous, process.categorical
    if len(continuous) > 1:
        raise ValueError(f"the joint sampler drives one continuous part with a core sampler; this state has "
                         f"{continuous}: give them one part (concatenate their columns) or sample them separately")
    if sampler == "ode":
        raise ValueError("the adaptive 'ode' sampler chooses its own times, which categorical steps cannot follow; "
                         "use a fixed-grid sampler (ddpm, ddim, euler, heun, dpmpp_2m, unipc...)")
    state = dict(x)
    memory: dict[str, Any] = {"i": 0, "at_step": None, "last": None}

    def evaluate(current: dict[str, Tensor], t: Tensor) -> dict[str, Tensor]:
        c = cond if memory["last"] is None else {**cond, SELF_COND: memory["last"]}
        out = denoiser(current, t, space, c)
        memory["last"] = out
        if memory["at_step"] is None:  # every fixed-grid sampler's first evaluation in step i is at t_i
            memory["at_step"] = out
        return out

    def advance(i: int, x_cont: Tensor | None) -> None:
        out, s = memory["at_step"], grid.t[i + 1]
        if out is None:
            raise RuntimeError(f"the continuous sampler did not evaluate the denoiser at t={grid.t[i]} in step {i}")
        for name in categorical_parts:
            state[name] = _step_categorical(process[name], state[name], out[name], grid.t[i], s,
                                            method=categorical, eta=eta, final=final, generator=generator)
        if x_cont is not None:
            state[continuous[0]] = x_cont
        memory["i"], memory["at_step"] = i + 1, None
        if callback is not None:
            callback({"i": i, "t": grid.t[i], "t_next": s, "x": dict(state), "x0_hat": out})

    if not continuous:
        for i in range(grid.steps):
            t = torch.full((space.batch_size(state),), grid.t[i], device=next(iter(state.values())).device)
            evaluate(state, t)
            advance(i, None)
        return state

    name = continuous[0]
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")

    def continuous_denoiser(x_c: Tensor, t: Tensor, part_space, c: Cond) -> Tensor:
        return evaluate({**state, name: x_c}, t)[name]

    result = SAMPLERS[sampler](continuous_denoiser, state[name], grid.t, process=process[name], space=space[name],
                               cond=cond, generator=generator, callback=lambda info: advance(info["i"], info["x"]),
                               **options)
    state[name] = result
    return state


__all__ = ["FINALS", "sample_joint"]
