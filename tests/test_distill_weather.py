"""Few-step weather forecasts (issue #14): the forecast entry point passes grid options to the time grid
(the multistep consistency sampler evaluates at its grid's levels), and the HadISST distillation
experiments start from the shipped forecast model with its domain, network and process."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

pytest.importorskip("xarray")

import sciffusion.cli  # noqa: E402, F401  (registers the schemas and the domain search path)
from sciffusion.processes import make_process  # noqa: E402
from sciffusion.registry import make_domain  # noqa: E402
from sciffusion.training import load_checkpoint  # noqa: E402
from sciffusion_domains.weather.forecast import initial_positions, parse, rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EDM = make_process("edm")


def test_grid_options_reach_the_consistency_samplers_grid():
    domain = make_domain("weather")
    sigmas: list[float] = []

    def newest(x, t, space, cond):
        sigmas.append(float(EDM.sigma(t).flatten()[0]))
        return cond["fields"][:, :1].clone()

    positions = initial_positions(domain, "test", 1, ["2018-03"])
    rollout(domain, newest, EDM, positions, members=2, leads=1, sampler="consistency", steps=2, grid="karras",
            grid_options={"sigma_min": 0.4})
    assert sigmas == pytest.approx([80.0, 0.4])


def test_grid_options_parse_from_the_command_line():
    opts = parse(["checkpoint=x.ckpt", "sampler=consistency", "steps=2", "grid_options.sigma_min=0.4"])
    assert opts.grid_options == {"sigma_min": 0.4}
    assert parse(["checkpoint=x.ckpt"]).grid_options == {}


@pytest.mark.parametrize("experiment", ["hadisst_distill_consistency", "hadisst_distill_ect"])
def test_the_hadisst_distillation_experiments_fit_the_shipped_forecast_model(experiment):
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=[f"experiment={experiment}"]), resolve=True)
    teacher = load_checkpoint(ROOT / cfg["train"]["init_from"])["config"]
    assert cfg["process"] == teacher["process"] and cfg["network"] == teacher["network"]
    assert cfg["domain"]["name"] == teacher["domain"]["name"]
    assert cfg["parameterization"]["sigma_data"] == teacher["parameterization"]["sigma_data"]
    assert cfg["parameterization"]["_target_"].endswith("ConsistencyPrecond")
    if "teacher" in cfg["loss"]:
        assert (ROOT / cfg["loss"]["teacher"]).resolve() == (ROOT / cfg["train"]["init_from"]).resolve()
