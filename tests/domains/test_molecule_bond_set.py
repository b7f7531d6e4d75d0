"""Training from the cached bonds needs no RDKit (a GPU machine or a minimal install has none)."""
import subprocess
import sys
import textwrap

import torch

from sciffusion_domains.molecules.bond_set import BondSet, qm9_bonds


def _two_molecules() -> BondSet:
    # water (O, H, H) and HCN (H, C, N): bonds within each molecule, i < j
    return BondSet(counts=torch.tensor([3, 3]), z=torch.tensor([8, 1, 1, 1, 6, 7]), charge=torch.zeros(6),
                   num_edges=torch.tensor([2, 2]), edges=torch.tensor([[0, 1], [0, 2], [0, 1], [1, 2]]),
                   order=torch.tensor([1, 1, 1, 3]), order_kekule=torch.tensor([1, 1, 1, 3]),
                   status=torch.zeros(2), source=torch.zeros(2))


def test_cached_bonds_load_without_rdkit(tmp_path):
    bonds = _two_molecules()
    (tmp_path / "qm9").mkdir()
    torch.save(bonds.to_tensors(), tmp_path / "qm9" / "qm9_bonds_v1.pt")
    loaded = qm9_bonds(root=tmp_path)
    assert torch.equal(loaded.order, bonds.order) and torch.equal(loaded.edges, bonds.edges)
    assert loaded.without_hydrogens().counts.tolist() == [1, 2]
    # In a fresh interpreter where importing RDKit fails, the training path still imports and reads the cache.
    script = textwrap.dedent(f"""
        import sys
        sys.modules["rdkit"] = None  # any "import rdkit" now raises ImportError
        from sciffusion_domains.molecules.bond_set import qm9_bonds
        from sciffusion_domains.molecules.joint_domain import QM9JointDomain
        from sciffusion_domains.molecules.networks.joint import JointMoleculeNet
        bonds = qm9_bonds(root={str(tmp_path)!r}, kekulize=True)
        assert bonds.order.tolist() == [1, 1, 1, 3], bonds.order
        assert "rdkit" not in {{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}}
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_chemistry_reexports_the_bond_set():
    from sciffusion_domains.molecules import chemistry

    assert chemistry.BondSet is BondSet and chemistry.qm9_bonds is qm9_bonds
