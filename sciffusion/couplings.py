"""Couplings of data and noise for training: which noise sample goes with which data sample.

Independent pairs are what diffusion assumes. Flow matching may pair them by optimal transport,
which straightens the paths the network must learn and so lets fewer sampling steps do:
- ``minibatch_ot`` (Tong et al. 2023; Pooladian et al. 2023): within a batch, the permutation of
  the noise samples that minimises the total squared distance to the data, an assignment problem
  solved exactly by ``scipy.optimize.linear_sum_assignment``.
- ``equivariant_ot`` for point clouds in a ``GraphSpace`` (Klein et al. 2023, EquiFM; Song et al.
  2023; Irwin et al. 2024, SemlaFlow): within each sample, the assignment of noise points to atoms,
  then the rotation (Kabsch) that best aligns the noise to the data. Rotating or permuting the data
  together with the noise rotates or permutes the result, so the coupling respects E(3) and
  permutation symmetry.
Each returns the noise re-paired with ``x0`` (same shape as ``noise``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .space import GraphSpace, Space


def _assignment(cost: Tensor) -> Tensor:
    """The column assigned to each row by an exact minimum-cost assignment of a square ``cost``."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(cost.detach().double().cpu().numpy())
    order = np.empty_like(cols)
    order[rows] = cols
    return torch.as_tensor(order, device=cost.device)


def independent(x0: Tensor, noise: Tensor, space: Space) -> Tensor:
    return noise


def minibatch_ot(x0: Tensor, noise: Tensor, space: Space) -> Tensor:
    """``noise`` [B, ...] permuted across the batch to minimise sum_i |x0_i - noise_i|^2."""
    if isinstance(space, GraphSpace):
        raise ValueError("minibatch_ot pairs whole dense samples; for point clouds use equivariant_ot")
    flat_x, flat_n = x0.reshape(x0.shape[0], -1), noise.reshape(noise.shape[0], -1)
    return noise[_assignment(torch.cdist(flat_x.double(), flat_n.double()) ** 2)]


def kabsch_rotation(moving: Tensor, fixed: Tensor) -> Tensor:
    """The proper rotation R [3, 3] minimising sum_i |fixed_i - R moving_i|^2 for centred point
    sets [n, 3] (Kabsch 1976), with the determinant corrected to +1."""
    h = moving.double().T @ fixed.double()
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.T @ u.T))
    correction = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), d]))
    return (vt.T @ correction @ u.T).to(moving.dtype)


def equivariant_ot(x0: Tensor, noise: Tensor, space: GraphSpace) -> Tensor:
    """Per sample of a ``GraphSpace``, the noise rows on the space's three ``zero_mean`` columns
    (positions) permuted by an exact assignment to the atoms, then rotated onto them by Kabsch. Other
    columns of ``noise`` are permuted along with the positions. Rows of a sample must be contiguous."""
    if not isinstance(space, GraphSpace) or len(space.zero_mean) != 3:
        raise ValueError("equivariant_ot needs a GraphSpace with three zero_mean (position) columns")
    cols = space.zero_mean
    out = noise.clone()
    starts = (torch.cumsum(space.counts, 0) - space.counts).tolist()
    for start, n in zip(starts, space.counts.tolist()):
        rows = slice(start, start + n)
        x, z = x0[rows][:, cols], noise[rows]
        z = z[_assignment(torch.cdist(x.double(), z[:, cols].double()) ** 2)]
        rotation = kabsch_rotation(z[:, cols], x)
        z_pos = z[:, cols] @ rotation.T
        z = z.clone()
        z[:, cols] = z_pos
        out[rows] = z
    return out


COUPLINGS = {"independent": independent, "minibatch_ot": minibatch_ot, "equivariant_ot": equivariant_ot}


def get_coupling(name: str):
    if name not in COUPLINGS:
        raise ValueError(f"unknown coupling {name!r}; choose one of {sorted(COUPLINGS)}")
    return COUPLINGS[name]


def transport_cost(x0: Tensor, noise: Tensor, space: Space) -> Tensor:
    """Per-sample squared distance sum |x0 - noise|^2 [B]."""
    return space.sum((x0 - noise) ** 2)


__all__ = ["COUPLINGS", "equivariant_ot", "get_coupling", "independent", "kabsch_rotation", "minibatch_ot",
           "transport_cost"]
