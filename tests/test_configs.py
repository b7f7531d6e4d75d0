"""Every config in conf/ (and in every domain's conf/) composes and builds; the configs ship in the
installed package, not only in an editable checkout."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import OmegaConf

import sciffusion.cli  # noqa: F401  (registers the schemas and the domain search path)
from sciffusion.cli import build
from sciffusion import registry
from sciffusion.registry import config_dirs
from sciffusion.samplers import SAMPLERS

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def options(group: str) -> list[str]:
    """Every option of ``group`` in the core's conf/ and in every importable domain's conf/."""
    folders = [CONF / group] + [d / group for d in config_dirs().values()]
    return sorted({p.stem for f in folders if f.is_dir() for p in f.glob("*.yaml")})


@pytest.fixture(scope="module", autouse=True)
def hydra_context():
    """One Hydra context for the module: its search path (every domain's conf/) is built once."""
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        yield


def compose_plain(name: str, overrides: list[str], *, missing_ok: bool = False) -> dict:
    """The composed config as plain dicts; ``missing_ok`` allows ``???`` values left for the user."""
    cfg = compose(name, overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=not missing_ok)


GROUPS = ["process", "parameterization", "loss", "optim", "train", "sampling", "domain"]
TRAIN_CASES = [f"{g}={o}" for g in GROUPS for o in options(g)] + [f"experiment={e}" for e in options("experiment")]


def test_every_group_has_options():
    assert all(options(g) for g in GROUPS + ["experiment", "guidance"])
    assert len(TRAIN_CASES) > 25


@pytest.mark.parametrize("override", TRAIN_CASES)
def test_every_train_config_composes_and_its_core_parts_build(override):
    """Process, loss, optimiser and options build for every config; the whole model for the toy
    domain (other domains test their own networks)."""
    # the joint options describe a state with several parts, which an experiment names: compose them in one
    joint = override.split("=")[1] == "joint"
    cfg = compose_plain("train", [override, *(["experiment=toy_joint"] if joint else [])])
    assert registry.load_class(cfg["domain"]["name"]).name == cfg["domain"]["name"]
    process = instantiate(cfg["process"])
    instantiate(cfg["loss"])(process)
    assert build.train_options(cfg).steps >= 1 and build.sampling_options(cfg).sampler in SAMPLERS
    if cfg["domain"]["name"] == "toy":
        parts = build.build(cfg)
        parts.optimizer(parts.model.parameters())


@pytest.mark.parametrize("app", ["sample", "evaluate"])
@pytest.mark.parametrize("guidance", [None] + options("guidance"))
def test_sample_and_evaluate_configs_compose(app, guidance):
    # Some guidance options need an input from the user (``input: ???``): composing must still work.
    cfg = compose_plain(app, ["checkpoint=x.ckpt"] + ([f"guidance={guidance}"] if guidance else []), missing_ok=True)
    assert cfg["checkpoint"] == "x.ckpt" and (not cfg["guidance"]) == (guidance is None)  # not given: empty


def test_a_missing_checkpoint_is_a_config_error():
    with pytest.raises(Exception, match="checkpoint"):
        compose_plain("sample", [])


def test_wheel_ships_configs_and_domains_and_a_plain_install_finds_them(tmp_path):
    src = tmp_path / "src"
    for name in ("sciffusion", "domains", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    if not (src / "README.md").exists():
        (src / "README.md").write_text("sciffusion\n")
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("sciffusion-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sciffusion/conf/train.yaml", "sciffusion/conf/process/vp_cosine.yaml",
            "sciffusion_domains/toy/conf/domain/toy.yaml", "sciffusion_domains/toy/domain.py"} <= names
    assert not any(n.startswith("domains/") for n in names)

    site = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    code = ("import sciffusion, sciffusion.cli, sciffusion.registry as r; from hydra import compose, initialize_config_module\n"
            "with initialize_config_module('sciffusion.conf', version_base='1.3'):\n"
            "    cfg = compose('train', overrides=['experiment=toy_flow'])\n"
            "print(sciffusion.__file__, r.config_dirs()['toy'], cfg.process.name)")
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    module, toy_conf, process = out.stdout.split()
    assert module.startswith(str(site)) and toy_conf.startswith(str(site)) and process == "linear"
