"""The molecules domain plugin end to end: QM9 batches in the zero-centre-of-mass subspace, atom
counts from the training histogram, conditions, decoding and files, metrics on real molecules,
user files, an E(3)-equivariant sampling run, and train/sample/evaluate through the CLI."""
import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from sciffusion.domain import Batch
from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import VPCosine
from sciffusion.registry import make_domain
from sciffusion.samplers import prior_sample, sample
from sciffusion.space import GraphSpace
from sciffusion.timesteps import make_grid
from sciffusion_domains.molecules.data import QM9_TARGETS
from sciffusion_domains.molecules.domain import NUM_ATOMS, PROPERTIES, MoleculeDataset, QM9Domain

LIMIT = 300  # the first QM9 rows: ~230 training, ~40 validation, ~30 test molecules


@pytest.fixture(scope="module")
def qm9():
    return QM9Domain(limit=LIMIT, perceive_bonds=False)


@pytest.fixture(scope="module")
def qm9_alpha():
    return QM9Domain(limit=LIMIT, condition="alpha")


def test_registered_and_lazy():
    assert isinstance(make_domain("qm9", limit=10), QM9Domain)
    code = ("import sys, sciffusion_domains.molecules, sciffusion_domains.molecules.domain; "
            "print([m for m in ('rdkit', 'e3nn', 'torch_geometric') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_collate_shapes_and_zero_centre_of_mass(qm9):
    data = qm9.dataset("train")
    assert isinstance(data, MoleculeDataset) and 200 < len(data) < LIMIT
    batch = qm9.collate(data.__getitems__(list(range(8))))
    assert isinstance(batch, Batch) and isinstance(batch.space, GraphSpace) and batch.cond == {}
    counts = data.molecules.counts[:8]
    assert batch.x.shape == (int(counts.sum()), 3 + 5 + 1) and len(batch) == 8
    assert batch.space.zero_mean == [0, 1, 2] and torch.equal(batch.space.counts, counts)
    torch.testing.assert_close(batch.space.mean(batch.x[:, :3]), torch.zeros(8, 3), atol=1e-5, rtol=0)
    one_hot = batch.x[:, 3:8] * 4
    assert torch.equal(one_hot.sum(1), torch.ones(len(one_hot))) and set(one_hot.flatten().tolist()) <= {0.0, 1.0}
    # Item by item (the default DataLoader path) gives the same batch.
    same = qm9.collate([data[i] for i in range(8)])
    torch.testing.assert_close(same.x, batch.x)


def test_without_hydrogens_uses_heavy_atom_types():
    domain = QM9Domain(limit=LIMIT, remove_h=True)
    assert domain.atom_types == ("C", "N", "O", "F")
    batch = domain.collate(domain.dataset("val").__getitems__([0, 1, 2]))
    assert batch.x.shape[1] == 3 + 4 + 1 and (batch.x[:, -1] > 0.55).all()  # atomic number / 10 >= 0.6


def test_template_draws_counts_from_the_training_histogram(qm9):
    histogram = qm9.atom_count_histogram().double()
    x, space = qm9.template(4000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (int(space.counts.sum()), 9) and (x == 0).all() and space.num_samples == 4000
    freq = torch.bincount(space.counts, minlength=len(histogram)).double() / 4000
    # Binomial standard error of a frequency is at most 0.5 / sqrt(4000) = 0.008.
    assert (freq[:len(histogram)] - histogram / histogram.sum()).abs().max() < 0.03
    cond = qm9.condition(5, **{NUM_ATOMS: 7})
    _, fixed = qm9.template(5, cond=cond)
    assert fixed.counts.tolist() == [7] * 5


def test_conditions_are_normalised_with_training_statistics(qm9_alpha):
    props = qm9_alpha.dataset("train").properties
    assert props.shape[1] == 1 and abs(float(props.mean())) < 1e-4 and abs(float(props.std()) - 1) < 1e-4
    batch = qm9_alpha.collate(qm9_alpha.dataset("train").__getitems__([0, 1, 2]))
    assert batch.cond[PROPERTIES].shape == (3, 1)
    mean, std = qm9_alpha.property_stats()
    cond = qm9_alpha.condition(4, alpha=float(mean + std))
    torch.testing.assert_close(cond[PROPERTIES], torch.ones(4, 1))
    drawn = qm9_alpha.condition(6, generator=torch.Generator().manual_seed(1))[PROPERTIES]
    assert drawn.shape == (6, 1) and all(v in props.flatten().tolist() for v in drawn.flatten().tolist())
    # Atom counts given the property: only sizes seen in training.
    _, space = qm9_alpha.template(6, generator=torch.Generator().manual_seed(2), cond={PROPERTIES: drawn})
    assert set(space.counts.tolist()) <= set(torch.nonzero(qm9_alpha.atom_count_histogram()).flatten().tolist())
    with pytest.raises(ValueError, match="unknown conditions"):
        qm9_alpha.condition(2, gap=3.0)
    with pytest.raises(ValueError, match="unconditional"):
        QM9Domain(limit=LIMIT).condition(2, alpha=70.0)
    with pytest.raises(ValueError, match="QM9 target"):
        QM9Domain(condition="colour")
    assert "alpha" in QM9_TARGETS


def test_networks_by_kind(qm9_alpha):
    batch = qm9_alpha.collate(qm9_alpha.dataset("train").__getitems__([0, 1]))
    t = torch.full((2,), 0.5)
    for kind, options in [("egnn", {"egnn": {"hidden": 8, "num_layers": 1}}),
                          ("e3nn", {"e3nn": {"hidden_irreps": "4x0e + 2x1o", "num_layers": 1}})]:
        net = qm9_alpha.network(kind=kind, **options)
        assert net(batch.x, t, batch.space, batch.cond).shape == batch.x.shape
    with pytest.raises(ValueError, match="egnn"):
        qm9_alpha.network(kind="schnet")


def test_decode_save_figure_and_metrics_of_real_molecules(qm9, tmp_path):
    reference = qm9.reference("test", limit=12)
    batch = qm9.collate(reference)
    decoded = qm9.decode(batch.x, batch.space)
    assert len(decoded) == 12
    for got, want in zip(decoded, reference):
        assert torch.equal(got.z, want.z)
        torch.testing.assert_close(got.pos, want.pos - want.pos.mean(0), atol=1e-5, rtol=0)
    files = qm9.save(decoded, tmp_path)
    assert {f.name for f in files} == {"samples.sdf", "samples.xyz", "samples.csv"}
    rows = list(csv.DictReader(open(tmp_path / "samples.csv")))
    assert len(rows) == 12 and sum(int(r["valid"]) for r in rows) >= 11 and sum(int(r["stable"]) for r in rows) >= 10
    assert (tmp_path / "samples.sdf").read_text().count("$$$$") == 12
    assert qm9.figure(decoded, tmp_path / "figure.png") == tmp_path / "figure.png"
    assert (tmp_path / "figure.png").stat().st_size > 5000 and (tmp_path / "figure_2d.png").stat().st_size > 5000
    metrics = qm9.metrics(decoded, reference)
    assert metrics["atom_stability"] > 0.97 and metrics["molecule_stability"] > 0.8
    assert metrics["validity"] > 0.9 and metrics["uniqueness"] > 0.9 and metrics["connectivity"] > 0.9
    assert 0 <= metrics["novelty"] <= 1 and metrics["reference_molecule_stability"] > 0.8
    # Training molecules are, by definition, not novel.
    train = qm9.reference("train", limit=10)
    assert qm9.metrics(train, [])["novelty"] < 0.2


def test_user_files_with_an_unreadable_record(qm9, tmp_path):
    from sciffusion_domains.molecules.io import write_sdf, write_xyz

    molecules = qm9.reference("train", limit=30)
    write_sdf(molecules[:20], tmp_path / "a.sdf")
    write_xyz(molecules[20:], tmp_path / "b.xyz")
    with open(tmp_path / "b.xyz", "a") as f:
        f.write("3\nbroken\nC 0 0 0\nQq 1 1 1\n")
    with pytest.warns(UserWarning, match="record 10"):
        domain = QM9Domain(files=[str(tmp_path)])
        train = domain.dataset("train")
    assert sum(len(domain.dataset(s)) for s in ("train", "val", "test")) == 30
    assert domain.atom_types == ("H", "C", "N", "O") and len(train) == 24
    assert [r.num_read for r in domain.read_reports] == [20, 10]
    batch = domain.collate(train.__getitems__([0, 1, 2]))
    assert batch.x.shape[1] == 3 + 4 + 1


def _randomised_egnn(domain: QM9Domain) -> ModelDenoiser:
    torch.manual_seed(0)
    net = domain.network(kind="egnn", egnn={"hidden": 16, "num_layers": 3, "dtype": torch.float64})
    with torch.no_grad():  # make position updates large, not EDM's near-identity start
        for p in net.parameters():
            p.normal_(0, 0.3)
    return ModelDenoiser(net, VPCosine(), "eps")


@pytest.mark.parametrize("sampler, options", [("heun", {}), ("ddim", {"eta": 0.0})])
def test_sampling_run_is_rotation_and_reflection_equivariant(qm9, sampler, options):
    denoiser = _randomised_egnn(qm9)
    g = torch.Generator().manual_seed(3)
    x_like, space = qm9.template(5, generator=g)
    z = prior_sample(denoiser.process, x_like.double(), space=space, generator=g)
    ts = make_grid("karras", denoiser.process, 6)
    run = lambda x: sample(sampler, denoiser, x, ts, process=denoiser.process, space=space, **options)
    out = run(z)
    for q in range(2):
        r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))[0]
        r = r if q == 0 else -r  # the second is a rotation composed with a reflection (or vice versa)
        rotate = lambda x: torch.cat([x[:, :3] @ r.T, x[:, 3:]], 1)
        torch.testing.assert_close(run(rotate(z)), rotate(out), atol=1e-9, rtol=1e-9)
    assert out[:, :3].abs().max() > 0.1  # a non-trivial output
    torch.testing.assert_close(space.mean(out[:, :3]), torch.zeros(5, 3, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.slow
def test_train_sample_evaluate_through_the_cli(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}

    def cli(app, *args):
        out = subprocess.run([sys.executable, "-m", f"sciffusion.cli.{app}", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{app} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"

    run = tmp_path / "run"
    cli("train", "experiment=qm9_tiny", f"hydra.run.dir={run}")
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    cli("sample", f"checkpoint={ckpt}", "num_samples=6", "batch_size=4", "steps=3", "sampler=ddim",
        "cond.num_atoms=5", f"out_dir={tmp_path / 's'}")
    for name in ("samples.sdf", "samples.xyz", "samples.csv", "figure.png", "figure_2d.png"):
        assert (tmp_path / "s" / name).stat().st_size > 0, name
    assert (tmp_path / "s" / "samples.xyz").read_text().splitlines()[0] == "5"
    cli("evaluate", f"checkpoint={ckpt}", "num_samples=6", "batch_size=4", "steps=3", "sampler=ddim",
        "reference_limit=20", f"out_dir={tmp_path / 'e'}")
    result = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert result["num_samples"] == 6
    assert {"atom_stability", "molecule_stability", "validity", "uniqueness", "novelty",
            "connectivity"} <= set(result["metrics"])


@pytest.mark.parametrize("conditional", [False, True])
def test_keeps_the_domain_contract(qm9, qm9_alpha, conditional, tmp_path):
    from sciffusion.testing import assert_domain_contract

    options = dict(limit=LIMIT, condition="alpha") if conditional else dict(limit=LIMIT, perceive_bonds=False)
    assert_domain_contract(qm9_alpha if conditional else qm9, tmp_path, fresh=lambda: QM9Domain(**options))
