"""An E(3)-equivariant tensor-product network on molecules (e3nn; Thomas et al. 2018, Batzner et al. 2022).

Features are irreps: ``Irreps("32x0e + 8x1o + 8x1e")`` holds 32 scalars, 8 vectors (odd: they flip
under a reflection, like positions) and 8 pseudovectors (even: like cross products). One
convolution, for the edge vector r_ij = x_i - x_j of an edge from atom j to atom i:
    Y_ij   = spherical harmonics of r_ij / |r_ij| up to degree lmax    (0e + 1o + 2e + ...)
    w_ij   = MLP(smooth radial basis of |r_ij|)                          [E, weights]
    h'_i   = Lin_self(h_i) + Lin(1 / n sum_j TP(h_j, Y_ij; w_ij))
with a channel-wise ("uvu") tensor product whose weights come from the radial MLP, as in NequIP,
followed by a gated nonlinearity (scalars through SiLU, each higher irrep times a sigmoid gate).
Positions enter only through r_ij, so outputs are translation invariant; the position output is
the 1o (vector) part of a last convolution, so it rotates and reflects exactly as positions do.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciffusion.parameterization import Cond

from .inputs import (centre_positions, check_graph_options, invariant_inputs, molecule_edges, molecule_index,
                     split_atoms)

try:
    from e3nn import o3
    from e3nn.math import soft_one_hot_linspace
    from e3nn.nn import FullyConnectedNet, Gate
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError("TensorProductNet needs e3nn: pip install e3nn") from error


class Convolution(nn.Module):
    """Tensor-product convolution ``h [N, irreps_in] -> [N, irreps_out]`` over edges ``[2, E]`` (j, i),
    given spherical harmonics ``sh [E, irreps_sh]`` and radial embeddings ``radial [E, num_basis]``."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps, *, num_basis: int,
                 radial_hidden: int, avg_num_neighbors: float):
        super().__init__()
        wanted = {ir for _, ir in irreps_out}
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir in ir_in * ir_sh:
                    if ir in wanted:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir))
        mid, order, _ = o3.Irreps(mid).sort()
        instructions = [(i, j, order[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, mid, instructions, shared_weights=False,
                                   internal_weights=False)
        self.radial = FullyConnectedNet([num_basis, radial_hidden, self.tp.weight_numel], F.silu)
        self.mix = o3.Linear(mid.simplify(), irreps_out)
        self.self_interaction = o3.Linear(irreps_in, irreps_out)
        self.scale = 1 / avg_num_neighbors

    def forward(self, h: Tensor, edges: Tensor, sh: Tensor, radial: Tensor) -> Tensor:
        src, dst = edges
        messages = self.tp(h[src], sh, self.radial(radial))  # [E, mid]
        summed = messages.new_zeros(h.shape[0], messages.shape[1]).index_add_(0, dst, messages)
        return self.self_interaction(h) + self.mix(summed * self.scale)


class GatedBlock(nn.Module):
    """A convolution into ``irreps_hidden`` plus its gates, then the gate; residual when shapes agree."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_hidden: o3.Irreps, **conv_options):
        super().__init__()
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l > 0])
        gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
        self.gate = Gate(scalars, [F.silu] * len(scalars), gates, [torch.sigmoid] * len(gates), gated)
        self.conv = Convolution(irreps_in, irreps_sh, self.gate.irreps_in, **conv_options)
        self.irreps_out = self.gate.irreps_out
        self.residual = irreps_in == self.irreps_out

    def forward(self, h: Tensor, edges: Tensor, sh: Tensor, radial: Tensor) -> Tensor:
        out = self.gate(self.conv(h, edges, sh, radial))
        return h + out if self.residual else out


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _hidden_irreps(hidden_irreps: str | o3.Irreps) -> o3.Irreps:
    try:
        irreps = o3.Irreps(hidden_irreps)
    except (ValueError, AssertionError) as error:
        raise ValueError(f"hidden_irreps {hidden_irreps!r} is not an irreps string like '32x0e + 8x1o + 8x1e'") from error
    irreps = irreps.sort().irreps.simplify()
    if o3.Irrep("0o") in irreps:
        raise ValueError(f"hidden_irreps {irreps} has odd scalars (0o); their gate needs an odd activation, which "
                         "this network does not use: replace them by 0e scalars or by 1o/1e vectors")
    if irreps.count("0e") == 0:
        raise ValueError(f"hidden_irreps {irreps} has no even scalars (0e); they carry the atom types and time "
                         "and the type output: add some, e.g. '32x0e + {irreps}'")
    return irreps


class TensorProductNet(nn.Module):
    """Gated tensor-product network ``net(x [N, 3 + F], t [B], space, cond) -> [N, 3 + F]``.

    Output columns 0..2 are a 1o vector per atom (zero mean per molecule), columns 3.. F scalars
    (0e) for the atom types. Invariant inputs (types, time, properties; see ``inputs``) enter as
    scalars; vectors arise from the spherical harmonics of edge vectors.

    hidden_irreps: features between layers (sorted and merged; needs 0e, refuses 0o).
    lmax: highest spherical-harmonic degree of edge directions (>= 1 so that vectors can arise).
    max_radius: range of the radial basis; messages fade smoothly to zero at this distance.
    radius: None joins every pair of atoms of a molecule; a distance <= max_radius uses the radius
    graph of the input positions (optionally at most ``max_num_neighbors`` nearest).
    dtype: of the parameters (default: torch's default dtype). e3nn bakes Clebsch-Gordan constants
    in when a module is built, so a float64 model must be built with dtype=torch.float64: ``.double()``
    on a float32 model keeps constants rounded to float32 (equivariance errors ~1e-9, not ~1e-15).
    avg_num_neighbors: n, sums over neighbours are divided by it. Not by sqrt(n) as for independent
    messages: within a molecule messages are correlated, and features would grow layer by layer.
    """

    def __init__(self, num_features: int, *, hidden_irreps: str = "64x0e + 16x1o + 16x1e", num_layers: int = 4,
                 lmax: int = 2, num_basis: int = 16, radial_hidden: int = 64, max_radius: float = 10.0,
                 avg_num_neighbors: float = 16.0, num_properties: int = 0, radius: float | None = None,
                 max_num_neighbors: int | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if num_features < 0 or num_properties < 0:
            raise ValueError(f"num_features and num_properties count columns, got {num_features} and {num_properties}")
        if num_layers < 1 or num_basis < 1 or radial_hidden < 1:
            raise ValueError(f"num_layers, num_basis and radial_hidden must be positive, got {num_layers}, "
                             f"{num_basis}, {radial_hidden}")
        if lmax < 1:
            raise ValueError(f"lmax={lmax}: the edge harmonics need degree >= 1 to produce the 1o position output")
        if not max_radius > 0 or not avg_num_neighbors > 0:
            raise ValueError(f"max_radius and avg_num_neighbors must be positive, got {max_radius}, {avg_num_neighbors}")
        check_graph_options(radius, max_num_neighbors)
        if radius is not None and radius > max_radius:
            raise ValueError(f"radius {radius} exceeds max_radius {max_radius}: longer edges would carry nothing; "
                             "use radius <= max_radius")
        hidden = _hidden_irreps(hidden_irreps)
        self.num_features, self.num_properties = num_features, num_properties
        self.radius, self.max_num_neighbors = radius, max_num_neighbors
        self.num_basis, self.max_radius = num_basis, max_radius
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax, p=-1)  # positions are odd: 0e + 1o + 2e + ...
        options = dict(num_basis=num_basis, radial_hidden=radial_hidden, avg_num_neighbors=avg_num_neighbors)
        node_in = num_features + 1 + (num_properties + 1 if num_properties else 0)
        irreps = o3.Irreps(f"{hidden.count('0e')}x0e")
        with _default_dtype(torch.float64):  # exact constants, rounded once by the final .to(dtype)
            self.embed = nn.Linear(node_in, irreps.dim)
            blocks = []
            for _ in range(num_layers):
                blocks.append(GatedBlock(irreps, self.irreps_sh, hidden, **options))
                irreps = blocks[-1].irreps_out
            self.blocks = nn.ModuleList(blocks)
            self.irreps_out = o3.Irreps([(num_features, "0e")] if num_features else []) + o3.Irreps("1x1o")
            self.readout = Convolution(irreps, self.irreps_sh, self.irreps_out, **options)
        self.to(dtype or torch.get_default_dtype())

    def forward(self, x: Tensor, t: Tensor, space, cond: Cond) -> Tensor:
        batch, num_molecules = molecule_index(space, x)
        pos, types = split_atoms(x, self.num_features)
        h = self.embed(invariant_inputs(types, t, batch, num_molecules, cond, self.num_properties))
        edges = molecule_edges(pos, batch, radius=self.radius, max_num_neighbors=self.max_num_neighbors)
        vec = pos[edges[1]] - pos[edges[0]]  # [E, 3], from neighbour j to centre i
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        # sqrt(num_basis) keeps the embedding's entries of order one (the e3nn convention)
        radial = soft_one_hot_linspace(vec.norm(dim=1), 0.0, self.max_radius, self.num_basis,
                                       basis="smooth_finite", cutoff=True) * math.sqrt(self.num_basis)
        for block in self.blocks:
            h = block(h, edges, sh, radial)
        out = self.readout(h, edges, sh, radial)
        types_out, shift = out[:, :self.num_features], out[:, self.num_features:]
        return torch.cat([centre_positions(shift, batch, num_molecules), types_out], 1)
