"""Exponential moving average of a model's weights (Polyak averaging), kept as a full module copy."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema <- decay * ema + (1 - decay) * weights after every optimiser step.

    The decay warms up as min(decay, (1 + n) / (10 + n)) over the first updates so that the average
    is not dominated by the random initial weights (TensorFlow's ExponentialMovingAverage ``num_updates``).
    Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.num_updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1 - self.current_decay()
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if ema_params:
            torch._foreach_lerp_(ema_params, params, weight)
        for ema_buf, buf in zip(self.module.buffers(), model.buffers()):
            ema_buf.copy_(buf)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.num_updates = state["decay"], state["num_updates"]
        self.module.load_state_dict(state["module"])
