"""Exponential moving average of a model's weights (Polyak averaging), kept as a full module copy."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema <- decay * ema + (1 - decay) * weights of ``model`` after every optimiser step.

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
        # Listing parameters walks the module tree; once, not at every step.
        self._params = [p.detach() for p in model.parameters()]
        self._ema_params = list(self.module.parameters())
        self._buffers = list(model.buffers())
        self._ema_buffers = list(self.module.buffers())

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the model's current weights."""
        if self._ema_params:
            torch._foreach_lerp_(self._ema_params, self._params, 1 - self.current_decay())
        for ema_buf, buf in zip(self._ema_buffers, self._buffers):
            ema_buf.copy_(buf)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.num_updates = state["decay"], state["num_updates"]
        self.module.load_state_dict(state["module"])
