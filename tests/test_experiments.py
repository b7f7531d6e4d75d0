"""Experiment files: every shipped one is a ``_global_`` package, and one without the header line
(a plugin author's first mistake) stops ``sciffusion-train`` with a message that names the line."""
from pathlib import Path

import pytest

from sciffusion import registry
from sciffusion.cli.experiments import check_experiments, declared_package, experiment_file, experiment_names
from sciffusion.testing import run_app


def test_every_shipped_experiment_is_global():
    files = [p for folder in registry.config_dirs().values() for p in sorted(folder.glob("experiment/*.yaml"))]
    assert len(files) > 5
    assert [p for p in files if declared_package(p) != "_global_"] == []
    assert experiment_file("toy_edm").name == "toy_edm.yaml"


def test_selected_experiments_are_read_from_the_overrides():
    assert experiment_names(["experiment=a", "train.steps=3"]) == ["a"]
    assert experiment_names(["experiment=a,b", "--multirun"]) == ["a", "b"]
    assert experiment_names(["+experiment=c"]) == ["c"] and experiment_names(["domain=toy"]) == []


def plugin_conf(tmp_path: Path, header: str) -> Path:
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text(f"{header}# a plugin's experiment\ndefaults:\n  - override /process: edm\n"
                                      "train:\n  steps: 2\n")
    return tmp_path / "conf"


@pytest.mark.parametrize("header, found", [("", "do not say so"), ("# @package experiment\n", "declares")])
def test_a_plugin_experiment_without_the_header_is_named(tmp_path, monkeypatch, header, found):
    conf = plugin_conf(tmp_path, header)
    dirs = registry.config_dirs()
    monkeypatch.setattr(registry, "config_dirs", lambda: {**dirs, "mine": conf})
    with pytest.raises(ValueError, match=f"mine.yaml: .*must begin with the line '# @package _global_'.*{found}"):
        check_experiments(["experiment=toy_edm,mine"])
    check_experiments(["experiment=toy_edm"])
    check_experiments(["experiment=no_such_file"])  # Hydra names unknown experiments itself


def test_the_train_app_says_what_is_missing(tmp_path):
    conf = plugin_conf(tmp_path, "")
    out = run_app("train", f"hydra.searchpath=[file://{conf}]", "experiment=mine", f"hydra.run.dir={tmp_path / 'run'}",
                  cwd=tmp_path, check=False, timeout=120)
    assert out.returncode == 1
    assert "must begin with the line '# @package _global_'" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()


def test_the_readme_experiment_example_composes(tmp_path):
    """The experiment file shown in README's "Writing a domain plugin", with the example plugin's domain config."""
    import re
    import shutil

    from hydra import compose, initialize_config_module

    import sciffusion.cli  # noqa: F401  (registers the schemas)

    root = Path(__file__).parents[1]
    block = re.search(r"```yaml\n# sciffusion_ring/conf/experiment/ring_edm.yaml\n(.*?)```", (root / "README.md").read_text(),
                      re.S).group(1)
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "ring_edm.yaml").write_text(block)
    shutil.copytree(root / "tests/plugin_pkg/sciffusion_ring/conf/domain", tmp_path / "domain")
    check_experiments([f"hydra.searchpath=[file://{tmp_path}]", "experiment=ring_edm"])
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra.searchpath=[file://{tmp_path}]", "experiment=ring_edm"])
    assert (cfg.domain.name, cfg.domain.radius, cfg.process.name, cfg.train.steps) == ("ring", 3.0, "edm", 2000)
    assert cfg.parameterization._target_ == "sciffusion.parameterization.EDMPrecond"
