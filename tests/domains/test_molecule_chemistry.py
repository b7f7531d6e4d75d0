"""Bond orders and formal charges from 3D geometries: perception, SMILES checks and fallbacks, the
QM9 bond set and its hydrogen-free form, RDKit and SDF round trips."""
import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from sciffusion_domains.molecules import chemistry, data
from sciffusion_domains.molecules.chemistry import (BondSet, assign_bonds, from_rdkit, perceive_bonds, qm9_bonds,
                                                     read_bonded_sdf, to_rdkit, write_bonded_sdf)

LIMIT = 120  # molecule 101 (bicyclo[1.1.1]pentane) is the first whose perception fails


@pytest.fixture(scope="module")
def qm9():
    return data.load_qm9(limit=LIMIT)


@pytest.fixture(scope="module")
def qm9_with_bonds(qm9):
    return chemistry.perceive_all(qm9, workers=1, progress=False)


def embedded(smiles: str) -> tuple[torch.Tensor, np.ndarray]:
    """Atomic numbers and an MMFF geometry of a SMILES, hydrogens explicit."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=0) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()]), mol.GetConformer().GetPositions()


def heavy_bonds(z, edges, order):
    return sorted(int(o) for (i, j), o in zip(edges.tolist(), order) if z[i] > 1 and z[j] > 1)


def test_benzene_has_six_aromatic_bonds_or_three_double_when_kekulized():
    z, pos = embedded("c1ccccc1")
    edges, order, charge, status = perceive_bonds(z, pos, 0, "c1ccccc1")
    assert status == "ok" and edges.shape == (12, 2) and (edges[:, 0] < edges[:, 1]).all()
    assert heavy_bonds(z, edges, order) == [4] * 6 and charge.abs().sum() == 0
    edges, order, _, _ = perceive_bonds(z, pos, 0, "c1ccccc1", kekulize=True)
    assert heavy_bonds(z, edges, order) == [1, 1, 1, 2, 2, 2]


def test_carbon_dioxide_has_two_double_bonds():
    z, pos = torch.tensor([8, 6, 8]), np.array([[-1.16, 0.0, 0.0], [0.0, 0.0, 0.0], [1.16, 0.0, 0.0]])
    edges, order, charge, status = perceive_bonds(z, pos, 0, "O=C=O")
    assert status == "ok" and edges.tolist() == [[0, 1], [1, 2]] and order.tolist() == [2, 2]
    assert charge.tolist() == [0, 0, 0]


def test_zwitterion_gets_its_formal_charges():
    z, pos = embedded("[NH3+]CC(=O)[O-]")  # glycine as a zwitterion, total charge 0
    edges, order, charge, status = perceive_bonds(z, pos, 0, "[NH3+]CC([O-])=O")
    assert status == "ok" and charge.sum() == 0
    assert charge[z == 7].tolist() == [1] and sorted(charge[z == 8].tolist()) == [-1, 0]


def test_qm9_zwitterion_takes_the_smiles_charges_with_the_double_bond_on_the_shorter_bond():
    molecule = data.load_qm9(limit=1599)[1598]
    assert molecule.smiles == "C[NH+]=C(N)C([O-])=O"
    # Perception puts the positive charge on the other nitrogen of the amidinium: a resonance form.
    assert perceive_bonds(molecule.z, molecule.pos, 0, molecule.smiles)[3] == "mismatch"
    edges, order, charge, status, source = assign_bonds(molecule.z, molecule.pos, molecule.smiles)
    assert (status, source) == ("mismatch", "smiles") and charge.sum() == 0
    mol = to_rdkit(molecule.z, molecule.pos, charge, edges, order)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.CanonSmiles(molecule.smiles)
    oxygens = [(float((molecule.pos[i] - molecule.pos[j]).norm()), int(o)) for (i, j), o in zip(edges.tolist(), order)
               if {int(molecule.z[i]), int(molecule.z[j])} == {6, 8}]
    assert sorted(oxygens)[0][1] == 2 and sorted(oxygens)[1][1] == 1


def test_wrong_smiles_is_a_mismatch_and_the_geometry_wins(qm9):
    ethanol = qm9[qm9.smiles.index("CCO")]
    assert perceive_bonds(ethanol.z, ethanol.pos, 0, "CCO")[3] == "ok"
    assert perceive_bonds(ethanol.z, ethanol.pos, 0, "COC")[3] == "mismatch"  # same formula, dimethyl ether
    edges, order, _, status, source = assign_bonds(ethanol.z, ethanol.pos, "COC")
    # No mapping of the ether's graph onto ethanol's: the perceived bonds of the coordinates stay.
    assert (status, source) == ("mismatch", "perceived_unmatched") and order.tolist() == [1] * 8
    assert Chem.MolToSmiles(Chem.RemoveHs(to_rdkit(ethanol.z, ethanol.pos, torch.zeros(9), edges, order))) == "CCO"


def test_failed_perception_is_recovered_from_the_smiles(qm9):
    strained = qm9[101]
    assert strained.smiles == "C1C2CC1C2"  # connect-the-dots also bonds the two bridgeheads
    assert perceive_bonds(strained.z, strained.pos, 0, strained.smiles)[3] == "failed"
    edges, order, charge, status, source = assign_bonds(strained.z, strained.pos, strained.smiles)
    assert (status, source) == ("failed", "smiles") and len(edges) == 6 + 8
    assert Chem.MolToSmiles(Chem.RemoveHs(to_rdkit(strained.z, strained.pos, charge, edges, order))) == "C1C2CC1C2"


def test_every_qm9_molecule_gets_bonds_that_give_its_smiles(qm9, qm9_with_bonds):
    bonds = qm9_with_bonds
    assert torch.equal(bonds.counts, qm9.counts) and torch.equal(bonds.z, qm9.z)
    summary = bonds.summary()
    assert summary["status_ok"] + summary["status_failed"] + summary["status_mismatch"] == LIMIT
    assert summary["source_perceived"] + summary["source_smiles"] == LIMIT and summary["status_failed"] >= 1
    for m in range(LIMIT):
        edges, order, charge = bonds.molecule(m)
        a, b = int(qm9.ptr[m]), int(qm9.ptr[m + 1])
        mol = to_rdkit(qm9.z[a:b], qm9.pos[a:b], charge, edges, order)  # strict sanitisation
        assert all(atom.GetNumImplicitHs() == 0 and atom.GetNumRadicalElectrons() == 0 for atom in mol.GetAtoms())
        assert Chem.CanonSmiles(Chem.MolToSmiles(Chem.RemoveHs(mol)), useChiral=False) == \
            Chem.CanonSmiles(qm9.smiles[m], useChiral=False)
    assert set(bonds.order.unique().tolist()) <= {1, 2, 3, 4} and set(bonds.order_kekule.unique().tolist()) <= {1, 2, 3}


def test_without_hydrogens_renumbers_heavy_atoms_as_the_molecule_set_does(qm9, qm9_with_bonds):
    heavy, heavy_molecules = qm9_with_bonds.without_hydrogens(), qm9.without_hydrogens()
    assert torch.equal(heavy.counts, heavy_molecules.counts) and torch.equal(heavy.z, heavy_molecules.z)
    for m in range(LIMIT):
        edges, order, charge = qm9_with_bonds.molecule(m)
        z = qm9_with_bonds.z[int(qm9_with_bonds.ptr[m]):int(qm9_with_bonds.ptr[m + 1])]
        new_index = torch.cumsum(z != 1, 0) - 1
        keep = (z[edges] != 1).all(1)
        heavy_edges, heavy_order, heavy_charge = heavy.molecule(m)
        assert torch.equal(heavy_edges, new_index[edges[keep]]) and torch.equal(heavy_order, order[keep])
        assert torch.equal(heavy_charge, charge[z != 1])


def test_qm9_bonds_follow_load_qm9_split_and_hydrogen_removal():
    for remove_h in (False, True):
        bonds = qm9_bonds(remove_h, split="val", limit=300, workers=1, progress=False)
        molecules = data.load_qm9("val", remove_h=remove_h, limit=300)
        assert len(bonds) == len(molecules) > 0
        assert torch.equal(bonds.counts, molecules.counts) and torch.equal(bonds.z, molecules.z)
    kekule = qm9_bonds(split="val", limit=300, kekulize=True, workers=1, progress=False)
    assert (kekule.order != 4).all() and (kekule.order_kekule == kekule.order).all()


def test_cache_is_plain_tensors_written_once(tmp_path, monkeypatch, qm9):
    calls = []
    monkeypatch.setattr(data, "load_qm9", lambda **kwargs: calls.append(kwargs) or qm9.select(range(30)))
    first = qm9_bonds(root=tmp_path, workers=2, progress=False)
    second = qm9_bonds(root=tmp_path, progress=False)
    assert len(calls) == 1 and len(first) == len(second) == 30
    cached = torch.load(tmp_path / "qm9" / "qm9_bonds_v1.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in cached.values()) and cached["edges"].dtype == torch.uint8
    for name in ("counts", "z", "charge", "num_edges", "edges", "order", "order_kekule", "status", "source"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_rdkit_round_trip_keeps_bonds_and_charges():
    z, pos = embedded("[NH3+]Cc1ccccc1C([O-])=O")
    edges, order, charge, _ = perceive_bonds(z, pos)
    back = from_rdkit(to_rdkit(z, pos, charge, edges, order))
    assert torch.equal(back[0], z) and torch.allclose(back[1], torch.as_tensor(pos).float(), atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(back[2:], (charge, edges, order)))
    with pytest.raises(ValueError, match="AddHs"):
        from_rdkit(Chem.MolFromSmiles("CCO"))


def test_sanitisation_is_strict_and_never_adds_hydrogens():
    methyl = to_rdkit([6, 1, 1, 1], None, [0] * 4, torch.tensor([[0, 1], [0, 2], [0, 3]]), torch.ones(3))
    assert methyl.GetAtomWithIdx(0).GetNumImplicitHs() == 0 and methyl.GetAtomWithIdx(0).GetNumRadicalElectrons() == 1
    five = torch.tensor([[0, k] for k in range(1, 6)])
    with pytest.raises(Chem.AtomValenceException):
        to_rdkit([6, 1, 1, 1, 1, 1], None, [0] * 6, five, torch.ones(5))


def test_sdf_round_trip_keeps_bonds_and_charges(tmp_path, qm9, qm9_with_bonds):
    index = [0, 101, 5, 60]
    molecules, bonds = qm9.select(index), qm9_with_bonds.select(index)
    z, pos = embedded("[NH3+]Cc1ccccc1C([O-])=O")
    edges, order, charge, _ = perceive_bonds(z, pos)
    extra = BondSet(torch.tensor([len(z)]), z, charge, torch.tensor([len(edges)]), edges, order,
                    perceive_bonds(z, pos, kekulize=True)[1], torch.zeros(1), torch.zeros(1))
    molecules = data.MoleculeSet(torch.cat([molecules.pos, torch.as_tensor(pos).float()]), torch.cat([molecules.z, z]),
                                 torch.cat([molecules.counts, extra.counts]))
    bonds = BondSet(*(torch.cat([getattr(bonds, n), getattr(extra, n)]) for n in
                      ("counts", "z", "charge", "num_edges", "edges", "order", "order_kekule", "status", "source")))
    path = write_bonded_sdf(molecules, bonds, tmp_path / "bonded.sdf")
    read_molecules, read_bonds = read_bonded_sdf(path)
    assert torch.allclose(read_molecules.pos, molecules.pos, atol=1e-4) and torch.equal(read_molecules.z, molecules.z)
    for name in ("charge", "num_edges", "edges", "order", "order_kekule"):
        assert torch.equal(getattr(read_bonds, name), getattr(bonds, name)), name
    assert torch.equal(read_molecules.charge, bonds.charge) and int(bonds.charge.abs().sum()) == 2
