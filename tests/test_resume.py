"""Rerunning sciffusion-train in a run folder: it resumes only with the same config (up to the options
that may change), says so, never logs a step twice, and a finished run stops; ``train.init_from``
starts a new run from a checkpoint's weights. Failed commands print one line and leave nothing empty."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sciffusion.testing import run_app
from sciffusion.training import CheckpointError, load_checkpoint
from sciffusion.training.resume import ConfigMismatchError, check_resumable, config_changes, describe_changes

TINY = ["train.batch_size=32", "train.progress=false", "train.tensorboard=false", "train.log_every=1",
        "train.save_every=4", "train.keep_every=4", "domain.train_size=256", "domain.test_size=128",
        "network.hidden=16", "network.depth=2"]


def train(run_dir: Path, *args: str, check: bool = True):
    return run_app("train", *TINY, f"hydra.run.dir={run_dir}", *args, cwd=run_dir.parent, check=check)


def steps_logged(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory) -> Path:
    """A finished 6-step run: last.ckpt at step 6, step_00000004.ckpt, metrics for steps 1..6."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    train(run_dir, "train.steps=6")
    return run_dir


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def test_config_changes_lists_dotted_keys_and_ignores_options_that_may_change():
    old = {"process": {"name": "edm"}, "train": {"steps": 10, "lr": 1e-3, "save_every": 5}, "sampling": {"steps": 8}}
    new = {"process": {"name": "flow"}, "train": {"steps": 20, "lr": 1e-3, "save_every": 7, "init_from": None},
           "sampling": {"steps": 4}, "network": {"hidden": 8}}
    changes = config_changes(old, new)
    assert changes.keys() == {"process.name", "network.hidden"}  # init_from: absent = its default None
    assert describe_changes(changes) == "network.hidden: <absent> -> 8, process.name: 'edm' -> 'flow'"
    check_resumable({"config": old}, {**old, "train": {**old["train"], "steps": 99}}, "x.ckpt")
    with pytest.raises(ConfigMismatchError, match=r"process.name: 'edm' -> 'flow'.*train.resume=null.*hydra.run.dir"):
        check_resumable({"config": old}, new, "x.ckpt")


def test_options_added_since_a_run_started_are_accepted_unless_given():
    old = {"train": {"steps": 10, "lr": 1e-3}, "domain": {"name": "qm9"}}
    new = {"train": {"steps": 20, "lr": 1e-3, "init_new_parameters": False}, "domain": {"name": "qm9", "half_seed": 42}}
    # Without the command line's keys (a Trainer used from Python): strict, every added key is a change.
    assert config_changes(old, new).keys() == {"train.init_new_parameters", "domain.half_seed"}
    # From the CLI: keys the user did not set are options this version added, at their current values.
    assert config_changes(old, new, given=["train.steps"]) == {}
    assert check_resumable({"config": old}, new, "x.ckpt", given=["train.steps"]) == {
        "train.init_new_parameters": False, "domain.half_seed": 42}
    # ... but a key the user set is a deliberate choice the old run did not make; a changed key stays a change.
    with pytest.raises(ConfigMismatchError, match=r"domain.half_seed: <absent> -> 42"):
        check_resumable({"config": old}, new, "x.ckpt", given=["domain.half_seed"])
    with pytest.raises(ConfigMismatchError, match=r"train.lr: 0.001 -> 0.01"):
        check_resumable({"config": old}, {**new, "train": {**new["train"], "lr": 1e-2}}, "x.ckpt", given=[])


def test_a_run_from_an_older_version_resumes_and_names_the_added_options(six_steps, tmp_path):
    run_dir = copy_run(six_steps, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    state = load_checkpoint(last)
    del state["config"]["train"]["init_new_parameters"]  # as written before that option existed
    torch.save(state, last)
    out = train(run_dir, "train.steps=8")
    said = out.stdout + out.stderr
    assert "resuming from step 6" in said
    assert "options added to the library since this run started, at their current values: " \
           "train.init_new_parameters=False" in said
    # Setting the added option on the command line is a change the run never had: refused.
    torch.save(state, last)
    refused = train(run_dir, "train.steps=10", "train.init_new_parameters=true", check=False)
    assert refused.returncode == 1 and "train.init_new_parameters: <absent> -> True" in refused.stderr


def test_a_different_config_stops_with_the_keys_and_leaves_the_run_untouched(six_steps, tmp_path):
    run_dir = copy_run(six_steps, tmp_path)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    out = train(run_dir, "train.steps=10", "process=edm", "network.hidden=32", check=False)
    assert out.returncode == 1
    message = out.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    for expected in ("network.hidden: 16 -> 32", "process.", "train.resume=null", "hydra.run.dir",
                     "train.init_from="):
        assert expected in message
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # config.yaml, .hydra/, checkpoints and metrics as they were; no empty train.log


def test_resuming_is_announced_and_logs_each_step_once(six_steps, tmp_path):
    run_dir = copy_run(six_steps, tmp_path)
    # As if killed after step 6 was logged but before it was saved: the last save was at step 4, and the
    # kill cut a record in half.
    shutil.copy(run_dir / "checkpoints" / "step_00000004.ckpt", run_dir / "checkpoints" / "last.ckpt")
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "kind": "tr')
    out = train(run_dir, "train.steps=8")  # a longer run may continue
    assert f"resuming from step 4 of {run_dir / 'checkpoints' / 'last.ckpt'}" in out.stdout + out.stderr
    assert "resuming from step 4" in (run_dir / "train.log").read_text()
    assert steps_logged(run_dir) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["step"] == 8


def test_a_finished_run_says_so_and_does_not_train(six_steps, tmp_path):
    run_dir = copy_run(six_steps, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes(), (run_dir / "metrics.jsonl").read_text()
    out = train(run_dir, "train.steps=6")
    assert "is finished: step 6 of train.steps=6" in out.stdout + out.stderr
    assert "done, final loss" not in out.stdout
    assert (last.read_bytes(), (run_dir / "metrics.jsonl").read_text()) == before


def test_a_truncated_last_checkpoint_names_what_exists_and_the_fix(six_steps, tmp_path):
    run_dir = copy_run(six_steps, tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    out = train(run_dir, "train.steps=6", check=False)
    message = out.stderr.strip()
    assert out.returncode == 1 and len(message.splitlines()) == 1, out.stderr
    assert "truncated or corrupt" in message and "step_00000004.ckpt" in message and "train.resume=null" in message
    assert "weights_only=False" not in out.stdout + out.stderr

    (run_dir / "checkpoints" / "step_00000004.ckpt").unlink()
    out = train(run_dir, "train.steps=6", check=False)
    assert "no numbered checkpoints" in out.stderr and "train.resume=null" in out.stderr


def test_init_from_starts_a_new_run_from_the_weights_only(six_steps, tmp_path):
    source = six_steps / "checkpoints" / "last.ckpt"
    run_dir = tmp_path / "finetune"
    out = train(run_dir, "train.steps=2", "optim.lr=0.0", f"train.init_from={source}")
    assert f"starting a new run from the weights of {source} (step 6)" in out.stdout + out.stderr
    state, teacher = load_checkpoint(run_dir / "checkpoints" / "last.ckpt"), load_checkpoint(source)
    assert state["step"] == 2 and steps_logged(run_dir) == [1, 2]
    assert state["ema"]["num_updates"] == 2  # the EMA starts from the teacher's weights, its warm-up afresh
    assert state["optimizer"]["state"][0]["step"] == 2  # a fresh optimiser: 2 steps, not 6 + 2
    for key, value in teacher["model"].items():  # with lr 0 the weights stay the teacher's
        assert torch.equal(state["model"][key], value), key


def test_init_from_a_checkpoint_whose_network_does_not_fit_names_the_options(six_steps, tmp_path):
    run_dir = tmp_path / "wider"
    out = train(run_dir, "train.steps=2", "network.hidden=32",
                f"train.init_from={six_steps / 'checkpoints' / 'last.ckpt'}", check=False)
    assert out.returncode == 1 and "network.hidden: 16 -> 32" in out.stderr, out.stderr
    assert not run_dir.exists()  # a failed command leaves no folder behind


def test_user_errors_are_one_line_and_leave_no_output_folder(tmp_path):
    out = run_app("sample", f"checkpoint={tmp_path / 'missing.ckpt'}", f"out_dir={tmp_path / 'samples'}",
                  cwd=tmp_path, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and "no checkpoint at" in out.stderr
    assert not (tmp_path / "samples").exists()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    full = subprocess.run([sys.executable, "-m", "sciffusion.cli.evaluate", f"checkpoint={tmp_path / 'missing.ckpt'}",
                           f"out_dir={tmp_path / 'eval'}"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert full.returncode != 0 and "Traceback" in full.stderr and "CheckpointError" in full.stderr
    assert not (tmp_path / "eval").exists()


def test_evaluate_multirun_writes_one_folder_per_job(six_steps, tmp_path):
    ckpt = six_steps / "checkpoints" / "last.ckpt"
    run_app("evaluate", "--multirun", f"checkpoint={ckpt}", "num_samples=16", "batch_size=8", "steps=3",
            "sampler=heun,euler", f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    samplers = {s: json.loads((tmp_path / "eval" / f"sampler={s}" / "metrics.json").read_text())["sampler"]
                for s in ("heun", "euler")}
    assert samplers == {"heun": "heun", "euler": "euler"}
    assert not (tmp_path / "eval" / "metrics.json").exists()


def test_unsafe_and_truncated_files_give_errors_without_pytorchs_advice(tmp_path):
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save({"format": "sciffusion-checkpoint", "thing": Path("/")}, unsafe)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(unsafe)
    assert "pathlib" in str(err.value) and "weights_only=False" not in str(err.value)
    assert "add_safe_globals" not in str(err.value) and err.value.__cause__ is None


def test_the_property_predictor_goes_through_the_safe_loader(tmp_path):
    property_ = pytest.importorskip("sciffusion_domains.molecules.property")
    unsafe = tmp_path / "phi.pt"
    torch.save({"kind": "x", "thing": Path("/")}, unsafe)
    with pytest.raises(CheckpointError, match="cannot be loaded safely") as err:
        property_.load_predictor(unsafe)
    assert "weights_only=False" not in str(err.value) and "property train" in str(err.value)
    with pytest.raises(CheckpointError, match="no property predictor at"):
        property_.load_predictor(tmp_path / "missing.pt")


def test_init_new_parameters_lets_only_missing_parameters_start_afresh():
    """Fine-tuning an unconditional network as a conditional one: the property embedding is new, every
    stored parameter must still fit, and without the option the error names it."""
    from types import SimpleNamespace

    from sciffusion.training.resume import load_weights

    def net(conditional: bool):
        torch.manual_seed(1)
        layers = {"body": torch.nn.Linear(3, 4)}
        if conditional:
            layers["embed_cond"] = torch.nn.Linear(2, 4)
        return torch.nn.ModuleDict(layers)

    stored = net(False)
    checkpoint = {"model": stored.state_dict(), "ema": {"module": stored.state_dict()}, "config": {}}
    model, ema = net(True), SimpleNamespace(module=net(True))
    with torch.no_grad():
        model["body"].weight.zero_()
    with pytest.raises(ConfigMismatchError, match="train.init_new_parameters=true"):
        load_weights(model, ema, checkpoint, {}, "x.ckpt")
    new = load_weights(model, ema, checkpoint, {}, "x.ckpt", new_parameters=True)
    assert new == ["embed_cond.weight", "embed_cond.bias"]
    assert torch.equal(model["body"].weight, stored["body"].weight)
    assert torch.equal(ema.module["body"].weight, stored["body"].weight)
    wrong = torch.nn.ModuleDict({"body": torch.nn.Linear(3, 5), "embed_cond": torch.nn.Linear(2, 4)})
    with pytest.raises(ConfigMismatchError):  # a stored parameter that does not fit still fails
        load_weights(wrong, SimpleNamespace(module=wrong), checkpoint, {}, "x.ckpt", new_parameters=True)
