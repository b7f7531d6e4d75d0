"""Rectified-flow reflow (Liu et al. 2023, sec. 2.3): draw noise z, let the teacher's probability-flow
ODE carry it to a sample x = T(z), and fit a flow on the linear interpolant x_t = (1 - t) x + t z of
these fixed pairs. Its paths no longer cross, so they straighten and few Euler steps suffice
(``sampler=euler grid=uniform_t steps=1..4``); a reflowed student that starts from the teacher's
weights (``train.init_from``) is the paper's 2-rectified flow.

The pairs are drawn once, when the loss first runs, from ``seed`` alone (and kept in ``pairs_file``
when given), so a resumed run trains on the same ones.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..losses import DiffusionLoss, drop_condition
from ..parameterization import Coefficients, Cond
from ..processes import NoiseProcess
from ..space import Space, require_space
from .teacher import Teacher, TeacherSource


class ReflowLoss:
    """Per-sample flow-matching loss ``[B]`` on fixed (noise, teacher sample) pairs.

    Each step draws ``B`` of the ``num_pairs`` pairs (and their conditions) with the step's generator;
    the data batch gives only its size, device and space. ``teacher_sampler``/``teacher_steps``/
    ``teacher_grid`` are how the teacher samples (a deterministic ODE sampler: the map z -> x is what the
    student learns). The time law and weighting are ``DiffusionLoss``'s (default uniform, the plain
    velocity MSE on the linear interpolant). ``cond_dropout`` drops a pair's condition (the unconditional half of CFG)."""

    def __init__(self, process: NoiseProcess, *, teacher: TeacherSource = None, num_pairs: int = 8192,
                 teacher_sampler: str = "heun", teacher_steps: int = 32, teacher_grid: str = "karras",
                 teacher_grid_options: dict[str, Any] | None = None, teacher_guidance: Any = None,
                 time_distribution: str = "uniform", time_options: dict | None = None, weighting: str = "uniform",
                 weighting_options: dict | None = None, seed: int = 0, pairs_file: str | None = None,
                 chunk: int = 1024, cond_dropout: float = 0.0):
        if num_pairs < 1 or chunk < 1:
            raise ValueError(f"need num_pairs >= 1 and chunk >= 1, got {num_pairs} and {chunk}")
        self.process, self.num_pairs, self.seed, self.chunk = process, num_pairs, seed, chunk
        self.cond_dropout = cond_dropout
        self.teacher = Teacher(teacher, process=process, guidance=teacher_guidance)
        self.sampling = {"sampler": teacher_sampler, "steps": teacher_steps, "grid": teacher_grid,
                         "grid_options": dict(teacher_grid_options or {})}
        self.pairs_file = Path(pairs_file) if pairs_file else None
        self.base = DiffusionLoss(process, time_distribution=time_distribution, time_options=time_options,
                                  weighting=weighting, weighting_options=weighting_options)
        self._pairs: dict[str, Any] | None = None

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample_time(n, generator)

    @torch.no_grad()
    def draw_pairs(self, like: Tensor, space: Space) -> dict[str, Any]:
        """{"noise", "x0" [num_pairs, ...], "cond": {...}}: standard normal noise, the teacher's ODE
        sample from it, and the conditions it was drawn with (the teacher domain's ``condition``; none
        for a bare denoiser). ``like`` [B, ...] is a data batch, for the shape when there is no domain."""
        from ..samplers import sample
        from ..timesteps import make_grid

        device = like.device
        denoiser = self.teacher.denoiser(device)
        process, model = self.teacher.teacher_process, self.teacher.model
        ts = make_grid(self.sampling["grid"], process, self.sampling["steps"], **self.sampling["grid_options"])
        sigma_max = float(process.sigma(torch.tensor(process.t_max, dtype=torch.float64)))
        g_cpu = torch.Generator().manual_seed(self.seed)
        g_dev = torch.Generator(device).manual_seed(self.seed + 1)
        parts: list[tuple[Tensor, Tensor, Cond]] = []
        for start in range(0, self.num_pairs, self.chunk):
            n = min(self.chunk, self.num_pairs - start)
            if model is not None:
                cond = model.domain.condition(n, generator=g_cpu)
                template, chunk_space = model.domain.template(n, generator=g_cpu, cond=cond)
                cond = {key: v.to(device) for key, v in cond.items()}
            else:
                cond, template, chunk_space = {}, like.new_zeros((n, *like.shape[1:])), space
            noise = chunk_space.randn_like(template.to(device), g_dev)
            x0 = sample(self.sampling["sampler"], denoiser, sigma_max * noise, ts, process=process, space=chunk_space,
                        cond=cond, generator=g_dev)
            parts.append((noise, x0.to(like.dtype), cond))
        return {"noise": torch.cat([p[0] for p in parts]), "x0": torch.cat([p[1] for p in parts]),
                "cond": {key: torch.cat([p[2][key] for p in parts]) for key in parts[0][2]}}

    def pairs(self, like: Tensor, space: Space) -> dict[str, Any]:
        if self._pairs is None:
            if self.pairs_file is not None and self.pairs_file.is_file():
                from ..training.checkpoint import safe_load

                self._pairs = safe_load(self.pairs_file, what="reflow pairs file", map_location=like.device,
                                        fix="delete it to draw the pairs again")
            else:
                with torch.random.fork_rng(devices=[]):
                    self._pairs = self.draw_pairs(like, space)
                if self.pairs_file is not None:
                    self.pairs_file.parent.mkdir(parents=True, exist_ok=True)
                    torch.save(self._pairs, self.pairs_file)
            if self._pairs["x0"].shape[1:] != like.shape[1:]:
                raise ValueError(f"the reflow pairs are shaped {tuple(self._pairs['x0'].shape[1:])} and the data "
                                 f"{tuple(like.shape[1:])}; the teacher must be a model of this data")
        return self._pairs

    def __call__(self, model, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        batch = space.batch_size(x0)
        pairs = self.pairs(x0, space)
        device = torch.device("cpu") if generator is None else generator.device
        i = torch.randint(self.num_pairs, (batch,), generator=generator, device=device).to(x0.device)
        x0, noise = pairs["x0"][i].to(x0), pairs["noise"][i].to(x0)
        cond = drop_condition({key: v[i] for key, v in pairs["cond"].items()}, batch, self.cond_dropout, generator, x0.device)
        if t is None:
            t = self.sample_time(batch, generator)
        t = t.to(device=x0.device, dtype=x0.dtype)
        c = Coefficients.at(self.process, t, x0, space)
        target = model.target.from_x0_eps(x0, noise, c)
        out = model.predict(c.alpha * x0 + c.sigma * noise, t, space, cond)
        return self.base.weight(model, t.double()).to(out) * space.average((out - target) ** 2)
