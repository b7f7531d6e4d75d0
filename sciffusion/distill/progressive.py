"""Progressive distillation (Salimans & Ho 2022): a student learns to take in one DDIM step what its
teacher takes in two, so that each round halves the number of sampling steps.

Round k is a run of its own: ``train.init_from`` the previous student (the teacher itself in round 1),
``loss.teacher`` the previous student's checkpoint, ``loss.teacher_steps`` the teacher's step count
(the student samples with half as many, ``sampler=ddim grid=<loss.grid>``)::

    sciffusion-train experiment=toy_distill_progressive loss.teacher=T.ckpt train.init_from=T.ckpt \
        loss.teacher_steps=8 hydra.run.dir=runs/pd4
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..losses import DiffusionLoss
from ..parameterization import Coefficients, Cond
from ..processes import NoiseProcess
from ..space import Space
from ..timesteps import make_grid
from .teacher import Teacher, TeacherSource, loss_inputs, ode_step


def grid_index(grid: Tensor, t: Tensor, what: str) -> Tensor:
    """The position [B] of each time of ``t`` in ``grid`` (times a distillation loss drew from it)."""
    gap, index = (t.to(grid)[:, None] - grid[None, :]).abs().min(dim=1)
    if (gap > 1e-6).any():
        raise ValueError(f"{what} trains at the times of its grid {grid.tolist()}; got t = {t.tolist()}")
    return index


class ProgressiveDistillationLoss:
    """Per-sample loss ``[B]`` of a student that matches two DDIM steps of the teacher with one.

    With the teacher's grid t_0 > t_1 > ... > t_2N = 0 (``make_grid(grid, process, teacher_steps)``;
    the student's grid of N steps must be every other time of it), a student time t = t_2i, its
    midpoint t' = t_2i+1 and next time t'' = t_2i+2 (Salimans & Ho 2022, Alg. 2):
        z_t = alpha_t x + sigma_t eps,   z_t'' = two teacher DDIM steps from z_t,
        x_tilde = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t),
    the x0 with which one DDIM step from z_t lands on z_t''. The student's own target (v, eps, x0...)
    follows from (x_tilde, eps_tilde = (z_t - alpha_t x_tilde) / sigma_t), weighted as ``DiffusionLoss``
    weights x0 errors: the default "v" is SNR + 1 on a variance-preserving process, the paper's choice.
    ``cond_dropout`` drops the condition of teacher and student alike (the unconditional half of CFG).
    """

    def __init__(self, process: NoiseProcess, *, teacher: TeacherSource = None, teacher_steps: int = 64,
                 grid: str = "uniform_t", grid_options: dict[str, Any] | None = None, weighting: str = "v",
                 weighting_options: dict | None = None, teacher_guidance: Any = None, cond_dropout: float = 0.0):
        if not isinstance(teacher_steps, int) or teacher_steps < 2 or teacher_steps % 2:
            raise ValueError(f"loss.teacher_steps must be an even number >= 2 (the student takes half), got {teacher_steps}")
        self.process, self.teacher_steps, self.cond_dropout = process, teacher_steps, cond_dropout
        self.teacher = Teacher(teacher, process=process, guidance=teacher_guidance)
        self.base = DiffusionLoss(process, weighting=weighting, weighting_options=weighting_options)
        self.grid = make_grid(grid, process, teacher_steps, **(grid_options or {}))
        student = make_grid(grid, process, teacher_steps // 2, **(grid_options or {}))
        if not torch.allclose(student, self.grid[::2], rtol=0, atol=1e-9):
            raise ValueError(f"grid={grid!r}: the student's grid of {teacher_steps // 2} steps {student.tolist()} is not "
                             f"every other time of the teacher's {self.grid.tolist()}; use grid=uniform_t, whose grids nest")
        self.starts = self.grid[:-1:2]  # the student's times t_2i, i = 0..N-1

    @property
    def student_steps(self) -> int:
        return self.teacher_steps // 2

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Student times [n], uniform over its grid (Salimans & Ho 2022, Alg. 2: t = i / N)."""
        device = torch.device("cpu") if generator is None else generator.device
        i = torch.randint(len(self.starts), (n,), generator=generator, device=device)
        return self.starts.to(device)[i]

    @torch.no_grad()
    def target_x0(self, x_t: Tensor, i: Tensor, *, space: Space, cond: Cond) -> Tensor:
        """x_tilde [shaped like x_t]: the x0 whose DDIM step from (x_t, t_2i) lands where two teacher steps do."""
        teacher = self.teacher.denoiser(x_t.device)
        self.teacher.same_process()
        grid = self.grid.to(x_t.device)
        t, t_mid, t_next = (grid[2 * i + k].to(x_t.dtype) for k in range(3))
        step = lambda x, a, b: ode_step(teacher, x, a, b, process=self.process, space=space, cond=cond)  # noqa: E731
        z_next = step(step(x_t, t, t_mid), t_mid, t_next)
        c, c_next = (Coefficients.at(self.process, s, x_t, space) for s in (t, t_next))
        ratio = c_next.sigma / c.sigma
        return (z_next - ratio * x_t) / (c_next.alpha - ratio * c.alpha)  # Salimans & Ho 2022, Alg. 2

    def __call__(self, model, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space, cond, t = loss_inputs(self, x0, space, cond, t, generator)
        i = grid_index(self.starts.to(x0.device), t, "progressive distillation")
        t = self.grid.to(x0.device)[2 * i].to(x0.dtype)
        x0 = space.project(x0)
        eps = space.randn_like(x0, generator)
        c = Coefficients.at(self.process, t, x0, space)
        x_t = c.alpha * x0 + c.sigma * eps
        x0_tilde = self.target_x0(x_t, i, space=space, cond=cond)
        target = model.target.from_x0_eps(x0_tilde, (x_t - c.alpha * x0_tilde) / c.sigma, c)
        out = model.predict(x_t, t, space, cond)
        return self.base.weight(model, t.double()).to(out) * space.average((out - target) ** 2)
