"""E(3)-equivariant network for the joint generation of positions, atom types, charges and bonds.

In the spirit of EQGAT-diff, MiDi and SemlaFlow (invariant node features h_i, invariant edge
features e_ij updated in every layer, positions moved EGNN-style), sized for CPUs. The state is a
``dict`` (``sciffusion.state``): ``pos [N, 3]``, ``atoms [N]``, ``charges [N]``, ``bonds [E]``
(one row per undirected pair i < j of a molecule, ``space["bonds"]`` an ``EdgeSpace``).

Inputs (all invariant):
    h_i  = A[atom_i] + C[charge_i] + W_sc [p^atoms_i, p^charges_i] + T(t) + W_y [y, present]
    e_ij = B[bond_ij] + W_e [rbf(d_ij), rbf(dhat_ij), p^bonds_ij]
with d_ij = |x_i - x_j| at the input, dhat_ij = |xhat_i - xhat_j| of the self-conditioning estimate.
One layer (pre-LayerNorm, messages over both directions j -> i of every pair):
    s_ij = SiLU(W_c h_i + W_n h_j + W_p [e_ij, rbf(d_ij)] + b)   [2E, H]; d_ij at the current x
    h_i <- h_i + MLP_h(h_i, mean_j s_ij, sum_j s_ij / SUM_SCALE)
    e_ij <- e_ij + MLP_e(s_ij + s_ji)                            symmetric in (i, j)
    x_i <- x_i + mean_j (x_i - x_j) / (d_ij + 1) * (w . s_ij + c) EGNN, normalised for stability
s_ij is the hidden layer of a two-layer message MLP m_ij = W_m s_ij + b_m: every consumer of m_ij
starts linearly (a mean, a sum of both directions, a linear phi), so W_m folds into them and the
[2E, H] x [H, H] product (measured: over half of a training step) is never formed.
Heads: atom and charge logits from h_i; bond logits from the symmetric
``MLP(e_ij, a_i + a_j, a_i * a_j, rbf(d_ij))`` (a = a narrow projection of h) at the final
positions; positions are the final x, moved to the input's centre of mass. Only distances enter
the MLPs and positions move along differences, so logits are E(3)-invariant and positions
E(3)-equivariant (reflections included); everything is a sum over atoms or pairs, hence
permutation-equivariant.

Atoms aggregate messages both ways: the mean, whose scale does not grow with the molecule (QM9 has
3-29 atoms, GEOM up to ~180), and the sum / SUM_SCALE, which counts (an atom's valence is a count
of bonds, which a mean over all other atoms of the molecule hides). Positions move by the mean.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sciffusion.joint import SELF_COND
from sciffusion.losses import DROP
from sciffusion.state import PartsSpace

from .inputs import PROPERTIES

PROPERTY = "property"  # cond[PROPERTY] [B, cond_dim]; the molecule domain's cond["properties"] is read too
SUM_SCALE = 10.0  # divides summed messages: about a QM9 atom's number of partners
RBF_MAX = 10.0  # angstrom: the RBF centres span [0, RBF_MAX] (QM9's largest distances are ~10 A)


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers[:-1])


def _scatter_mean(values: Tensor, index: Tensor, count: Tensor) -> Tensor:
    """``out[k] = mean of values[index == k]`` for ``[M, F]`` values; ``count[K]`` clamped at 1."""
    out = values.new_zeros(count.shape[0], *values.shape[1:]).index_add_(0, index, values)
    return out / count.clamp(min=1).to(values).reshape(-1, *([1] * (values.dim() - 1)))


class GaussianRBF(nn.Module):
    """``exp(-(d - mu_k)^2 / (2 w^2))`` at ``K`` centres ``mu_k`` evenly spaced on ``[0, RBF_MAX]``,
    width ``w`` their spacing: ``[E] -> [E, K]``. Smooth in d, so float64 invariance is exact to
    rounding (unlike EDM's high-frequency sinusoids)."""

    def __init__(self, count: int):
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, RBF_MAX, count), persistent=False)
        self.width = RBF_MAX / max(count - 1, 1)

    def forward(self, d: Tensor) -> Tensor:
        return torch.exp(-0.5 * ((d[:, None] - self.centres.to(d)) / self.width) ** 2)


class TimeEmbedding(nn.Module):
    """Sinusoids of ``1000 t`` at geometric frequencies (transformer positional encoding), then an
    MLP: ``t [B] -> [B, hidden]``."""

    def __init__(self, hidden: int, frequencies: int = 16):
        super().__init__()
        freq = torch.exp(-math.log(10000.0) * torch.arange(frequencies) / frequencies)
        self.register_buffer("freq", freq, persistent=False)
        self.mlp = _mlp([2 * frequencies, hidden, hidden])

    def forward(self, t: Tensor) -> Tensor:
        angle = 1000.0 * t[:, None] * self.freq.to(t)
        return self.mlp(torch.cat([angle.sin(), angle.cos()], 1))


class JointLayer(nn.Module):
    """One message-passing layer updating ``(h [N, H], e [E, De], x [N, 3])``; see the module doc."""

    def __init__(self, hidden: int, edge_hidden: int, distance_features: int):
        super().__init__()
        self.norm_h, self.norm_e = nn.LayerNorm(hidden), nn.LayerNorm(edge_hidden)
        # First layer of MLP_m split by input, so the per-atom parts are applied once per atom and
        # the per-pair part once per undirected pair: the same sum as on the concatenation.
        self.w_centre = nn.Linear(hidden, hidden, bias=False)
        self.w_neighbour = nn.Linear(hidden, hidden, bias=False)
        self.w_pair = nn.Linear(edge_hidden + distance_features, hidden)
        self.node = _mlp([3 * hidden, hidden, hidden])
        self.edge = _mlp([hidden, edge_hidden, edge_hidden])
        self.coord = nn.Linear(hidden, 1)
        # Start near the identity on positions, as EDM does: large early moves destabilise training.
        nn.init.xavier_uniform_(self.coord.weight, gain=0.001)
        nn.init.zeros_(self.coord.bias)
        self.rbf = GaussianRBF(distance_features)

    def forward(self, h: Tensor, e: Tensor, x: Tensor, pairs: Tensor, degree: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        i, j = pairs  # undirected pairs i < j, [E] each; direction 1 is j -> i, direction 2 i -> j
        E = i.shape[0]
        diff = x[i] - x[j]  # [E, 3]
        d = (diff.pow(2).sum(1) + 1e-12).sqrt()  # the epsilon keeps the gradient finite at d = 0
        hn, en = self.norm_h(h), self.norm_e(e)
        centre, neighbour = self.w_centre(hn), self.w_neighbour(hn)
        pair = self.w_pair(torch.cat([en, self.rbf(d)], 1))
        dst, src = torch.cat([i, j]), torch.cat([j, i])  # directed edges src -> dst, [2E]
        s = nn.functional.silu(centre[dst] + neighbour[src] + torch.cat([pair, pair]))  # [2E, H]
        total = s.new_zeros(h.shape).index_add_(0, dst, s)
        mean = total / degree.clamp(min=1).to(s)[:, None]
        h = h + self.node(torch.cat([hn, mean, total / SUM_SCALE], 1))
        e = e + self.edge(s[:E] + s[E:])  # s_ij + s_ji: the pair's update cannot depend on its order
        unit = diff / (d + 1.0)[:, None]  # (x_i - x_j) / (d_ij + 1): bounded for near and far atoms
        shift = torch.cat([unit, -unit]) * self.coord(s)  # [2E, 3], moves each dst atom
        return h, e, x + _scatter_mean(shift, dst, degree)


class JointMoleculeNet(nn.Module):
    """``net(x: dict, t [B], space: PartsSpace, cond) -> dict`` for ``JointModel``.

    x: ``pos [N, 3]`` (zero mean per molecule), ``atoms [N]``, ``charges [N]``, ``bonds [E]`` (class
    or state indices; ``*_states`` counts the input states, classes + 1 under a masked process).
    Returns ``pos [N, 3]`` (the x0 prediction, centred like the input), logits ``atoms [N, Ka]``,
    ``charges [N, Kc]``, ``bonds [E, Kb]``.

    cond: ``cond["self_cond"]`` (the previous x0 estimate: ``pos [N, 3]``, probabilities ``atoms
    [N, Ka]``, ``charges [N, Kc]``, ``bonds [E, Kb]``); a missing estimate or part reads as zeros
    (x̂ = 0: all self-conditioning distances zero; probabilities summing to 0, not 1), which no real
    estimate gives, so "no estimate" is told apart, as in Chen et al. 2022. ``cond["property"]``
    (or the molecule domain's ``cond["properties"]``) ``[B, cond_dim]`` with a "present" flag; zero
    and flag 0 where absent or ``cond["drop"]`` is True (classifier-free guidance). Other keys are
    ignored. ``self_condition=False`` ignores ``cond["self_cond"]`` and has no parameters for it.
    """

    def __init__(self, *, num_atom_types: int, num_charges: int, num_bond_types: int = 5,
                 atom_states: int | None = None, charge_states: int | None = None, bond_states: int | None = None,
                 hidden: int = 128, edge_hidden: int = 32, layers: int = 6, cond_dim: int = 0,
                 self_condition: bool = True, distance_features: int = 16):
        super().__init__()
        states = [atom_states or num_atom_types, charge_states or num_charges, bond_states or num_bond_types]
        if min(num_atom_types, num_charges, num_bond_types, *states) < 1:
            raise ValueError("class and state counts must be positive")
        if hidden < 1 or edge_hidden < 1 or layers < 1 or cond_dim < 0 or distance_features < 2:
            raise ValueError(f"bad sizes: hidden={hidden}, edge_hidden={edge_hidden}, layers={layers}, "
                             f"cond_dim={cond_dim}, distance_features={distance_features}")
        self.num_atom_types, self.num_charges, self.num_bond_types = num_atom_types, num_charges, num_bond_types
        self.cond_dim, self.self_condition = cond_dim, self_condition
        self.embed_atoms, self.embed_charges = nn.Embedding(states[0], hidden), nn.Embedding(states[1], hidden)
        self.embed_bonds = nn.Embedding(states[2], edge_hidden)
        self.time = TimeEmbedding(hidden)
        self.embed_cond = nn.Linear(cond_dim + 1, hidden) if cond_dim else None
        if self.embed_cond is not None:
            # Zero at the start: a conditional network begins as its unconditional self, so fine-tuning
            # a trained unconditional model (train.init_new_parameters) starts from that model's
            # quality; the weights still get gradients, since the property input is not zero.
            nn.init.zeros_(self.embed_cond.weight)
            nn.init.zeros_(self.embed_cond.bias)
        self.rbf = GaussianRBF(distance_features)
        edge_in = distance_features
        if self_condition:
            self.sc_nodes = nn.Linear(num_atom_types + num_charges, hidden)
            edge_in += distance_features + num_bond_types
        self.embed_edges = nn.Linear(edge_in, edge_hidden)
        self.layers = nn.ModuleList(JointLayer(hidden, edge_hidden, distance_features) for _ in range(layers))
        self.norm_h, self.norm_e = nn.LayerNorm(hidden), nn.LayerNorm(edge_hidden)
        self.atom_head = _mlp([hidden, hidden, num_atom_types])
        self.charge_head = _mlp([hidden, hidden, num_charges])
        # Atoms enter the bond head through a narrow projection: h_i * h_j at full width would cost
        # E x 2H x H, the largest product of the network.
        self.bond_atoms = nn.Linear(hidden, edge_hidden)
        self.bond_head = _mlp([3 * edge_hidden + distance_features, hidden, num_bond_types])

    def _property(self, cond: dict, num_molecules: int, like: Tensor) -> Tensor:
        """``[B, cond_dim + 1]``: the property where present and not dropped, else 0; then the flag."""
        prop = cond.get(PROPERTY, cond.get(PROPERTIES))
        if prop is None:
            return like.new_zeros(num_molecules, self.cond_dim + 1)
        if prop.shape != (num_molecules, self.cond_dim):
            raise ValueError(f"cond[{PROPERTY!r}] must be [B, cond_dim] = ({num_molecules}, {self.cond_dim}), "
                             f"got {tuple(prop.shape)}")
        present = torch.ones(num_molecules, dtype=torch.bool, device=like.device)
        if cond.get(DROP) is not None:
            present = present & ~cond[DROP].to(like.device).bool()
        # where, not a product: a dropped molecule may carry NaN placeholders
        values = torch.where(present[:, None], prop.to(like), torch.zeros((), dtype=like.dtype, device=like.device))
        return torch.cat([values, present[:, None].to(like)], 1)

    def forward(self, x: dict[str, Tensor], t: Tensor, space: PartsSpace, cond: dict) -> dict[str, Tensor]:
        pos = x["pos"]
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise ValueError(f"x['pos'] must be [N, 3], got shape {tuple(pos.shape)}")
        batch, num_molecules = space["pos"].batch, space["pos"].num_samples
        edges = space["bonds"]
        i, j = edges.index
        if x["bonds"].shape != i.shape:
            raise ValueError(f"x['bonds'] has shape {tuple(x['bonds'].shape)} but space['bonds'] has "
                             f"{i.shape[0]} pairs")
        t = t.to(pos).reshape(-1).expand(num_molecules)
        # Neighbours of each atom, to average messages: an atom's pairs in both directions.
        degree = torch.bincount(torch.cat([i, j]), minlength=pos.shape[0])
        cond = cond or {}
        h = self.embed_atoms(x["atoms"]) + self.embed_charges(x["charges"]) + self.time(t)[batch]
        if self.embed_cond is not None:
            h = h + self.embed_cond(self._property(cond, num_molecules, pos))[batch]
        edge_in = [self.rbf((pos[i] - pos[j]).pow(2).sum(1).add(1e-12).sqrt())]
        if self.self_condition:
            sc = cond.get(SELF_COND) or {}
            zeros = lambda name, k: pos.new_zeros(x[name].shape[0], k)
            probs = lambda name, k: sc[name].to(pos) if name in sc else zeros(name, k)
            h = h + self.sc_nodes(torch.cat([probs("atoms", self.num_atom_types),
                                             probs("charges", self.num_charges)], 1))
            xhat = sc["pos"].to(pos) if "pos" in sc else torch.zeros_like(pos)
            edge_in += [self.rbf((xhat[i] - xhat[j]).pow(2).sum(1).add(1e-12).sqrt()),
                        probs("bonds", self.num_bond_types)]
        e = self.embed_bonds(x["bonds"]) + self.embed_edges(torch.cat(edge_in, 1))
        h_out, e_out, pos_out = h, e, pos
        for layer in self.layers:
            h_out, e_out, pos_out = layer(h_out, e_out, pos_out, edges.index, degree)
        h_out, e_out = self.norm_h(h_out), self.norm_e(e_out)
        d = (pos_out[i] - pos_out[j]).pow(2).sum(1).add(1e-12).sqrt()
        a = self.bond_atoms(h_out)
        bonds = self.bond_head(torch.cat([e_out, a[i] + a[j], a[i] * a[j], self.rbf(d)], 1))
        # Back to the input's centre of mass: zero mean for centred inputs, translation-equivariant always.
        counts = space["pos"].counts.clamp(min=1).to(pos)[:, None]
        mean = lambda v: v.new_zeros(num_molecules, 3).index_add_(0, batch, v) / counts
        pos_out = pos_out - (mean(pos_out) - mean(pos))[batch]
        return {"pos": pos_out, "atoms": self.atom_head(h_out), "charges": self.charge_head(h_out), "bonds": bonds}


__all__ = ["GaussianRBF", "JointMoleculeNet", "TimeEmbedding"]
