"""QM9 loading, caching and splits; packed molecule sets; the dense diffusion state."""
import os

import pytest
import torch
from torch_geometric.data import Batch

from sciffusion.space import GraphSpace
from sciffusion_domains.molecules import data
from sciffusion_domains.molecules.data import MoleculeSet

LIMIT = 500


@pytest.fixture(scope="module")
def qm9():
    return data.load_qm9(limit=LIMIT)


def test_first_rows_parse_into_consistent_tensors(qm9):
    assert len(qm9) == LIMIT and len(qm9.smiles) == LIMIT
    assert qm9.pos.dtype == torch.float32 and qm9.pos.shape == (int(qm9.counts.sum()), 3)
    assert set(qm9.z.unique().tolist()) <= {1, 6, 7, 8, 9}
    assert qm9.y.shape == (LIMIT, len(data.QM9_TARGETS)) and torch.isfinite(qm9.y).all()
    assert {"mu", "alpha", "homo", "lumo", "gap", "Cv"} <= set(qm9.target_names)
    methane = qm9[0]  # QM9 molecule 1: CH4, gap 0.5048 Hartree, Cv 6.469 cal/mol/K
    assert methane.z.tolist() == [6, 1, 1, 1, 1] and methane.smiles == "C"
    gap, cv = qm9.target_names.index("gap"), qm9.target_names.index("Cv")
    assert methane.y[0, gap].item() == pytest.approx(0.5048 * data.HARTREE_TO_EV, rel=1e-5)
    assert methane.y[0, cv].item() == pytest.approx(6.469, rel=1e-5)
    # Bonded C-H distances in QM9 are about 1.09 Angstrom.
    assert (methane.pos[1:] - methane.pos[0]).norm(dim=1).sub(1.09).abs().max() < 0.01


def test_cache_is_written_once_and_loads_with_weights_only(tmp_path, monkeypatch):
    calls = []
    parse = data.parse_qm9

    def small_parse(*, limit=None):
        calls.append(limit)
        return parse(limit=300)

    monkeypatch.setattr(data, "parse_qm9", small_parse)
    first = data.load_qm9(root=tmp_path)
    second = data.load_qm9(root=tmp_path)
    assert calls == [None] and len(first) == len(second) == 300
    assert torch.equal(first.pos, second.pos) and first.smiles == second.smiles
    cached = torch.load(next((tmp_path / "qm9").glob("*.pt")), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in cached.values())
    assert cached["z"].dtype == torch.uint8 and cached["pos"].dtype == torch.float32


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIFFUSION_CACHE", str(tmp_path))
    assert data.cache_dir() == tmp_path


def test_split_has_edm_sizes_is_disjoint_and_fixed():
    splits = data.qm9_split()
    assert {k: len(v) for k, v in splits.items()} == {"train": 100_000, "val": 17_748, "test": 13_083}
    everything = torch.cat(list(splits.values()))
    assert torch.equal(everything.sort().values, torch.arange(data.QM9_SIZE))
    assert torch.equal(data.qm9_split()["val"], splits["val"])
    assert not torch.equal(data.qm9_split(seed=1)["val"], splits["val"])
    small = data.qm9_split(LIMIT)  # subsets keep each molecule's split
    for name, rows in small.items():
        assert torch.isin(rows, splits[name]).all()
    assert sum(len(v) for v in small.values()) == LIMIT


def test_split_selects_the_right_molecules(qm9):
    train = data.load_qm9("train", limit=LIMIT)
    rows = data.qm9_split(LIMIT)["train"]
    assert len(train) == len(rows)
    assert torch.equal(train[3].pos, qm9[int(rows[3])].pos) and train.smiles[3] == qm9.smiles[int(rows[3])]
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_qm9("validation", limit=10)


def test_select_and_without_hydrogens(qm9):
    assert torch.equal(qm9[-1].pos, qm9[LIMIT - 1].pos)
    with pytest.raises(IndexError):
        qm9[LIMIT]
    picked = qm9.select([7, 2])
    assert torch.equal(picked[0].pos, qm9[7].pos) and torch.equal(picked[1].z, qm9[2].z)
    heavy = data.load_qm9(limit=LIMIT, remove_h=True)
    assert (heavy.z != 1).all() and len(heavy) == LIMIT
    assert torch.equal(heavy.counts, torch.tensor([int((qm9[i].z != 1).sum()) for i in range(LIMIT)]))
    assert torch.equal(heavy.pos, qm9.pos[qm9.z != 1])


def test_pyg_batch_round_trip(qm9):
    items = [qm9[i] for i in range(10)]
    batch = Batch.from_data_list(items)
    packed = MoleculeSet.from_molecules(batch)
    assert torch.equal(packed.pos, qm9.select(range(10)).pos) and packed.smiles == qm9.smiles[:10]
    assert torch.equal(packed.y, qm9.y[:10])


def test_state_layout_and_centring(qm9):
    subset = qm9.select(range(20))
    x, space = data.to_state(subset)
    assert isinstance(space, GraphSpace) and space.num_samples == 20
    assert x.shape == (int(subset.counts.sum()), 3 + 5 + 1)
    assert space.mean(x[:, :3]).abs().max() < 1e-5
    one_hot = x[:, 3:8]
    assert torch.equal((one_hot > 0).sum(1), torch.ones(len(x), dtype=torch.long))
    assert torch.allclose(one_hot.sum(1), torch.full((len(x),), 0.25))
    assert torch.allclose(x[:, 8], 0.1 * subset.z.float())
    decoded = data.from_state(x, space)
    assert torch.equal(decoded.z, subset.z) and torch.equal(decoded.counts, subset.counts)
    centred = subset.pos - torch.repeat_interleave(space.mean(subset.pos), subset.counts, 0)
    assert torch.allclose(decoded.pos, centred, atol=1e-5)


def test_state_without_hydrogens_and_charges():
    heavy = data.load_qm9(limit=50, remove_h=True)
    atoms = ("C", "N", "O", "F")
    x, space = data.to_state(heavy, atom_types=atoms, include_charges=False, one_hot_scale=1.0)
    assert x.shape[1] == 3 + 4 and set(x[:, 3:].unique().tolist()) == {0.0, 1.0}
    assert torch.equal(data.from_state(x, space, atom_types=atoms).z, heavy.z)
    with pytest.raises(ValueError, match=r"atomic numbers \[1\] are not among atom_types"):
        data.to_state(data.load_qm9(limit=5), atom_types=atoms)
    with pytest.raises(ValueError, match=r"atom_types \['Xe'\] are not among"):
        data.to_state(heavy, atom_types=("C", "Xe"))


def test_from_state_sorts_interleaved_rows(qm9):
    subset = qm9.select(range(4))
    x, space = data.to_state(subset)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    decoded = data.from_state(x[perm], GraphSpace(space.batch[perm], 4, zero_mean=(0, 1, 2)))
    rows = perm[torch.argsort(space.batch[perm], stable=True)]  # molecule by molecule, atoms in given order
    assert torch.equal(decoded.z, subset.z[rows]) and torch.equal(decoded.counts, subset.counts)
    assert torch.equal(decoded.pos, x[rows, :3])


def test_atom_count_histogram_and_sampling(qm9):
    hist = data.atom_count_histogram(qm9)
    assert hist.sum() == LIMIT and hist[int(qm9.counts.max())] > 0 and hist[:3].sum() == 0
    draws = data.sample_atom_counts(hist, 1000, generator=torch.Generator().manual_seed(0))
    assert (hist[draws] > 0).all()
    with pytest.raises(ValueError, match="empty"):
        data.sample_atom_counts(torch.zeros(5), 3)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SCIFFUSION_SLOW") != "1", reason="parses all of QM9; set SCIFFUSION_SLOW=1")
def test_full_qm9(tmp_path):
    full = data.load_qm9(root=tmp_path)
    assert len(full) == data.QM9_SIZE == 130_831 and int(full.counts.sum()) == 2_359_210
    assert int(full.counts.min()) == 3 and int(full.counts.max()) == 29
    counts = torch.bincount(full.z, minlength=10)
    assert counts[[1, 6, 7, 8, 9]].tolist() == [1_208_486, 831_925, 132_498, 183_265, 3_036]
    assert len(data.load_qm9("test", root=tmp_path, remove_h=True)) == 13_083


def test_a_corrupt_qm9_cache_goes_through_the_safe_loader(tmp_path):
    from sciffusion.training import CheckpointError

    folder = tmp_path / "qm9"
    folder.mkdir()
    (folder / f"qm9_v{data._CACHE_VERSION}.pt").write_bytes(b"PK\x03\x04 truncated")
    (folder / f"qm9_v{data._CACHE_VERSION}_smiles.txt").write_text("C\n")
    with pytest.raises(CheckpointError, match=r"not a readable QM9 cache .*; delete .*qm9; it is rebuilt"):
        data.load_qm9(root=tmp_path)
