"""How an image network reads its inputs other than x: the noise level and the condition dict.

Everything the UNet and the DiT are conditioned on becomes either one embedding ``[B, dim]``
(noise level + class + continuous vector, summed as in Dhariwal & Nichol 2021 and Peebles & Xie
2023) or extra input channels (aligned fields). A condition that is absent and a condition whose
sample is marked ``cond["drop"]`` mean the same thing, "unconditional":
    class     the null class, index ``num_classes``;
    vector    a learned null embedding;
    fields    zeros, with an indicator channel that is 0 (1 where fields are given).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciffusion.losses import DROP

LABEL = "label"  # cond[LABEL]: [B] integer class indices in [0, num_classes]; num_classes is the null class
VECTOR = "vector"  # cond[VECTOR]: [B, V] continuous condition (physical parameters, properties...)
FIELDS = "fields"  # cond[FIELDS]: [B, C_f, H, W] fields aligned with x (low-res image, previous states...)

NOISE_EMBEDDINGS = ("positional", "fourier")
DEFAULT_TIME_SCALE = {"positional": 1000.0, "fourier": 16.0}


class NoiseEmbedding(nn.Module):
    """Sinusoidal features ``[B, num_features]`` of a real scalar per sample ``[B]``.

    The scalar is t in [0, 1], EDM's c_noise = log(sigma) / 4, or any other noise level; it is
    multiplied by ``time_scale`` first (default 1000 for positional, 16 for fourier).
        positional: cos / sin of s * t * max_period^(-i / half)   (Vaswani et al. 2017; Ho et al. 2020)
        fourier:    cos / sin of 2 pi s * t * w_i, w_i ~ N(0, 1) fixed (Tancik et al. 2020; Song et al. 2021)
    """

    def __init__(self, num_features: int, *, kind: str = "positional", time_scale: float | None = None,
                 max_period: float = 10000.0):
        super().__init__()
        if kind not in NOISE_EMBEDDINGS:
            raise ValueError(f"unknown noise embedding {kind!r}; choose one of {NOISE_EMBEDDINGS}")
        if num_features < 2 or num_features % 2:
            raise ValueError(f"num_features must be even and at least 2, got {num_features}")
        self.kind = kind
        self.time_scale = DEFAULT_TIME_SCALE[kind] if time_scale is None else float(time_scale)
        half = num_features // 2
        if kind == "positional":
            freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
        else:
            freqs = 2 * math.pi * torch.randn(half, dtype=torch.float64)
        self.register_buffer("freqs", freqs.float())

    def forward(self, t: Tensor) -> Tensor:
        angles = (self.time_scale * t)[:, None] * self.freqs.to(t.dtype)[None]
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


def keep_mask(cond: dict[str, Tensor], batch_size: int, device: torch.device) -> Tensor:
    """[B] bool: True where the sample's condition is used (not marked by ``cond["drop"]``)."""
    if DROP not in cond:
        return torch.ones(batch_size, dtype=torch.bool, device=device)
    drop = cond[DROP]
    if drop.shape != (batch_size,):
        raise ValueError(f"cond['{DROP}'] must have shape ({batch_size},), got {tuple(drop.shape)}")
    return ~drop.to(device=device, dtype=torch.bool)


class ConditionEmbedding(nn.Module):
    """One embedding ``[B, dim]`` of the noise level, the class and the continuous vector.

    noise:  NoiseEmbedding -> Linear -> SiLU -> Linear;
    class:  ``nn.Embedding(num_classes + 1, dim)``, the last row being the null class;
    vector: Linear -> SiLU -> Linear of cond["vector"], or a learned null embedding.
    ``num_classes = 0`` / ``vector_dim = 0`` build no class / vector embedding, and then passing
    that condition is an error rather than silently ignored.
    """

    def __init__(self, dim: int, *, num_features: int, num_classes: int = 0, vector_dim: int = 0,
                 noise_embedding: str = "positional", time_scale: float | None = None):
        super().__init__()
        if num_classes < 0 or vector_dim < 0:
            raise ValueError(f"num_classes and vector_dim must be >= 0, got {num_classes}, {vector_dim}")
        self.num_classes, self.vector_dim = num_classes, vector_dim
        self.noise = NoiseEmbedding(num_features, kind=noise_embedding, time_scale=time_scale)
        self.noise_mlp = nn.Sequential(nn.Linear(num_features, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.classes = nn.Embedding(num_classes + 1, dim) if num_classes else None
        if vector_dim:
            self.vector_mlp = nn.Sequential(nn.Linear(vector_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
            self.null_vector = nn.Parameter(torch.zeros(dim))

    def forward(self, t: Tensor, cond: dict[str, Tensor], x: Tensor) -> Tensor:
        """t: [B] or scalar; x: the batch, for its size, dtype and device. Returns [B, dim]."""
        batch = x.shape[0]
        t = t.to(device=x.device, dtype=x.dtype)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
        emb = self.noise_mlp(self.noise(t))
        keep = keep_mask(cond, batch, x.device)
        if self.classes is not None:
            emb = emb + self.classes(self._labels(cond, keep))
        elif LABEL in cond:
            raise ValueError(f"cond['{LABEL}'] was given but the network has no class embedding; "
                             "build it with num_classes > 0")
        if self.vector_dim:
            emb = emb + self._vector(cond, keep, x)
        elif VECTOR in cond:
            raise ValueError(f"cond['{VECTOR}'] was given but the network has no vector embedding; "
                             "build it with vector_dim > 0")
        return emb

    def _labels(self, cond: dict[str, Tensor], keep: Tensor) -> Tensor:
        null = torch.full_like(keep, self.num_classes, dtype=torch.long)
        if LABEL not in cond:
            return null
        labels = cond[LABEL]
        if labels.shape != keep.shape or labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"cond['{LABEL}'] must hold integer class indices of shape {tuple(keep.shape)}, "
                             f"got shape {tuple(labels.shape)} and dtype {labels.dtype}")
        return torch.where(keep, labels.to(null), null)

    def _vector(self, cond: dict[str, Tensor], keep: Tensor, x: Tensor) -> Tensor:
        null = self.null_vector.to(x.dtype).expand(keep.shape[0], -1)
        if VECTOR not in cond:
            return null
        vector = cond[VECTOR].to(dtype=x.dtype, device=x.device)
        if vector.shape != (keep.shape[0], self.vector_dim):
            raise ValueError(f"cond['{VECTOR}'] must have shape {(keep.shape[0], self.vector_dim)}, "
                             f"got {tuple(vector.shape)}")
        # dropped entries may hold NaN placeholders: zero them so no NaN reaches the backward pass
        vector = torch.where(keep[:, None], vector, torch.zeros_like(vector))
        return torch.where(keep[:, None], self.vector_mlp(vector), null)


def with_fields(x: Tensor, cond: dict[str, Tensor], field_channels: int) -> Tensor:
    """x [B, C, H, W] -> [B, C + field_channels + 1, H, W]: x, the fields, and an indicator channel.

    Fields of dropped samples (and all fields when none are given) are zeros with indicator 0, so
    the network can tell "no fields" from "fields that happen to be zero". With
    ``field_channels = 0`` x is returned unchanged.
    """
    if not field_channels:
        if FIELDS in cond:
            raise ValueError(f"cond['{FIELDS}'] was given but the network takes no fields; "
                             "build it with field_channels > 0")
        return x
    batch, _, height, width = x.shape
    expected = (batch, field_channels, height, width)
    if FIELDS in cond:
        fields = cond[FIELDS].to(dtype=x.dtype, device=x.device)
        if fields.shape != expected:
            raise ValueError(f"cond['{FIELDS}'] must have shape {expected} to align with x of shape "
                             f"{tuple(x.shape)}, got {tuple(fields.shape)}")
        keep = keep_mask(cond, batch, x.device)[:, None, None, None]
        fields = torch.where(keep, fields, torch.zeros_like(fields))
        present = keep.to(x.dtype).expand(batch, 1, height, width)
    else:
        fields = x.new_zeros(expected)
        present = x.new_zeros(batch, 1, height, width)
    return torch.cat([x, fields, present], dim=1)
