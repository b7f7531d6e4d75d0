"""``Guidance``: the base of every wrapper that turns a denoiser into a guided one.

A guidance is itself a denoiser ``D(x, t, space, cond) -> x0_hat`` around ``self.denoiser``, so
wrappers nest (classifier-free guidance around inpainting around a dropped condition). Some fix
values only up to a symmetry (a fragment up to a translation) and put the final samples back with
``restore``; the base forwards ``restore`` to the wrapped denoiser, so it reaches an ``Inpainting``
however many wrappers surround it. The sampling loop calls ``restore_samples`` once at the end.
"""
from __future__ import annotations

from torch import Tensor

from .parameterization import Cond, Denoiser
from .space import Space
from .state import State


class Guidance:
    """Base class of guidance wrappers; subclasses implement ``__call__`` and keep ``denoiser``. The
    space is required (``space.require_space``): it says which entries and rows form each sample."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser

    def __call__(self, x: State, t: Tensor, space: Space, cond: Cond | None = None) -> State:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(x, t, space, cond)")

    def restore(self, x: State, space: Space) -> State:
        """Final samples ``x`` put back where the guidance wants them; by default what the wrapped
        denoiser's ``restore`` does (nothing for a plain network)."""
        return restore_samples(self.denoiser, x, space)


def restore_samples(denoiser: Denoiser, x: State, space: Space) -> State:
    """``denoiser.restore(x, space)`` for a guidance, ``x`` unchanged for any other denoiser."""
    return denoiser.restore(x, space) if isinstance(denoiser, Guidance) else x
