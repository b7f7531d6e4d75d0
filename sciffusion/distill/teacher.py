"""The frozen teacher of a distillation loss: a trained checkpoint's EMA denoiser, loaded when the loss
first runs (building a distilled checkpoint to sample from it never reads its teacher), or any
denoiser callable given directly (an exact one in the tests).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..parameterization import Coefficients, Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space

TeacherSource = str | Callable[..., Tensor] | None


class Teacher:
    """``source``: a checkpoint path, a ``save_pretrained`` folder or a shipped name (``sciffusion.load``,
    EMA weights), or a denoiser ``D(x_t, t, space, cond) -> x0_hat``. ``guidance``: a CFG scale (or any
    guidance ``sciffusion.load(...).sample`` takes) applied to a loaded teacher, so that the student
    learns the guided model. ``process``: the student's, which the teacher must share where its states
    are compared step for step (``same_process``)."""

    def __init__(self, source: TeacherSource, *, process: NoiseProcess, guidance: Any = None, what: str = "loss.teacher"):
        self.source, self.process, self.guidance, self.what = source, process, guidance, what
        self.model = None  # the loaded sciffusion.api.Model, when source names a checkpoint
        self._denoiser: Denoiser | None = None

    def denoiser(self, device: torch.device) -> Denoiser:
        """The frozen denoiser on ``device``, loaded on first use without touching the global RNG
        (a resumed run loads it at another step than the uninterrupted one)."""
        if self._denoiser is not None:
            if self.model is not None and self.model.device != device:
                self.model.to(device)
            return self._denoiser
        if self.source is None:
            raise ValueError(f"{self.what} is not set: pass the teacher checkpoint, e.g. {self.what}=RUN_DIR/checkpoints/"
                             "last.ckpt (a .ckpt file, a save_pretrained folder or a shipped name such as digits)")
        if callable(self.source):
            self._denoiser = self.source
            return self._denoiser
        from ..api import load
        from ..settings import guidance_config

        with torch.random.fork_rng(devices=[]):
            self.model = load(self.source, device=device)
        for p in self.model.denoiser.parameters():
            p.requires_grad_(False)
        self._denoiser = self.model.guided(guidance_config(self.guidance))
        return self._denoiser

    @property
    def teacher_process(self) -> NoiseProcess:
        return self.model.process if self.model is not None else self.process

    def same_process(self) -> None:
        """Raise unless the loaded teacher runs the student's process (a step of one is only a step of
        the other when both share alpha(t) and sigma(t))."""
        if self.model is not None and repr(self.model.process) != repr(self.process):
            raise ValueError(f"the teacher {self.source} runs {self.model.process!r} and the student {self.process!r}; "
                             "distil with the teacher's process (its config's process: ...)")


def ode_step(denoiser: Denoiser, x: Tensor, t: Tensor, s: Tensor, *, process: NoiseProcess, space: Space,
             cond: Cond, solver: str = "ddim") -> Tensor:
    """One step of the probability-flow ODE from times ``t`` to ``s`` ([B] each, per sample).

    "ddim": x_s = alpha_s x0_hat + sigma_s eps_hat (Song et al. 2021a, eq. 12 with eta = 0: Euler in
    the variance-exploding view y = x / alpha, noise level sigma / alpha). "heun": Heun's second-order
    step in that view (Karras et al. 2022, Alg. 1), its second evaluation at s (which must be > 0)."""
    c_t, c_s = Coefficients.at(process, t, x, space), Coefficients.at(process, s, x, space)
    x0_hat = denoiser(x, t, space, cond)
    if solver == "ddim":
        eps_hat = (x - c_t.alpha * x0_hat) / c_t.sigma
        return c_s.alpha * x0_hat + c_s.sigma * eps_hat
    if solver != "heun":
        raise ValueError(f"unknown teacher solver {solver!r}; choose 'ddim' or 'heun'")
    y, s_t, s_s = x / c_t.alpha, c_t.sigma / c_t.alpha, c_s.sigma / c_s.alpha
    d = (y - x0_hat) / s_t  # dy/ds = eps_hat
    y_next = y + (s_s - s_t) * d
    d_next = (y_next - denoiser(c_s.alpha * y_next, s, space, cond)) / s_s
    return c_s.alpha * (y + (s_s - s_t) * (0.5 * d + 0.5 * d_next))  # Karras et al. 2022, Alg. 1, line 8


def loss_inputs(loss, x0: Tensor, space: Space | None, cond: Cond | None, t: Tensor | None,
                generator: torch.Generator | None) -> tuple[Space, Cond, Tensor]:
    """What every time-sampling distillation loss starts from: the batch's space (required), the
    condition with ``loss.cond_dropout`` applied, and the times (``loss.sample_time`` when not given)."""
    from ..losses import drop_condition
    from ..space import require_space

    space = require_space(space, type(loss).__name__)
    cond = drop_condition(cond or {}, space.batch_size(x0), loss.cond_dropout, generator, x0.device)
    if t is None:
        t = loss.sample_time(space.batch_size(x0), generator)
    return space, cond, t
