"""``Inpainting``: the replacement method for known entries of a sample, and its ``restore``.

Split from ``guidance`` (which re-exports it); see ``Inpainting`` for what it does and does not
sample, and ``ReconstructionGuidance`` for posterior sampling of the same observation.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .guidance_base import Guidance, restore_samples
from .parameterization import Cond, Denoiser
from .space import Space, require_space
from .state import is_categorical


class Inpainting(Guidance):
    """Replaces the known entries of the x0 estimate: x0_hat <- mask * known + (1 - mask) * x0_hat.

    ``mask`` (bool, True = known) and ``known`` broadcast onto the batch; for layouts that change
    from batch to batch (graph rows) override ``entries``. The sampler's next state then carries the
    known values exactly at t = 0, but the unknown entries only see them through the noisy state x_t,
    never through a likelihood: the result is not the posterior p(x_unknown | known) and can be
    incoherent at the boundary when known and unknown entries are strongly correlated (the
    "replacement method" discussed by Ho et al. 2022 and Lugmayr et al. 2022). Use
    ``ReconstructionGuidance`` with A = selection for posterior sampling.

    Translation-invariant columns (a space's ``zero_mean`` columns, such as atom positions in a
    ``GraphSpace(zero_mean=(0, 1, 2))``) hold a sample only up to a translation, so known values
    there fix a shape, not a place. Pasting them as given would break the zero-mean constraint and,
    once re-centred, leave the unknown entries offset from the known ones by wherever ``known``
    happens to sit. So, on those columns, each sample's known values are first moved by the
    translation that best matches the estimate (the mean of x0_hat - known over the sample's known
    entries, per column: the least-squares offset), pasted, and the sample is projected back onto
    the subspace (re-centred). Every entry of a sample, known ones included, moves by one common
    translation: the known entries' relative geometry is exact and the constraint holds. The final
    samples are then in the centred frame; ``restore`` translates each of them back into the frame
    of ``known``. Other columns, and dense data (no ``zero_mean`` columns), are pasted as given.
    """

    def __init__(self, denoiser: Denoiser, known: Tensor | dict[str, Tensor], mask: Tensor | dict[str, Tensor]):
        super().__init__(denoiser)
        self.known = known
        self.mask = {k: v.to(torch.bool) for k, v in mask.items()} if isinstance(mask, dict) else mask.to(torch.bool)

    def entries(self, x: Tensor, space: Space) -> tuple[Tensor, Tensor]:
        """``known`` and ``mask`` for the batch ``x`` (broadcastable to it)."""
        return self.known.to(x), self.mask.to(x.device)

    def _paste(self, x0_hat: Tensor, known: Tensor, mask: Tensor, space: Space) -> Tensor:
        if not _translation_columns(space):
            return torch.where(mask, known, x0_hat)
        known = known + _known_offset(x0_hat, known, mask, space)
        return space.project(torch.where(mask, known, x0_hat))

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        if isinstance(x, dict):
            x = {name: self._show_known(name, part, space[name]) for name, part in x.items()}
            x0_hat = self.denoiser(x, t, space, cond or {})
            return {name: self._paste_part(name, x[name], x0_hat[name], space[name]) for name in x0_hat}
        x0_hat = self.denoiser(x, t, space, cond or {})
        known, mask = self.entries(x0_hat, space)
        return self._paste(x0_hat, known, mask, space)

    def part_entries(self, name: str, x: Tensor, space: Space) -> tuple[Tensor, Tensor] | None:
        """``known`` and ``mask`` of part ``name`` of a joint state for the batch part ``x`` (on its
        device), or None if nothing of that part is known; override for layouts that change from
        batch to batch (a fragment's atoms and bonds in molecules of any size)."""
        if name not in self.known:
            return None
        return self.known[name].to(x.device), self.mask[name].to(x.device)

    def _show_known(self, name: str, x: Tensor, space: Space) -> Tensor:
        """A categorical part's known entries enter the denoiser as their clean class. Under a masked
        process an unmasked entry *is* clean at every t, so this conditions the other parts exactly
        (MDLM-style infilling); under uniform or marginal priors it is the evidence of an entry that
        already reads the known class."""
        entries = self.part_entries(name, x, space) if is_categorical(x) else None
        if entries is None:
            return x
        return torch.where(entries[1], entries[0], x)

    def _paste_part(self, name: str, x: Tensor, estimate: Tensor, space: Space) -> Tensor:
        """One part of a joint state: continuous parts as above; a categorical part's probabilities
        become certain (one-hot) at known entries, so its reverse steps land on the known class."""
        entries = self.part_entries(name, x, space)
        if entries is None:
            return estimate
        known, mask = entries
        if is_categorical(x):
            onehot = torch.nn.functional.one_hot(known, estimate.shape[-1]).to(estimate)
            return torch.where(mask[..., None], onehot, estimate)
        return self._paste(estimate, known.to(estimate), mask, space)

    def restore(self, x: Tensor, space: Space) -> Tensor:
        """Final samples ``x`` in the frame of ``known``: on translation-invariant columns each sample
        is translated so that the centroid of its known entries is that of ``known`` (which puts them
        at ``known`` up to rounding, since the last estimate had them pasted), then the known entries
        are pasted exactly. Without such columns only the paste remains. Joint states: per part.
        A guidance wrapped inside this one restores first."""
        x = restore_samples(self.denoiser, x, space)
        if isinstance(x, dict):
            return {name: self._restore_part(name, part, space[name]) for name, part in x.items()}
        known, mask = self.entries(x, space)
        if _translation_columns(space):
            x = x - _known_offset(x, known, mask, space)
        return torch.where(mask, known, x)

    def _restore_part(self, name: str, x: Tensor, space: Space) -> Tensor:
        entries = self.part_entries(name, x, space)
        if entries is None:
            return x
        known, mask = entries
        if is_categorical(x):
            return torch.where(mask, known, x)
        known = known.to(x)
        if _translation_columns(space):
            x = x - _known_offset(x, known, mask, space)
        return torch.where(mask, known, x)


def _translation_columns(space: Space) -> list[int]:
    """The columns a space keeps at zero mean per sample (``GraphSpace.zero_mean``), else none."""
    return list(space.zero_mean)


def _known_offset(x: Tensor, known: Tensor, mask: Tensor, space: Space) -> Tensor:
    """Per sample and translation-invariant column, the mean of ``x - known`` over the known rows
    (zero where a sample has none), broadcast onto ``x``; zero in every other column."""
    known, mask = torch.broadcast_to(known, x.shape), torch.broadcast_to(mask, x.shape)
    offset = torch.zeros_like(x)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    for c in _translation_columns(space):
        diff = torch.where(mask[:, c], x[:, c] - known[:, c], zero)[:, None]
        count = space.sum(mask[:, c, None].to(x.dtype))
        mean = space.sum(diff) / count.clamp_min(1)
        offset[:, c] = space.per_sample(mean, diff)[:, 0]
    return offset
