"""Bonds from interatomic distances, and atom stability, as EDM measures them.

A pair of atoms at distance d (pm) is bonded when d < single + 10, double when also
d < double + 5, triple when also d < triple + 3, with the typical bond lengths below (Hoogeboom et
al. 2022, ``qm9/bond_analyze.py``, from wiredchemist.com and chemistry-reference.com; the margins were
tuned there to maximise the stability of real QM9 molecules). An atom is stable when the sum of
its bond orders is an allowed valence (H 1, C 4, N 3, O 2, F 1); a molecule when all its atoms are.
Everything is vectorised over all atom pairs of all molecules, a chunk of molecules at a time.
"""
from __future__ import annotations

import torch
from torch import Tensor

ELEMENTS = {"H": 1, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Al": 13, "Si": 14, "P": 15, "S": 16,
            "Cl": 17, "As": 33, "Br": 35, "I": 53, "Hg": 80, "Bi": 83}
SYMBOLS = {number: symbol for symbol, number in ELEMENTS.items()}

# Typical bond lengths in pm, one entry per unordered pair.
SINGLE_BOND_PM = {
    ("H", "H"): 74, ("H", "C"): 109, ("H", "N"): 101, ("H", "O"): 96, ("H", "F"): 92, ("H", "B"): 119,
    ("H", "Si"): 148, ("H", "P"): 144, ("H", "As"): 152, ("H", "S"): 134, ("H", "Cl"): 127, ("H", "Br"): 141,
    ("H", "I"): 161,
    ("C", "C"): 154, ("C", "N"): 147, ("C", "O"): 143, ("C", "F"): 135, ("C", "Si"): 185, ("C", "P"): 184,
    ("C", "S"): 182, ("C", "Cl"): 177, ("C", "Br"): 194, ("C", "I"): 214,
    ("N", "N"): 145, ("N", "O"): 140, ("N", "F"): 136, ("N", "Cl"): 175, ("N", "Br"): 214, ("N", "S"): 168,
    ("N", "I"): 222, ("N", "P"): 177,
    ("O", "O"): 148, ("O", "F"): 142, ("O", "Br"): 172, ("O", "S"): 151, ("O", "P"): 163, ("O", "Si"): 163,
    ("O", "Cl"): 164, ("O", "I"): 194,
    ("F", "F"): 142, ("F", "S"): 158, ("F", "Si"): 160, ("F", "Cl"): 166, ("F", "Br"): 178, ("F", "P"): 156,
    ("F", "I"): 187,
    ("B", "Cl"): 175,
    ("Si", "Si"): 233, ("Si", "S"): 200, ("Si", "Cl"): 202, ("Si", "Br"): 215, ("Si", "I"): 243,
    ("Cl", "Cl"): 199, ("Cl", "P"): 203, ("Cl", "S"): 207, ("Cl", "Br"): 214,
    ("S", "S"): 204, ("S", "Br"): 225, ("S", "P"): 210, ("S", "I"): 234,
    ("Br", "Br"): 228, ("Br", "P"): 222,
    ("P", "P"): 221,
    ("I", "I"): 266,
}
DOUBLE_BOND_PM = {("C", "C"): 134, ("C", "N"): 129, ("C", "O"): 120, ("C", "S"): 160, ("N", "N"): 125,
                  ("N", "O"): 121, ("O", "O"): 121, ("O", "P"): 150, ("P", "S"): 186}
TRIPLE_BOND_PM = {("C", "C"): 120, ("C", "N"): 116, ("C", "O"): 113, ("N", "N"): 110}
MARGINS_PM = (10.0, 5.0, 3.0)  # single, double, triple

# Allowed sums of bond orders of neutral atoms (EDM), and of charged ones (as in MiDi/GeoLDM's tables).
ALLOWED_VALENCES = {"H": (1,), "B": (3,), "C": (4,), "N": (3,), "O": (2,), "F": (1,), "Al": (3,), "Si": (4,),
                    "P": (3, 5), "S": (4,), "Cl": (1,), "As": (3,), "Br": (1,), "I": (1,), "Hg": (1, 2),
                    "Bi": (3, 5)}
CHARGED_VALENCES = {("C", 1): (3,), ("C", -1): (3,), ("N", 1): (4,), ("N", -1): (2,), ("O", 1): (3,),
                    ("O", -1): (1,), ("S", 1): (3,), ("S", -1): (1,), ("P", 1): (4,), ("B", -1): (4,)}
_MAX_Z, _MAX_VALENCE, _MAX_CHARGE = 119, 8, 2


def _table(lengths: dict[tuple[str, str], float], margin: float) -> Tensor:
    """Thresholds ``[Z, Z]`` in pm; -inf where the pair has no such bond."""
    table = torch.full((_MAX_Z, _MAX_Z), float("-inf"), dtype=torch.float64)
    for (a, b), length in lengths.items():
        table[ELEMENTS[a], ELEMENTS[b]] = table[ELEMENTS[b], ELEMENTS[a]] = length + margin
    return table


_THRESHOLDS = [_table(t, m) for t, m in zip((SINGLE_BOND_PM, DOUBLE_BOND_PM, TRIPLE_BOND_PM), MARGINS_PM)]


def _allowed_table() -> Tensor:
    """``allowed[z, charge + 2, valence]`` (bool)."""
    allowed = torch.zeros(_MAX_Z, 2 * _MAX_CHARGE + 1, _MAX_VALENCE, dtype=torch.bool)
    for symbol, valences in ALLOWED_VALENCES.items():
        allowed[ELEMENTS[symbol], _MAX_CHARGE, list(valences)] = True
    for (symbol, charge), valences in CHARGED_VALENCES.items():
        allowed[ELEMENTS[symbol], charge + _MAX_CHARGE, list(valences)] = True
    return allowed


_ALLOWED = _allowed_table()


def molecule_pairs(counts: Tensor) -> Tensor:
    """All pairs ``i < j`` of atoms within the same molecule ``[2, P]``, for molecules of
    ``counts[M]`` atoms stored one after the other."""
    counts = counts.long()
    ends = torch.repeat_interleave(counts.cumsum(0), counts)
    first = torch.arange(int(counts.sum()))
    partners = ends - first - 1
    i = torch.repeat_interleave(first, partners)
    start_of_run = torch.repeat_interleave(partners.cumsum(0) - partners, partners)
    j = i + 1 + torch.arange(len(i)) - start_of_run
    return torch.stack([i, j])


def bond_orders(pos: Tensor, z: Tensor, counts: Tensor, *, chunk_pairs: int = 4_000_000) -> tuple[Tensor, Tensor]:
    """Bonds inferred from distances: ``edges[2, E]`` (i < j, same molecule) and ``order[E]`` in 1..3.

    ``pos[N, 3]`` in Angstrom, ``z[N]`` atomic numbers, ``counts[M]`` atoms per molecule. Pairs of
    elements without a tabulated bond length are never bonded."""
    if pos.shape != (z.shape[0], 3) or int(counts.sum()) != z.shape[0]:
        raise ValueError(f"pos {tuple(pos.shape)}, z {tuple(z.shape)} and sum(counts) = {int(counts.sum())} "
                         "must describe the same N atoms")
    if z.numel() and (int(z.min()) < 1 or int(z.max()) >= _MAX_Z):
        raise ValueError(f"atomic numbers must lie in 1..{_MAX_Z - 1}, got {int(z.min())}..{int(z.max())}")
    pos, z = pos.detach().cpu(), z.detach().cpu().long()
    edges, orders = [], []
    for pairs in molecule_pairs(counts.cpu()).split(chunk_pairs, dim=1):
        i, j = pairs
        distance_pm = 100 * (pos[i] - pos[j]).norm(dim=1).double()
        zi, zj = z[i], z[j]
        single, double, triple = (distance_pm < table[zi, zj] for table in _THRESHOLDS)
        # Nested as in EDM: a double bond needs the single threshold too, a triple the double one.
        order = single.long() * (1 + double.long() * (1 + triple.long()))
        keep = order > 0
        edges.append(pairs[:, keep])
        orders.append(order[keep])
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(edges, 1), torch.cat(orders)


def valences(edges: Tensor, order: Tensor, num_atoms: int) -> Tensor:
    """Sum of bond orders of each atom ``[N]``."""
    total = torch.zeros(num_atoms, dtype=torch.long)
    return total.index_add_(0, edges[0], order).index_add_(0, edges[1], order)


def atom_stable(z: Tensor, valence: Tensor, *, charge: Tensor | None = None) -> Tensor:
    """Whether each atom's valence is allowed for its element (and formal charge) ``[N]`` bool."""
    charge = torch.zeros_like(z) if charge is None else charge.long()
    ok = (charge.abs() <= _MAX_CHARGE) & (valence < _MAX_VALENCE)
    stable = _ALLOWED[z.long(), (charge + _MAX_CHARGE).clamp(0, 2 * _MAX_CHARGE), valence.clamp(0, _MAX_VALENCE - 1)]
    return stable & ok


def stability(pos: Tensor, z: Tensor, counts: Tensor, *, charge: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Atom stability ``[N]`` and molecule stability ``[M]`` (every atom stable) as bools."""
    edges, order = bond_orders(pos, z, counts)
    stable = atom_stable(z.cpu(), valences(edges, order, z.shape[0]), charge=None if charge is None else charge.cpu())
    molecule = torch.repeat_interleave(torch.arange(len(counts)), counts.cpu().long())
    unstable = torch.zeros(len(counts), dtype=torch.long).index_add_(0, molecule, (~stable).long())
    return stable, unstable == 0
