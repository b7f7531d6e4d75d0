"""The qm9_joint domain: batches of positions, atoms, charges and bonds; metrics calibrated on real
molecules; training, sampling without the data, and the files written, through the apps."""
import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("rdkit")

from sciffusion.categorical import CategoricalProcess  # noqa: E402
from sciffusion.joint import make_joint_process  # noqa: E402
from sciffusion.registry import make_domain  # noqa: E402
from sciffusion_domains.molecules.joint_domain import QM9JointDomain  # noqa: E402

LIMIT = 80


@pytest.fixture(scope="module")
def domain():
    return QM9JointDomain(limit=LIMIT)


def parts(prior="marginal"):
    return make_joint_process({"pos": {"name": "vp_cosine"},
                               "atoms": {"categorical": {"num_classes": 5, "prior": prior}},
                               "charges": {"categorical": {"num_classes": 3, "prior": prior}},
                               "bonds": {"categorical": {"num_classes": 5, "prior": prior}}})


def test_batches_hold_every_pair_once_and_centred_positions(domain):
    data = domain.dataset("train")
    batch = domain.collate([data[i] for i in range(6)])
    x, space = batch.x, batch.space
    counts = space["atoms"].counts
    assert x["bonds"].shape[0] == int((counts * (counts - 1) // 2).sum()) == space["bonds"].index.shape[1]
    torch.testing.assert_close(space["pos"].mean(x["pos"]), torch.zeros(6, 3), atol=1e-5, rtol=0)
    assert x["atoms"].max() < 5 and x["charges"].max() < 3 and x["bonds"].max() <= 4
    assert isinstance(make_domain("qm9_joint", limit=10), QM9JointDomain)


def test_real_molecules_score_as_real(domain):
    """Calibration: QM9's own molecules, decoded from batches, are stable and valid under the
    generated-bond protocol (their bonds are RDKit's perception, checked against the SMILES)."""
    reference = domain.reference("train", limit=40)
    metrics = domain.metrics(reference, reference[:20])
    assert metrics["atom_stability"] > 0.99 and metrics["molecule_stability"] > 0.95, metrics
    assert metrics["validity"] > 0.95 and metrics["validity_lenient"] >= metrics["validity"]
    assert metrics["w1_bond_length_single"] < 0.05


def test_state_sets_marginal_priors_and_network_sizes(domain):
    process = parts()
    domain.prepare_process(process)
    state = domain.state_dict()
    torch.testing.assert_close(process["bonds"].pi, state["bonds"] / state["bonds"].sum())
    assert state["bonds"][0] > state["bonds"][1:].sum()  # most pairs are not bonded
    masked = parts("masked")
    domain.prepare_process(masked)
    net = domain.network(hidden=16, layers=1)
    assert net is not None
    with pytest.raises(ValueError, match="classes"):
        domain.prepare_process(make_joint_process({"pos": {"name": "vp_cosine"},
                                                   "atoms": {"categorical": {"num_classes": 4}},
                                                   "charges": {"categorical": {"num_classes": 3}},
                                                   "bonds": {"categorical": {"num_classes": 5}}}))


def test_conditions_and_templates(domain):
    cond = domain.condition(3, num_atoms=7)
    x, space = domain.template(3, cond=cond)
    assert x["pos"].shape == (21, 3) and x["bonds"].shape == (63,)
    with pytest.raises(ValueError, match="num_atoms must lie"):
        domain.condition(2, num_atoms=200)
    with pytest.raises(ValueError, match="only"):
        domain.condition(2, alpha=3.0)
    with pytest.raises(ValueError, match="atom types"):
        QM9JointDomain(remove_h=True).load_state_dict(domain.state_dict())


def test_property_conditioning_follows_edms_protocol():
    """condition=alpha on half b: the same molecules as the qm9 domain's half b, normalised properties in
    the batches, requested values normalised, sizes from p(N | c), and a state that only fits a domain
    conditioned on the same property."""
    from sciffusion_domains.molecules.domain import QM9Domain

    domain = QM9JointDomain(limit=LIMIT, condition="alpha", half="b")
    train = domain.dataset("train")
    qm9 = QM9Domain(limit=LIMIT, condition="alpha", half="b").dataset("train")
    assert len(train) == len(qm9) > 0
    assert torch.equal(train.molecules.z, qm9.molecules.z) and torch.allclose(train.properties, qm9.properties)
    assert len(train) < len(QM9JointDomain(limit=LIMIT).dataset("train"))

    batch = domain.collate([train[i] for i in range(4)])
    assert batch.cond["properties"].shape == (4, 1)
    state = domain.state_dict()
    assert torch.allclose(batch.cond["properties"][:, 0], state["properties"][:4])
    assert abs(float(state["properties"].mean())) < 1e-5  # normalised with this half's statistics

    cond = domain.condition(6, alpha=70.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(domain.denormalise(cond["properties"]), torch.full((6, 1), 70.0))
    x, space = domain.template(6, cond=cond, generator=torch.Generator().manual_seed(0))
    possible = torch.nonzero(state["count_histograms"].sum(0)).flatten()
    assert torch.isin(space["atoms"].counts, possible).all()
    drawn = domain.condition(5)  # no value asked for: drawn from the training half
    assert drawn["properties"].shape == (5, 1)
    assert torch.isin(drawn["properties"].flatten(), state["properties"]).all()

    with pytest.raises(ValueError, match="domain.condition=alpha"):
        QM9JointDomain(limit=LIMIT).load_state_dict(state)
    with pytest.raises(ValueError, match="QM9 target"):
        QM9JointDomain(condition="colour")
    with pytest.raises(ValueError, match="remove"):
        domain.condition(2, gap=0.2)
    assert domain.network(hidden=8, layers=1, edge_hidden=4).cond_dim == 1


def test_train_then_sample_without_the_data(tmp_path):
    """Train a few steps, then sample with an empty data cache: the checkpoint holds what sampling needs.
    The SDF carries the generated bonds and charges."""
    from rdkit import Chem

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}

    def cli(app, *args, extra_env=None):
        out = subprocess.run([sys.executable, "-m", f"sciffusion.cli.{app}", *args], cwd=tmp_path,
                             env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{app} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"

    run = tmp_path / "run"
    cli("train", "experiment=qm9_joint_cpu", f"domain.limit={LIMIT}", "train.steps=3", "train.batch_size=8",
        "train.warmup=1", "network.hidden=16", "network.layers=1", f"hydra.run.dir={run}")
    empty = tmp_path / "empty_cache"
    empty.mkdir()
    cli("sample", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", "num_samples=4", "batch_size=4", "steps=4",
        "sampler=ddpm", "grid=uniform_t", "cond.num_atoms=6", f"out_dir={tmp_path / 's'}",
        extra_env={"SCIFFUSION_CACHE": str(empty)})
    mols = [m for m in Chem.SDMolSupplier(str(tmp_path / "s" / "samples.sdf"), sanitize=False, removeHs=False)]
    assert len(mols) == 4 and all(m.GetNumAtoms() == 6 for m in mols)
    assert (tmp_path / "s" / "samples.xyz").read_text().splitlines()[0] == "6"
    assert not any(empty.iterdir())

    # a fragment fixes its atoms, charges and the bonds among them: C=C-O with a cation-free frame
    frag = Chem.RWMol()
    for symbol in ("C", "C", "O"):
        frag.AddAtom(Chem.Atom(symbol))
    frag.AddBond(0, 1, Chem.BondType.DOUBLE)
    frag.AddBond(1, 2, Chem.BondType.SINGLE)
    conf = Chem.Conformer(3)
    for i, xyz in enumerate([(0.0, 0.0, 0.0), (1.34, 0.0, 0.0), (2.05, 1.2, 0.0)]):
        conf.SetAtomPosition(i, xyz)
    frag.AddConformer(conf)
    Chem.MolToMolFile(frag.GetMol(), str(tmp_path / "frag.sdf"), kekulize=False)
    # the same weights fine-tuned as an alpha-conditional model on half b, sampled for a requested
    # alpha with classifier-free guidance, still without the data
    conditional = tmp_path / "alpha"
    cli("train", "experiment=qm9_joint_alpha_cpu", f"domain.limit={LIMIT}", "train.steps=2", "train.batch_size=8",
        "train.warmup=1", "network.hidden=16", "network.layers=1", f"train.init_from={run / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={conditional}")
    assert "embed_cond" in (conditional / "train.log").read_text()  # the new parameters are named
    cli("sample", f"checkpoint={conditional / 'checkpoints' / 'last.ckpt'}", "num_samples=3", "batch_size=3",
        "steps=4", "sampler=ddpm", "grid=uniform_t", "cond.alpha=70", "guidance=cfg", "guidance.scale=2",
        f"out_dir={tmp_path / 'c'}", extra_env={"SCIFFUSION_CACHE": str(empty)})
    assert len(Chem.SDMolSupplier(str(tmp_path / "c" / "samples.sdf"), sanitize=False, removeHs=False)) == 3
    assert not any(empty.iterdir())

    # EDM's property table for it: a predictor (phi) on half a scores the requested alpha; the row
    # adds the stability and validity of the generated bonds
    from sciffusion_domains.molecules import property_cli

    phi, row = tmp_path / "phi.pt", tmp_path / "cfg1.json"
    property_cli.main(["train", "--limit", str(LIMIT), "--half", "a", "--steps", "3", "--batch-size", "8",
                       "--hidden", "8", "--layers", "1", "--val-limit", "10", "--out", str(phi)])
    property_cli.main(["evaluate", "--predictor", str(phi), "--checkpoint", str(conditional / "checkpoints" / "last.ckpt"),
                       "--num-samples", "4", "--batch-size", "4", "--sampler", "ddpm", "--steps", "3", "--out", str(row)])
    scores = json.loads(row.read_text())
    assert scores["num_samples"] == 4 and 0 <= scores["validity"] <= 1 and 0 <= scores["generated_atom_stability"] <= 1
    from argparse import Namespace

    header, _, line = property_cli.table(Namespace(files=[str(row)])).splitlines()
    assert header.endswith("validity |") and line.count("|") == header.count("|")

    cli("sample", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", "num_samples=3", "batch_size=3", "steps=4",
        "sampler=ddpm", "grid=uniform_t", "guidance=fragment", f"guidance.fragment={tmp_path / 'frag.sdf'}",
        "cond.num_atoms=7", f"out_dir={tmp_path / 'f'}")
    for mol in Chem.SDMolSupplier(str(tmp_path / "f" / "samples.sdf"), sanitize=False, removeHs=False):
        assert [a.GetSymbol() for a in mol.GetAtoms()][:3] == ["C", "C", "O"]
        assert mol.GetBondBetweenAtoms(0, 1).GetBondTypeAsDouble() == 2.0
        assert mol.GetBondBetweenAtoms(1, 2).GetBondTypeAsDouble() == 1.0
        assert mol.GetBondBetweenAtoms(0, 2) is None
        pos = mol.GetConformer().GetPositions()[:3]
        assert abs(pos[1][0] - 1.34) < 1e-3 and abs(pos[2][1] - 1.2) < 1e-3


@pytest.mark.parametrize("experiment", ["qm9_joint_eqgat", "qm9_joint_flow_cpu"])
def test_gpu_and_flow_recipes_run_a_few_steps_on_cpu(tmp_path, experiment):
    """The GPU recipe (EQGAT-diff's hyperparameters, bf16 autocast, full-size network) and the flow
    recipe train two steps here and sample."""
    from sciffusion.testing import run_app

    run = tmp_path / "run"
    run_app("train", f"experiment={experiment}", f"domain.limit={LIMIT}", "train.steps=2", "train.batch_size=4",
            "train.warmup=1", f"hydra.run.dir={run}", cwd=tmp_path)
    run_app("sample", f"checkpoint={run / 'checkpoints' / 'last.ckpt'}", "num_samples=2", "steps=3",
            f"out_dir={tmp_path / 's'}", cwd=tmp_path)
    assert (tmp_path / "s" / "samples.sdf").is_file()


def test_keeps_the_domain_contract(domain, tmp_path):
    from sciffusion.testing import assert_domain_contract

    assert_domain_contract(domain, tmp_path, fresh=lambda: QM9JointDomain(limit=LIMIT))
