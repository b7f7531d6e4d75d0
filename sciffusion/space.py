"""How the core sees a batch: the few operations that differ between dense and graph data.

A batch is one tensor ``x``. For dense data (images, spectrograms, grids) its first axis is the
sample; for graph data (molecules) its rows are nodes and ``batch[i]`` says which sample row ``i``
belongs to. Samplers, losses, guidance and likelihoods are written once against this interface.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Sequence

import torch
from torch import Tensor


class Space(ABC):
    """The contract between the core and a domain's batches. Subclasses implement the five
    abstract operations; ``randn_like``, ``average``, ``to`` and ``zero_mean`` have defaults."""

    #: Feature columns kept at zero mean within each sample (atom positions): a sample is defined
    #: only up to a translation along them. None by default; ``GraphSpace`` sets them.
    zero_mean: Sequence[int] = ()

    @abstractmethod
    def batch_size(self, x: Tensor) -> int:
        """Number of samples B in ``x``."""

    @abstractmethod
    def per_sample(self, values: Tensor, x: Tensor) -> Tensor:
        """Broadcast a per-sample value ``[B]`` so that it multiplies ``x`` elementwise."""

    @abstractmethod
    def project(self, x: Tensor) -> Tensor:
        """Project a state onto the sample subspace (masked entries zero, centre of mass zero...)."""

    @abstractmethod
    def sum(self, values: Tensor) -> Tensor:
        """Per-sample sum ``[B]`` of a per-element tensor shaped like ``x``, over counted entries."""

    @abstractmethod
    def dims(self, x: Tensor) -> Tensor:
        """Degrees of freedom of each sample ``[B]`` (counted entries minus constrained ones)."""

    def randn_like(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Standard normal noise shaped like ``x``, already in the sample subspace."""
        return self.project(_randn(x, generator))

    def average(self, values: Tensor) -> Tensor:
        """Per-sample mean ``[B]`` of a per-element tensor shaped like ``x``, as a loss averages it:
        ``sum / dims`` (a sample without degrees of freedom averages to its sum, zero), or a weighted
        mean where the space carries weights (``DenseSpace``)."""
        return self.sum(values) / self.dims(values).clamp_min(1)

    def to(self, device: torch.device | str) -> "Space":
        """The same space with its tensors (masks, weights, indices, nested spaces) on ``device``."""
        moved = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, (Tensor, Space)):
                setattr(moved, name, value.to(device))
        return moved


def _randn(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def require_space(space: "Space | None", user: str) -> "Space":
    """``space``, checked: ``user`` (a sampler, loss, denoiser, guidance...) cannot do without it,
    since it decides which entries and rows belong to which sample, so a missing one is never
    guessed (not even as ``DenseSpace()``): it is a one-line TypeError naming ``user``."""
    if space is None:
        raise TypeError(f"{user} needs the batch's space, got None; pass space= the batch's space (DenseSpace() "
                        "for plain [B, ...] tensors, GraphSpace for graphs; samplers pass theirs to the denoiser)")
    if not isinstance(space, Space):
        raise TypeError(f"{user} got a {type(space).__name__}, which is not a sciffusion.space.Space; subclass "
                        "Space (it provides to(), average() and zero_mean) or use DenseSpace / GraphSpace")
    return space


class DenseSpace(Space):
    """Samples stacked on the first axis. ``mask`` (bool, broadcastable to one sample or to the
    batch; True = counted) marks entries that do not exist, such as land in a sea-surface field:
    they are kept at zero, never count in a loss and are not degrees of freedom.

    ``weights`` (non-negative, broadcastable like the mask, e.g. cos(latitude) as ``[1, 1, H, 1]``)
    are quadrature weights for ``average``, the loss's reduction: a regular latitude-longitude grid
    over-counts high latitudes, so an unweighted mean is not an area mean. ``average`` is
    ``sum(w v) / sum(w)`` over counted entries, so only ratios of weights matter, uniform weights
    give the plain mean and the loss keeps its scale; by convention domains pass weights scaled to
    mean 1 over counted entries. ``sum``, ``dims`` and everything else ignore the weights, so
    samplers and likelihoods are unchanged."""

    def __init__(self, mask: Tensor | None = None, weights: Tensor | None = None):
        if weights is not None and not (torch.isfinite(weights).all() and (weights >= 0).all()):
            raise ValueError("DenseSpace weights must be finite and non-negative")
        self.mask, self.weights = mask, weights

    def batch_size(self, x: Tensor) -> int:
        return x.shape[0]

    def per_sample(self, values: Tensor, x: Tensor) -> Tensor:
        if values.dim() == 0:
            return values
        return values.reshape(-1, *([1] * (x.dim() - 1)))

    def _full_mask(self, x: Tensor) -> Tensor:
        return torch.broadcast_to(self.mask.to(x.device), x.shape)

    def project(self, x: Tensor) -> Tensor:
        if self.mask is None:
            return x
        return torch.where(self._full_mask(x), x, torch.zeros((), dtype=x.dtype, device=x.device))

    def sum(self, values: Tensor) -> Tensor:
        if self.mask is not None:
            values = torch.where(self._full_mask(values), values, torch.zeros_like(values))
        return values.reshape(values.shape[0], -1).sum(1)

    def dims(self, x: Tensor) -> Tensor:
        if self.mask is None:
            per = x[0].numel() if x.dim() > 0 else 1
            return torch.full((x.shape[0],), float(per), device=x.device, dtype=x.dtype)
        return self._full_mask(x).reshape(x.shape[0], -1).sum(1).to(x.dtype)

    def average(self, values: Tensor) -> Tensor:
        if self.weights is None:
            return self.sum(values) / self.dims(values)
        w = torch.broadcast_to(self.weights.to(values), values.shape)
        return self.sum(w * values) / self.sum(w)


class GraphSpace(Space):
    """Variable-size samples as rows of one tensor ``x[N, F]``; ``batch[N]`` gives each row's sample.

    ``zero_mean`` lists feature columns (e.g. the three coordinates of atom positions) that are kept
    at zero mean within each sample: noise is drawn in that subspace and states are projected onto
    it, which is what makes a translation-invariant density well defined (Hoogeboom et al. 2022).
    """

    def __init__(self, batch: Tensor, num_samples: int, zero_mean: tuple[int, ...] | list[int] = ()):
        if batch.dim() != 1:
            raise ValueError(f"batch must be a 1-D index of sample ids, got shape {tuple(batch.shape)}")
        self.batch = batch
        self.num_samples = int(num_samples)
        self.zero_mean = list(zero_mean)
        self.counts = torch.bincount(batch, minlength=self.num_samples)
        if (self.counts == 0).any():
            empty = torch.nonzero(self.counts == 0).flatten().tolist()
            raise ValueError(f"samples {empty} have no rows; every sample needs at least one node")

    def batch_size(self, x: Tensor) -> int:
        return self.num_samples

    def per_sample(self, values: Tensor, x: Tensor) -> Tensor:
        if values.dim() == 0:
            return values
        return values.to(x.device)[self.batch].reshape(-1, *([1] * (x.dim() - 1)))

    def mean(self, x: Tensor) -> Tensor:
        """Per-sample mean of each column ``[B, F]``."""
        total = torch.zeros(self.num_samples, *x.shape[1:], dtype=x.dtype, device=x.device)
        total.index_add_(0, self.batch, x)
        return total / self.counts.to(x).reshape(-1, *([1] * (x.dim() - 1)))

    def project(self, x: Tensor) -> Tensor:
        if not self.zero_mean:
            return x
        cols = self.zero_mean
        centred = x[:, cols] - self.mean(x[:, cols])[self.batch]
        out = x.clone()
        out[:, cols] = centred
        return out

    def sum(self, values: Tensor) -> Tensor:
        flat = values.reshape(values.shape[0], -1).sum(1)
        out = torch.zeros(self.num_samples, dtype=values.dtype, device=values.device)
        return out.index_add_(0, self.batch, flat)

    def dims(self, x: Tensor) -> Tensor:
        per_row = x[0].numel() if x.dim() > 1 else 1
        return (self.counts.to(x) * per_row - len(self.zero_mean)).to(x.dtype)

    # average: the default sum / dims, clamped, since a one-atom molecule has no degrees of freedom left
    # in its zero-mean columns (its sum is zero too)
