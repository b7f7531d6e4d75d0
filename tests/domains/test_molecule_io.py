"""Reading users' SDF/XYZ files with reported failures, writing SDF/XYZ, and the figures."""
import os

import numpy as np
import pytest
import torch
from PIL import Image
from rdkit import Chem, RDConfig

from sciffusion_domains.molecules import bonds, data, figures, io, metrics

EGFR = os.path.join(RDConfig.RDContribDir, "PBF", "testData", "egfr.sdf")
WATER = """water
     RDKit          3D

  3  2  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.1173 O   0  0  0  0  0  0  0  0  0  0  0  0
    0.0000    0.7572   -0.4692 H   0  0  0  0  0  0  0  0  0  0  0  0
    0.0000   -0.7572   -0.4692 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
M  END
$$$$
"""
BROKEN = """broken
     RDKit          3D

  2  1  0  0  0  0  0  0  0  0999 V2000
    0.0000    zero      0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
M  END
$$$$
"""
FLAT = WATER.replace("RDKit          3D", "RDKit          2D").replace("0.1173", "0.0000").replace("-0.4692", " 0.0000")


@pytest.fixture(scope="module")
def qm9():
    return data.load_qm9(limit=60)


def test_rdkit_bundled_sdf_reads_with_hydrogens_and_coordinates():
    molecules, report = io.read_sdf(EGFR)
    assert report.num_records == report.num_read == len(molecules) == 365 and not report.failures
    reference = next(iter(Chem.SDMolSupplier(EGFR, removeHs=False)))
    assert torch.allclose(molecules[0].pos, torch.tensor(reference.GetConformer().GetPositions(), dtype=torch.float32))
    assert molecules[0].z.tolist() == [a.GetAtomicNum() for a in reference.GetAtoms()]
    assert (molecules.z == 1).any()


def test_broken_and_flat_records_are_reported_by_index(tmp_path):
    path = tmp_path / "mixed.sdf"
    path.write_text(WATER + BROKEN + WATER + FLAT)
    with pytest.warns(UserWarning, match="skipped 2 records"):
        molecules, report = io.read_sdf(path)
    assert len(molecules) == report.num_read == 2 and report.num_records == 4
    assert [index for index, _ in report.failures] == [1, 3] and report.records == [0, 2]
    assert "2D" in report.failures[1][1] and "record 1" in str(report)
    with pytest.raises(ValueError, match="could not read every record"):
        io.read_sdf(path, errors="raise")


def test_unsupported_elements_are_reported():
    with pytest.warns(UserWarning):
        molecules, report = io.read_sdf(EGFR, elements=data.QM9_ATOMS)
    assert report.num_read + len(report.failures) == 365 and report.failures
    assert set(molecules.z.tolist()) <= {1, 6, 7, 8, 9}
    index, reason = report.failures[0]
    mol = Chem.SDMolSupplier(EGFR, removeHs=False)[index]
    assert {a.GetSymbol() for a in mol.GetAtoms()} - set(data.QM9_ATOMS) and "not among" in reason


def test_xyz_frames_with_errors(tmp_path):
    path = tmp_path / "frames.xyz"
    path.write_text("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.469\nH 0 -0.757 -0.469\n"
                    "2\nbad element\nXx 0 0 0\nH 0 0 1\n"
                    "1\ncarbon only\nC 0 0 0\n"
                    "2\ntruncated\nH 0 0 0\n")
    with pytest.warns(UserWarning):
        molecules, report = io.read_xyz(path)
    assert report.num_records == 4 and [i for i, _ in report.failures] == [1, 3]
    assert "unknown element 'Xx'" in report.failures[0][1]
    assert molecules.counts.tolist() == [3, 1] and molecules.z.tolist() == [8, 1, 1, 6]
    assert report.records == [0, 2]
    with pytest.raises(ValueError, match="errors must be 'report' or 'raise'"):
        io.read_xyz(path, errors="ignore")


def test_sdf_round_trip_keeps_coordinates_and_inferred_bonds(tmp_path, qm9):
    path = io.write_sdf(qm9, tmp_path / "out.sdf")
    read, report = io.read_sdf(path)
    assert report.num_read == len(qm9) and torch.equal(read.z, qm9.z)
    assert (read.pos - qm9.pos).abs().max() < 1e-4  # molfile coordinates have 4 decimals
    edges, order = bonds.bond_orders(qm9.pos, qm9.z, qm9.counts)
    written = [Chem.MolFromMolBlock(Chem.MolToMolBlock(m), removeHs=False, sanitize=False)
               for m in Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)]
    assert sum(m.GetNumBonds() for m in written) == edges.shape[1]
    assert sum(int(b.GetBondTypeAsDouble()) for m in written for b in m.GetBonds()) == int(order.sum())
    assert metrics.evaluate(read, perceive_bonds=False).smiles == metrics.evaluate(qm9, perceive_bonds=False).smiles


def test_xyz_round_trip_and_folder_reading(tmp_path, qm9):
    io.write_xyz(qm9.select(range(10)), tmp_path / "a.xyz")
    io.write_sdf(qm9.select(range(10, 15)), tmp_path / "b.sdf")
    read, report = io.read_xyz(tmp_path / "a.xyz")
    assert torch.equal(read.z, qm9.select(range(10)).z)
    assert torch.allclose(read.pos, qm9.select(range(10)).pos, atol=1e-6)
    both, reports = io.read_molecules(tmp_path)
    assert len(both) == 15 and [r.num_read for r in reports] == [10, 5]
    with pytest.raises(ValueError, match="unknown molecule format"):
        io.read_molecules(tmp_path / "notes.txt")


def _non_blank(path):
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
    return pixels.std() > 5 and (pixels < 128).mean() > 0.001


def test_figures_are_written_and_not_blank(tmp_path, qm9):
    subset = qm9.select(range(20, 28))
    grid3d = figures.plot_molecules_3d(subset, tmp_path / "grid3d.png", titles=subset.smiles)
    grid2d = figures.draw_molecules_2d(subset, tmp_path / "grid2d.png", legends=subset.smiles)
    for path in (grid3d, grid2d):
        assert path.stat().st_size > 5_000 and _non_blank(path)
    assert Image.open(grid2d).size == (4 * 250, 2 * 250)
    # Invalid samples (random points) are drawn too instead of failing.
    noise = data.MoleculeSet(3 * torch.randn(int(subset.counts.sum()), 3), subset.z, subset.counts)
    assert _non_blank(figures.draw_molecules_2d(noise, tmp_path / "noise.png"))
