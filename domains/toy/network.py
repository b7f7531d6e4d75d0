"""A small MLP network for low-dimensional dense data, optionally class-conditional."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciffusion.losses import DROP
from sciffusion.parameterization import Cond
from sciffusion.space import Space


def fourier_time(t: Tensor, features: int) -> Tensor:
    """Sinusoidal embedding [B, features] of times [B] (Vaswani et al. 2017, sec. 3.5)."""
    half = features // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ToyMLP(nn.Module):
    """net(x [B, D], t [B], space, cond) -> [B, D]. With ``num_classes`` it reads ``cond["label"]``
    ([B] long); a dropped condition (``cond["drop"]``) uses an extra "no label" embedding."""

    def __init__(self, dim: int = 2, *, hidden: int = 128, depth: int = 3, time_features: int = 32,
                 num_classes: int = 0):
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"need depth >= 1 and hidden >= 1, got depth={depth}, hidden={hidden}")
        self.dim, self.time_features, self.num_classes = dim, time_features, num_classes
        self.label = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.inp = nn.Linear(dim + time_features, hidden)
        self.body = nn.Sequential(*[m for _ in range(depth - 1) for m in (nn.Linear(hidden, hidden), nn.SiLU())])
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None, cond: Cond | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"ToyMLP expects x of shape [B, {self.dim}], got {tuple(x.shape)}")
        t = t.expand(x.shape[0]) if t.dim() == 0 else t
        h = self.inp(torch.cat([x, fourier_time(t, self.time_features).to(x.dtype)], dim=1))
        if self.label is not None:
            h = h + self.label(self._labels(x, cond or {}))
        return self.out(self.body(nn.functional.silu(h)))

    def _labels(self, x: Tensor, cond: Cond) -> Tensor:
        unlabelled = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        if "label" not in cond:
            return unlabelled
        labels = cond["label"].long()
        return torch.where(cond[DROP], unlabelled, labels) if DROP in cond else labels


class ToyJointMLP(nn.Module):
    """A joint network over {"point": [B, D] float, "label": [B] class index}: returns the point's x0
    prediction [B, D] and the label's logits [B, K]. ``label_states`` counts the input states (K, or
    K + 1 when a masked process adds a mask state). With self-conditioning the previous estimate
    (``cond["self_cond"]``: point [B, D] and label probabilities [B, K]) is an extra input; zeros
    when absent, as Chen et al. (2022) do."""

    def __init__(self, dim: int = 2, *, num_classes: int = 3, label_states: int | None = None, hidden: int = 128,
                 depth: int = 3, time_features: int = 32):
        super().__init__()
        self.dim, self.num_classes, self.time_features = dim, num_classes, time_features
        self.label = nn.Embedding(label_states or num_classes, hidden)
        self.inp = nn.Linear(2 * dim + num_classes + time_features, hidden)
        self.body = nn.Sequential(*[m for _ in range(depth - 1) for m in (nn.Linear(hidden, hidden), nn.SiLU())])
        self.point_out, self.label_out = nn.Linear(hidden, dim), nn.Linear(hidden, num_classes)

    def forward(self, x: dict[str, Tensor], t: Tensor, space=None, cond: Cond | None = None) -> dict[str, Tensor]:
        point, label = x["point"], x["label"]
        previous = (cond or {}).get("self_cond")
        prev_point = previous["point"].to(point) if previous else torch.zeros_like(point)
        prev_label = previous["label"].to(point) if previous else point.new_zeros(point.shape[0], self.num_classes)
        features = [point, prev_point, prev_label, fourier_time(t, self.time_features).to(point.dtype)]
        h = nn.functional.silu(self.inp(torch.cat(features, dim=1)) + self.label(label))
        h = self.body(h)
        return {"point": self.point_out(h), "label": self.label_out(h)}
