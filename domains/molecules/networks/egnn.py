"""E(n)-equivariant graph network (Satorras et al. 2021) as modified for molecule diffusion by
Hoogeboom et al. 2022 (EDM).

One layer, for an edge from atom j to atom i with features h and positions x:
    d_ij   = ||x_i - x_j||^2,  a_ij = [d_ij, d_ij at the input]      (or sinusoidal embeddings of both)
    m_ij   = phi_e(h_i, h_j, a_ij) * sigmoid(phi_att(m_ij))           (attention optional)
    h_i   <- h_i + phi_h(h_i, sum_j m_ij / Z)
    x_i   <- x_i + sum_j (x_i - x_j) / (sqrt(d_ij) + 1) * tanh(phi_x(h_i, h_j, a_ij)) * range / Z
The normalised difference and the tanh bound keep coordinate updates stable (EDM, sec. 3.3); Z is a
constant aggregation normaliser. Only distances enter the MLPs and positions move along
differences, so the map is E(3)-equivariant, reflections included.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciffusion.parameterization import Cond

from .inputs import (centre_positions, check_graph_options, invariant_inputs, molecule_edges, molecule_index,
                     split_atoms)


def _mlp(sizes: list[int], *, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_act or k < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SinusoidalDistance(nn.Module):
    """Sines and cosines of the distance ``sqrt(d2)`` at geometric frequencies between
    ``2 pi / max_length`` and ``2 pi / min_length`` (EDM's distance embedding): ``[E, 1] -> [E, 2 K]``."""

    def __init__(self, *, max_length: float = 15.0, min_length: float = 15.0 / 2000, ratio: float = 4.0):
        super().__init__()
        count = int(math.log(max_length / min_length, ratio)) + 1
        self.register_buffer("frequencies", 2 * math.pi * ratio ** torch.arange(count) / max_length, persistent=False)
        self.dim = 2 * count

    def forward(self, d2: Tensor) -> Tensor:
        angle = (d2 + 1e-8).sqrt() * self.frequencies.to(d2)
        return torch.cat([angle.sin(), angle.cos()], -1)


def _pair_mlp(mlp: nn.Sequential, h: Tensor, edges: Tensor, edge_attr: Tensor) -> Tensor:
    """``mlp(cat[h_i, h_j, a_ij])`` for edges (j, i), ``[E, out]``. The first layer's h_i and h_j
    parts are applied per atom before gathering: the same sum at a fraction of the per-edge cost."""
    first, hidden = mlp[0], h.shape[1]
    w_centre, w_neighbour, w_edge = first.weight.split([hidden, hidden, edge_attr.shape[1]], dim=1)
    src, dst = edges
    out = (h @ w_centre.T)[dst] + (h @ w_neighbour.T)[src] + nn.functional.linear(edge_attr, w_edge, first.bias)
    return mlp[1:](out)


def _scatter_sum(values: Tensor, index: Tensor, size: int) -> Tensor:
    return values.new_zeros(size, *values.shape[1:]).index_add_(0, index, values)


class EquivariantLayer(nn.Module):
    """``sublayers`` invariant message passes on h, then one equivariant position update.

    h: ``[N, hidden]``; pos: ``[N, 3]``; edges: ``[2, E]`` (j, i); edge_attr: ``[E, A]`` -> (h, pos).
    """

    def __init__(self, hidden: int, edge_dim: int, *, sublayers: int, attention: bool, coords_range: float,
                 normalization: float):
        super().__init__()
        self.edge_mlps = nn.ModuleList(_mlp([2 * hidden + edge_dim, hidden, hidden], last_act=True)
                                       for _ in range(sublayers))
        self.node_mlps = nn.ModuleList(_mlp([2 * hidden, hidden, hidden], last_act=False) for _ in range(sublayers))
        self.attention = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(sublayers)) if attention else None
        self.coord_mlp = _mlp([2 * hidden + edge_dim, hidden, hidden, 1], last_act=False)
        # Start near the identity on positions, as EDM does: large early updates destabilise training.
        nn.init.xavier_uniform_(self.coord_mlp[-1].weight, gain=0.001)
        nn.init.zeros_(self.coord_mlp[-1].bias)
        self.coords_range, self.normalization = coords_range, normalization

    def forward(self, h: Tensor, pos: Tensor, edges: Tensor, edge_attr: Tensor, direction: Tensor) -> tuple[Tensor, Tensor]:
        dst = edges[1]
        for k, (edge_mlp, node_mlp) in enumerate(zip(self.edge_mlps, self.node_mlps)):
            m = _pair_mlp(edge_mlp, h, edges, edge_attr)  # [E, hidden]
            if self.attention is not None:
                m = m * torch.sigmoid(self.attention[k](m))
            agg = _scatter_sum(m, dst, h.shape[0]) / self.normalization
            h = h + node_mlp(torch.cat([h, agg], 1))
        gate = torch.tanh(_pair_mlp(self.coord_mlp, h, edges, edge_attr))  # [E, 1]
        shift = _scatter_sum(direction * gate * self.coords_range, dst, h.shape[0]) / self.normalization
        return h, pos + shift


class EGNN(nn.Module):
    """EDM's EGNN as a network ``net(x [N, 3 + F], t [B], space, cond) -> [N, 3 + F]``.

    Columns 0..2 of the output are the position prediction (final minus input positions, zero mean
    per molecule); columns 3.. the type prediction, read from the final invariant features. The
    defaults are EDM's QM9 model (256 features, 9 layers, attention, Z = 1, range 15).

    num_features: F, atom-type feature columns. num_properties: P, width of cond["properties"]
    (0: unconditional). radius: None joins every pair of atoms of a molecule; a distance uses the
    radius graph of the input positions (optionally at most ``max_num_neighbors`` nearest).
    sin_embedding: EDM's sinusoidal distance features; their shortest wavelength (0.0075) makes
    float32 outputs sensitive to rounding of the inputs (equivariance errors ~1e-3 instead of ~1e-6).
    dtype: of the parameters (default: torch's default dtype).
    """

    def __init__(self, num_features: int, *, hidden: int = 256, num_layers: int = 9, sublayers: int = 1,
                 num_properties: int = 0, attention: bool = True, sin_embedding: bool = False,
                 coords_range: float = 15.0, normalization: float = 1.0, radius: float | None = None,
                 max_num_neighbors: int | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if num_features < 0 or num_properties < 0:
            raise ValueError(f"num_features and num_properties count columns, got {num_features} and {num_properties}")
        if hidden < 1 or num_layers < 1 or sublayers < 1:
            raise ValueError(f"hidden, num_layers and sublayers must be positive, got {hidden}, {num_layers}, {sublayers}")
        if not normalization > 0:
            raise ValueError(f"normalization divides aggregated messages and must be positive, got {normalization}")
        check_graph_options(radius, max_num_neighbors)
        self.num_features, self.num_properties = num_features, num_properties
        self.radius, self.max_num_neighbors = radius, max_num_neighbors
        self.distance_embedding = SinusoidalDistance() if sin_embedding else None
        distance_dim = self.distance_embedding.dim if sin_embedding else 1
        node_in = num_features + 1 + (num_properties + 1 if num_properties else 0)
        self.embed = nn.Linear(node_in, hidden)
        # EDM spreads the coordinate range over the layers so the total update stays bounded.
        self.layers = nn.ModuleList(
            EquivariantLayer(hidden, 2 * distance_dim, sublayers=sublayers, attention=attention,
                             coords_range=coords_range / num_layers, normalization=normalization)
            for _ in range(num_layers))
        self.readout = nn.Linear(hidden, num_features)
        self.to(dtype or torch.get_default_dtype())

    def _distances(self, pos: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
        """Squared distances (embedded if asked) ``[E, D]`` and normalised differences ``[E, 3]``."""
        diff = pos[edges[1]] - pos[edges[0]]
        d2 = (diff**2).sum(1, keepdim=True)
        direction = diff / ((d2 + 1e-8).sqrt() + 1.0)  # EDM, sec. 3.3: bounded for near and far atoms
        if self.distance_embedding is not None:
            d2 = self.distance_embedding(d2)
        return d2, direction

    def forward(self, x: Tensor, t: Tensor, space, cond: Cond) -> Tensor:
        batch, num_molecules = molecule_index(space, x)
        pos_in, types = split_atoms(x, self.num_features)
        h = self.embed(invariant_inputs(types, t, batch, num_molecules, cond, self.num_properties))
        edges = molecule_edges(pos_in, batch, radius=self.radius, max_num_neighbors=self.max_num_neighbors)
        initial, _ = self._distances(pos_in, edges)
        pos = pos_in
        for layer in self.layers:
            current, direction = self._distances(pos, edges)
            h, pos = layer(h, pos, edges, torch.cat([current, initial], 1), direction)
        shift = centre_positions(pos - pos_in, batch, num_molecules)
        return torch.cat([shift, self.readout(h)], 1)
