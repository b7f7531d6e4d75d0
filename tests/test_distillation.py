"""Distillation (sciffusion.distill): the exact maths of each loss, students that beat their teacher at
the same step count on a target whose exact denoiser is known, and each task through the train app
(resuming exactly) and the sample app."""
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

import sciffusion.cli  # noqa: F401  (registers the schemas and the domain search path)
from sciffusion.cli.train import run as train_run
from sciffusion.distill import (ConsistencyDistillationLoss, ConsistencyPrecond, ConsistencyTrainingLoss,
                                ProgressiveDistillationLoss, ReflowLoss, ode_step, sample_consistency)
from sciffusion.parameterization import EDMPrecond, ModelDenoiser
from sciffusion.processes import EDM, LinearInterpolant, VPCosine
from sciffusion.samplers import SAMPLERS, ddim, heun, prior_sample, sample
from sciffusion.space import DenseSpace
from sciffusion.testing import gaussian_mixture_2d, moment_errors, run_app
from sciffusion.timesteps import karras, make_grid, uniform_t
from sciffusion.training import load_checkpoint

F64 = torch.float64
TARGET = gaussian_mixture_2d()


class MLP(nn.Module):
    """A small network of (x [B, 2], t [B]) for the analytic tests."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(18, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x, t, space=None, cond=None):
        angles = t[:, None] * torch.arange(1, 9, dtype=x.dtype)
        return self.f(torch.cat([x, angles.sin(), angles.cos()], dim=1))


def error(samples) -> float:
    """Mean plus covariance error against the exact mixture (``moment_errors``)."""
    return sum(moment_errors(samples, TARGET))


def draw(process, denoiser, steps: int, sampler: str, grid: str = "uniform_t", n: int = 4000, **grid_options):
    g = torch.Generator().manual_seed(1)
    x = prior_sample(process, torch.zeros(n, 2, dtype=F64), generator=g, space=DenseSpace())
    return sample(sampler, denoiser, x, make_grid(grid, process, steps, **grid_options), process=process, generator=g,
                  space=DenseSpace())


def fit(make_student, loss, iterations: int, lr: float = 3e-3) -> nn.Module:
    """``make_student()`` trained for ``iterations`` steps of 256 exact draws; seeded, so the same each run."""
    torch.manual_seed(0)
    student = make_student().double()
    optimiser = torch.optim.Adam(student.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for i in range(iterations):
        if hasattr(loss, "set_progress"):
            loss.set_progress(i, iterations)
        x0, _ = TARGET.sample(256, g)
        value = loss(student, x0, generator=g, space=DenseSpace()).mean()
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    return student.eval()


# -- exact maths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("solver, sampler", [("ddim", ddim), ("heun", heun)])
def test_the_teacher_step_is_the_samplers_step(solver, sampler):
    process, space = EDM(), DenseSpace()
    teacher = TARGET.denoiser(process)
    x = 20 * torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    ts = torch.tensor([0.3, 0.1, 0.0], dtype=F64)
    steps = []
    sampler(teacher, x, ts, process=process, space=space, callback=lambda info: steps.append(info["x"]))
    ours = ode_step(teacher, x, ts[:1].expand(64), ts[1:2].expand(64), process=process, space=space, cond={}, solver=solver)
    torch.testing.assert_close(ours, steps[0], rtol=1e-12, atol=1e-12)


def test_one_ddim_step_to_the_progressive_target_lands_where_two_teacher_steps_do():
    process, space = VPCosine(), DenseSpace()
    teacher = TARGET.denoiser(process)
    loss = ProgressiveDistillationLoss(process, teacher=teacher, teacher_steps=8)
    assert torch.allclose(loss.grid, uniform_t(process, 8)) and len(loss.starts) == loss.student_steps == 4
    x = torch.randn(32, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    i = torch.arange(32) % 4
    x0_tilde = loss.target_x0(x, i, space=space, cond={})
    t, t_mid, t_next = (loss.grid[2 * i + k] for k in range(3))
    step = lambda z, a, b, d: ode_step(d, z, a, b, process=process, space=space, cond={})  # noqa: E731
    two_teacher_steps = step(step(x, t, t_mid, teacher), t_mid, t_next, teacher)
    one_student_step = step(x, t, t_next, lambda *_: x0_tilde)
    torch.testing.assert_close(one_student_step, two_teacher_steps, rtol=1e-10, atol=1e-10)


def test_progressive_distillation_refuses_grids_that_do_not_nest_and_odd_step_counts():
    with pytest.raises(ValueError, match="every other time.*uniform_t"):
        ProgressiveDistillationLoss(VPCosine(), teacher_steps=8, grid="karras")
    with pytest.raises(ValueError, match="even number"):
        ProgressiveDistillationLoss(VPCosine(), teacher_steps=5)
    with pytest.raises(ValueError, match="loss.teacher is not set"):
        ProgressiveDistillationLoss(VPCosine(), teacher_steps=4)(ModelDenoiser(MLP(), VPCosine(), "v"), torch.zeros(2, 2),
                                                                 space=DenseSpace())


def test_the_consistency_function_meets_its_boundary_condition_and_is_edm_at_sigma_min_zero():
    process, net = EDM(), MLP().double()
    x = torch.randn(16, 2, dtype=F64)
    f = ConsistencyPrecond(net, process, sigma_data=0.5, sigma_min=0.002)
    t_min = process.t_from_scaled_sigma(torch.full((16,), 0.002, dtype=F64))
    torch.testing.assert_close(f(x, t_min, DenseSpace()), x, rtol=0, atol=1e-12)  # f(x, sigma_min) = x
    t = torch.rand(16, dtype=F64)
    torch.testing.assert_close(ConsistencyPrecond(net, process, sigma_min=0.0)(x, t, space=DenseSpace()),
                               EDMPrecond(net, process)(x, t, space=DenseSpace()))
    assert ConsistencyPrecond(net, process).state_dict().keys() == EDMPrecond(net, process).state_dict().keys()


def test_the_consistency_sampler_is_registered_and_one_step_is_one_evaluation():
    assert SAMPLERS["consistency"] is sample_consistency
    process = EDM()
    x = 80 * torch.randn(8, 2, dtype=F64)
    calls = []
    denoiser = lambda x, t, space, cond: calls.append(t) or 0.5 * x  # noqa: E731
    torch.testing.assert_close(sample_consistency(denoiser, x, karras(process, 1), process=process,
                                                  space=DenseSpace()), 0.5 * x)
    sample_consistency(denoiser, x, karras(process, 3, sigma_min=0.8), process=process, space=DenseSpace())
    assert len(calls) == 4


def test_the_consistency_training_gap_starts_as_diffusion_and_shrinks_by_stage():
    loss = ConsistencyTrainingLoss(EDM(), q=2.0, stages=8)
    s = torch.tensor([0.01, 1.0, 10.0, 80.0], dtype=F64)
    loss.set_progress(0, 800)
    assert (loss.gap_ratio(s) == 0).all()  # stage 0: r = 0, the denoising loss
    ratios = []
    for step in (100, 400, 799):
        loss.set_progress(step, 800)
        ratios.append(loss.gap_ratio(s))
    assert loss.stage == 7 and all((a <= b).all() for a, b in zip(ratios, ratios[1:]))
    assert (ratios[-1] > 0.9).all() and (ratios[-1] < 1).all()


# -- students beat their teacher at the same step count, on the exact three-mode mixture --------------
def test_a_progressive_student_at_2_steps_beats_its_teacher_at_2_and_matches_it_at_4():
    process = VPCosine()
    teacher = TARGET.denoiser(process)
    loss = ProgressiveDistillationLoss(process, teacher=teacher, teacher_steps=4)
    student = fit(lambda: ModelDenoiser(MLP(), process, "v"), loss, 600)
    with torch.no_grad():
        ours = error(draw(process, student, 2, "ddim"))
    teacher_2, teacher_4 = error(draw(process, teacher, 2, "ddim")), error(draw(process, teacher, 4, "ddim"))
    assert ours < 0.7 * teacher_2 and ours < 1.5 * teacher_4, (ours, teacher_2, teacher_4)


def test_a_consistency_distilled_student_at_1_and_2_steps_beats_its_teacher():
    process = EDM()
    teacher = TARGET.denoiser(process)
    loss = ConsistencyDistillationLoss(process, teacher=teacher, steps=18)
    student = fit(lambda: ConsistencyPrecond(MLP(), process, sigma_data=2.0), loss, 1000)
    with torch.no_grad():
        ours = [error(draw(process, student, n, "consistency", grid="karras", sigma_min=2.0)) for n in (1, 2)]
    # the teacher's best at 1 and 2 evaluations: DDIM (Heun needs 3 for 2 steps)
    theirs = [error(draw(process, teacher, n, "ddim", grid="karras")) for n in (1, 2)]
    assert ours[0] < 0.3 * theirs[0] and ours[1] < 0.5 * theirs[1], (ours, theirs)


def test_consistency_training_without_a_teacher_samples_well_in_one_step():
    process = EDM()
    student = fit(lambda: ConsistencyPrecond(MLP(), process, sigma_data=2.0), ConsistencyTrainingLoss(process), 1000)
    with torch.no_grad():
        ours = error(draw(process, student, 1, "consistency", grid="karras"))
    teacher = error(draw(process, TARGET.denoiser(process), 2, "ddim", grid="karras"))
    assert ours < 0.5 * teacher, (ours, teacher)


def test_a_reflowed_student_at_1_and_2_euler_steps_beats_its_teacher():
    process = LinearInterpolant()
    teacher = TARGET.denoiser(process)
    loss = ReflowLoss(process, teacher=teacher, num_pairs=4096, teacher_steps=32)
    student = fit(lambda: ModelDenoiser(MLP(), process, "velocity"), loss, 600)
    with torch.no_grad():
        ours = [error(draw(process, student, n, "euler")) for n in (1, 2)]
    theirs = [error(draw(process, teacher, n, "euler")) for n in (1, 2)]
    assert ours[0] < 0.3 * theirs[0] and ours[1] < 0.5 * theirs[1], (ours, theirs)


# -- through the apps ---------------------------------------------------------------------------------
QUICK = ["train.batch_size=32", "train.progress=false", "train.tensorboard=false", "train.log_every=1",
         "domain.train_size=256", "domain.test_size=128", "network.hidden=16", "network.depth=2"]


def train(run_dir: Path, *overrides: str) -> Path:
    """sciffusion-train's run() with the composed config, in this process; returns last.ckpt."""
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*QUICK, *overrides])
    train_run(cfg, run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("teachers")
    return {name: train(root / name, *([f"experiment={experiment}"] if experiment else []), "train.steps=30")
            for name, experiment in (("vp", None), ("edm", "toy_edm"), ("flow", "toy_flow"))}


TASKS = {
    "progressive": ("vp", ["experiment=toy_distill_progressive", "loss.teacher_steps=4", "sampling.steps=2"]),
    "consistency": ("edm", ["experiment=toy_distill_consistency"]),
    "ect": ("edm", ["experiment=toy_distill_ect"]),
    "reflow": ("flow", ["experiment=toy_distill_reflow", "loss.num_pairs=64", "loss.teacher_steps=4"]),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_task_trains_through_the_train_app_and_resumes_exactly(task, teachers, tmp_path):
    teacher, overrides = TASKS[task]
    uses_teacher = task != "ect"
    args = [*overrides, f"train.init_from={teachers[teacher]}", "train.steps=4", "train.save_every=2",
            "train.keep_every=2", *([f"loss.teacher={teachers[teacher]}"] if uses_teacher else [])]
    straight = train(tmp_path / "straight", *args)
    halfway = tmp_path / "straight" / "checkpoints" / "step_00000002.ckpt"
    resumed = train(tmp_path / "resumed", *args, f"train.resume={halfway}")
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 4
    for part in ("model", "ema"):
        sa, sb = (a[part] if part == "model" else a[part]["module"]), (b[part] if part == "model" else b[part]["module"])
        assert all(torch.equal(sa[k], sb[k]) for k in sa), f"{task}: {part} differs after resuming"
    start = load_checkpoint(teachers[teacher])["ema"]["module"]
    assert any(not torch.equal(a["model"][k], start[k]) for k in start)  # it trained


def test_a_consistency_student_samples_through_the_sample_app_in_1_to_4_steps(teachers, tmp_path):
    student = train(tmp_path / "cd", "experiment=toy_distill_consistency", f"loss.teacher={teachers['edm']}",
                    f"train.init_from={teachers['edm']}", "train.steps=2")
    for steps in (1, 4):  # a fresh process: the checkpoint's config imports the sampler it needs
        out = run_app("sample", f"checkpoint={student}", "num_samples=16", f"steps={steps}",
                      f"out_dir={tmp_path / f's{steps}'}", "figure=false", "progress=false", cwd=tmp_path)
        assert f"sampler=consistency steps={steps} grid=karras" in out.stdout
        assert (tmp_path / f"s{steps}" / "samples.npy").is_file()


def test_the_digits_distillation_experiment_runs_2_steps_with_a_tiny_teacher(tmp_path):
    tiny = ["domain=digits8", "network.unet.channels=8", "network.unet.head_channels=8", "train.batch_size=8",
            "train.progress=false", "train.tensorboard=false", "train.log_every=1"]
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=digits8_tiny", *tiny[1:], "train.steps=2"])
        train_run(cfg, tmp_path / "teacher")
        teacher = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
        cfg = compose("train", overrides=["experiment=digits_distill_consistency", *tiny, f"loss.teacher={teacher}",
                                          f"train.init_from={teacher}", "train.steps=2"])
    assert cfg.loss.teacher_guidance == 2.0 and cfg.parameterization._target_.endswith("ConsistencyPrecond")
    record = train_run(cfg, tmp_path / "student")
    assert math.isfinite(record["loss"]) and load_checkpoint(tmp_path / "student" / "checkpoints" / "last.ckpt")["step"] == 2


@pytest.mark.parametrize("experiment", ["digits_distill_consistency", "spoken_digits_distill_progressive",
                                        "hadisst_distill_ect"])
def test_the_shipped_models_distillation_experiments_fit_their_teachers(experiment):
    """Each experiment starts from its shipped checkpoint with that checkpoint's domain, network and process
    (so train.init_from fits: the digits run above loads a teacher the same way)."""
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=[f"experiment={experiment}"]), resolve=True)
    root = Path(__file__).resolve().parents[1]
    teacher = load_checkpoint(root / cfg["train"]["init_from"])["config"]
    assert cfg["process"] == teacher["process"] and cfg["network"] == teacher["network"]
    assert {k: cfg["domain"][k] for k in ("name", "conditional") if k in teacher["domain"]} == \
        {k: teacher["domain"][k] for k in ("name", "conditional") if k in teacher["domain"]}
    if teacher["parameterization"]["_target_"].endswith("EDMPrecond"):
        assert cfg["parameterization"]["sigma_data"] == teacher["parameterization"]["sigma_data"]
    else:
        assert cfg["parameterization"] == teacher["parameterization"]
