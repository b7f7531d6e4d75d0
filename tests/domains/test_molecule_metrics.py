"""Bond inference and the EDM metrics, checked against EDM's published numbers for QM9 itself."""
import math

import pytest
import torch

from sciffusion_domains.molecules import bonds, data, metrics
from sciffusion_domains.molecules.data import MoleculeSet


@pytest.fixture(scope="module")
def qm9():
    return data.load_qm9(limit=2000)


def _scalar_bond_order(a: str, b: str, distance_angstrom: float) -> int:
    """EDM's nested rule for one pair, written as plain Python for comparison."""
    pair = lambda table: table.get((a, b), table.get((b, a)))
    d = 100 * distance_angstrom
    single, double, triple = map(pair, (bonds.SINGLE_BOND_PM, bonds.DOUBLE_BOND_PM, bonds.TRIPLE_BOND_PM))
    if single is None or d >= single + 10:
        return 0
    if double is None or d >= double + 5:
        return 1
    if triple is None or d >= triple + 3:
        return 2
    return 3


def test_tables_hold_edm_values():
    assert bonds.SINGLE_BOND_PM[("C", "C")] == 154 and bonds.SINGLE_BOND_PM[("H", "O")] == 96
    assert bonds.DOUBLE_BOND_PM[("C", "O")] == 120 and bonds.TRIPLE_BOND_PM[("C", "N")] == 116
    assert bonds.MARGINS_PM == (10, 5, 3)
    assert {s: bonds.ALLOWED_VALENCES[s] for s in "HCNOF"} == {"H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,)}


@pytest.mark.parametrize("distance, order", [(1.53, 1), (1.38, 2), (1.22, 3), (1.65, 0)])
def test_carbon_carbon_orders(distance, order):
    pos = torch.tensor([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]])
    edges, found = bonds.bond_orders(pos, torch.tensor([6, 6]), torch.tensor([2]))
    assert found.tolist() == ([order] if order else [])


def test_molecule_pairs_are_all_pairs_within_molecules():
    counts = torch.tensor([3, 1, 4])
    expected, offset = [], 0
    for n in counts.tolist():
        expected += [(offset + i, offset + j) for i in range(n) for j in range(i + 1, n)]
        offset += n
    assert [tuple(p) for p in bonds.molecule_pairs(counts).T.tolist()] == expected


def test_vectorised_orders_match_scalar_rule():
    # Random pairs of H C N O F at distances covering every threshold.
    g = torch.Generator().manual_seed(0)
    symbols = "HCNOF"
    n = 3000
    kinds = torch.randint(0, 5, (n, 2), generator=g)
    distances = 0.9 + 1.0 * torch.rand(n, generator=g)
    pos = torch.zeros(2 * n, 3)
    pos[1::2, 0] = distances
    z = torch.tensor([data.ATOMIC_NUMBERS[symbols[k]] for k in kinds.flatten().tolist()])
    edges, order = bonds.bond_orders(pos, z, torch.full((n,), 2))
    found = torch.zeros(n, dtype=torch.long)
    found[edges[0] // 2] = order
    expected = [_scalar_bond_order(symbols[a], symbols[b], float(pos[2 * k + 1, 0]))
                for k, (a, b) in enumerate(kinds.tolist())]
    assert found.tolist() == expected


def test_qm9_stability_matches_edm_published_data_numbers(qm9):
    # EDM (Hoogeboom et al. 2022, Table 1, "Data"): atom stability 99.0%, molecule stability 95.2%.
    atom_ok, molecule_ok = bonds.stability(qm9.pos, qm9.z, qm9.counts)
    assert abs(100 * atom_ok.float().mean().item() - 99.0) < 0.5
    assert abs(100 * molecule_ok.float().mean().item() - 95.2) < 2.0


def test_charged_valences():
    z = torch.tensor([7, 8])
    assert bonds.atom_stable(z, torch.tensor([4, 1])).tolist() == [False, False]
    assert bonds.atom_stable(z, torch.tensor([4, 1]), charge=torch.tensor([1, -1])).tolist() == [True, True]
    assert bonds.atom_stable(torch.tensor([6]), torch.tensor([12])).tolist() == [False]


def test_real_molecules_score_like_real_molecules(qm9):
    subset = qm9.select(range(0, 2000, 8))
    result = metrics.evaluate(subset, training_smiles=metrics.reference_smiles(subset))
    assert result.num_molecules == 250
    assert result.validity > 0.95 and result.uniqueness == 1.0 and result.connectivity > 0.99
    assert result.validity_perceived > 0.95
    assert result.novelty == 0.0  # every molecule is in its own reference set
    assert metrics.evaluate(subset, training_smiles=set(), perceive_bonds=False).novelty == 1.0
    assert set(result.as_dict()) == {"atom_stability", "molecule_stability", "validity", "uniqueness",
                                     "novelty", "connectivity", "validity_perceived"}


def test_random_points_are_unstable(qm9):
    g = torch.Generator().manual_seed(0)
    counts = qm9.counts[:200]
    points = MoleculeSet(2.0 * torch.randn(int(counts.sum()), 3, generator=g), qm9.z[:int(counts.sum())], counts)
    result = metrics.evaluate(points)
    assert result.molecule_stability == 0.0 and result.atom_stability < 0.2
    assert result.connectivity < 0.05 and result.validity_perceived < 0.1


def test_metrics_are_invariant_to_rotation_and_translation(qm9):
    subset = qm9.select(range(40))
    angle = torch.tensor(0.7)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0],
                             [0.0, 0.0, 1.0]])
    moved = MoleculeSet(subset.pos @ rotation.T + torch.tensor([3.0, -1.0, 2.0]), subset.z, subset.counts)
    a, b = metrics.evaluate(subset, perceive_bonds=False), metrics.evaluate(moved, perceive_bonds=False)
    assert a.smiles == b.smiles and a.as_dict() == b.as_dict()


def test_rdkit_molecules_keep_coordinates_and_bonds(qm9):
    subset = qm9.select([20, 21])
    mols = metrics.rdkit_molecules(subset)
    edges, order = bonds.bond_orders(subset.pos, subset.z, subset.counts)
    assert sum(m.GetNumBonds() for m in mols) == edges.shape[1]
    first = torch.tensor(mols[0].GetConformer().GetPositions(), dtype=torch.float32)
    assert torch.allclose(first, subset[0].pos)
    assert [a.GetAtomicNum() for a in mols[1].GetAtoms()] == subset[1].z.tolist()
