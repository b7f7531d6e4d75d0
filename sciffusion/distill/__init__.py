"""Distillation to one to four sampling steps, as training losses of the usual ``Trainer`` and
``sciffusion-train`` (teacher checkpoint in through ``loss.teacher``, student checkpoint out, resumable),
sampled by ``sciffusion-sample`` like any other checkpoint:

    ProgressiveDistillationLoss   Salimans & Ho 2022        sampler=ddim grid=uniform_t steps=N
    ConsistencyDistillationLoss   Song et al. 2023          sampler=consistency steps=1..4
    ConsistencyTrainingLoss       Geng et al. 2024 (ECT)    sampler=consistency steps=1..4
    ReflowLoss                    Liu et al. 2023           sampler=euler grid=uniform_t steps=1..4

The ``consistency`` sampler is registered in ``sciffusion.samplers.SAMPLERS`` by the samplers package.
"""
from __future__ import annotations

from .consistency import ConsistencyDistillationLoss, ConsistencyPrecond, ConsistencyTrainingLoss, sample_consistency
from .progressive import ProgressiveDistillationLoss
from .reflow import ReflowLoss
from .teacher import Teacher, ode_step

__all__ = ["ConsistencyDistillationLoss", "ConsistencyPrecond", "ConsistencyTrainingLoss", "ProgressiveDistillationLoss",
           "ReflowLoss", "Teacher", "ode_step", "sample_consistency"]
