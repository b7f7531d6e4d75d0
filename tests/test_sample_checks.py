"""Sampling options that would do nothing, or the wrong thing, stop with one line naming the option and
what would work: guidance=cfg on an unconditional model, a negative guidance scale, a ``domain.*``
override, a guidance made for another domain, a condition the domain does not have, an atom count
outside the data's range."""
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sciffusion.cli import checks, sample, train
from sciffusion.guidance import ClassifierFreeGuidance, ClassifierGuidance, DiffusionPosteriorSampling, \
    ReconstructionGuidance
from sciffusion.processes import VPLinear
from sciffusion.testing import run_app

TINY = ["train.steps=2", "train.batch_size=16", "train.progress=false", "train.tensorboard=false",
        "train.log_every=1", "train.save_every=2", "domain.train_size=64", "domain.test_size=32",
        "network.hidden=8", "network.depth=1"]
SAMPLE = ["num_samples=4", "batch_size=4", "steps=2", "figure=false"]


def trained_toy(run_dir: Path, *overrides: str) -> Path:
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, *TINY])
    threads = torch.get_num_threads()
    try:
        train.run(cfg, run_dir)
    finally:
        torch.set_num_threads(threads)
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def plain_toy(tmp_path_factory) -> Path:
    return trained_toy(tmp_path_factory.mktemp("plain") / "run")


@pytest.fixture(scope="module")
def cfg_toy(tmp_path_factory) -> Path:
    return trained_toy(tmp_path_factory.mktemp("cfg") / "run", "experiment=toy_cfg")


def draw(ckpt: Path, *overrides: str, out_dir: Path):
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("sample", overrides=[f"checkpoint={ckpt}", *SAMPLE, f"out_dir={out_dir}", *overrides])
    return sample.draw(OmegaConf.to_container(cfg, resolve=True))


def test_cfg_on_an_unconditional_checkpoint_is_refused(plain_toy, cfg_toy, tmp_path):
    with pytest.raises(ValueError, match=r"guidance=cfg does nothing here: .*'toy' domain is unconditional"):
        draw(plain_toy, "guidance=cfg", out_dir=tmp_path)
    _, samples = draw(cfg_toy, "guidance=cfg", "cond.label=1", out_dir=tmp_path)  # what works still works
    assert len(samples) == 4


def test_cfg_without_condition_dropout_is_refused():
    class Conditional:
        name, conditional = "toy", True

    config = {"loss": {"cond_dropout": 0.0}}
    with pytest.raises(ValueError, match=r"loss.cond_dropout > 0.*loss.cond_dropout=0.0"):
        checks.cfg_has_an_effect({"_target_": checks.CFG_TARGET}, config, Conditional())
    checks.cfg_has_an_effect({"_target_": checks.CFG_TARGET}, {"loss": {"cond_dropout": 0.1}}, Conditional())


def test_a_negative_guidance_scale_is_refused(cfg_toy, tmp_path):
    with pytest.raises(Exception, match=r"guidance.scale=-1 must be >= 0"):
        draw(cfg_toy, "guidance=cfg", "guidance.scale=-1", "cond.label=1", out_dir=tmp_path)
    process, denoiser, x = VPLinear(), (lambda x, t, space=None, cond=None: x), torch.zeros(2, 2)
    for make in (lambda: ClassifierFreeGuidance(denoiser, -0.5),
                 lambda: ClassifierGuidance(denoiser, lambda *a: x.sum(1), process, scale=-0.5),
                 lambda: ReconstructionGuidance(denoiser, lambda x0: x0, x, process, 0.1, scale=-0.5)):
        with pytest.raises(ValueError, match=r"guidance.scale=-0.5 must be >= 0"):
            make()
    with pytest.raises(ValueError, match=r"guidance.zeta=-1 must be >= 0"):
        DiffusionPosteriorSampling(denoiser, lambda x0: x0, x, process, zeta=-1)


def test_a_domain_override_at_sample_time_is_refused_naming_it(plain_toy, tmp_path):
    with pytest.raises(ValueError, match=r"domain.std=2.0 \(the checkpoint has 0.5\): sampling rebuilds the domain "
                                         r"from the checkpoint's config.*train.init_from"):
        draw(plain_toy, "domain.std=2.0", out_dir=tmp_path)


def test_a_guidance_for_another_domain_is_refused_naming_its_domains(plain_toy, tmp_path):
    with pytest.raises(ValueError, match=r"guidance=fragment .* is made for the domain\(s\) qm9, qm9_joint, not for "
                                         r"this checkpoint's domain 'toy'; its guidances are guidance=cfg"):
        draw(plain_toy, "guidance=fragment", out_dir=tmp_path)
    inpaint = {"_target_": "sciffusion_domains.images.inverse.inpaint", "input": "???"}
    with pytest.raises(ValueError, match=r"guidance=inpaint .* for the domain\(s\) images, not for this checkpoint's "
                                         r"domain 'qm9'; its guidances are guidance=cfg, guidance=fragment, "
                                         r"guidance=property"):
        checks.guidance_fits(inpaint, "qm9")
    checks.guidance_fits(inpaint, "images")
    checks.guidance_fits({"_target_": checks.CFG_TARGET}, "qm9")


def test_a_condition_the_domain_does_not_have_is_refused(plain_toy, cfg_toy, tmp_path):
    with pytest.raises(ValueError, match=r"cond.num_atoms: the 'toy' domain has no such condition; it takes cond.label"):
        draw(cfg_toy, "cond.num_atoms=5", out_dir=tmp_path)


def test_num_atoms_outside_the_training_range_is_refused():
    domains = pytest.importorskip("sciffusion_domains.molecules.domain")
    qm9 = domains.QM9Domain(limit=300, perceive_bonds=False)
    largest = int(torch.nonzero(qm9.atom_count_histogram()).max())
    with pytest.raises(ValueError, match=rf"cond.num_atoms=200 is outside .* cond.num_atoms in 1..{largest}"):
        qm9.condition(2, num_atoms=200)
    with pytest.raises(ValueError, match=r"cond.num_atoms=0 is outside"):
        qm9.condition(2, num_atoms=0)
    assert qm9.condition(2, num_atoms=largest)["num_atoms"].tolist() == [largest] * 2


def test_errors_reach_the_user_as_one_line(plain_toy, tmp_path):
    out = run_app("sample", f"checkpoint={plain_toy}", *SAMPLE, "guidance=inpaint", f"out_dir={tmp_path / 's'}",
                  cwd=tmp_path, check=False)
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "guidance=inpaint" in out.stderr and "images" in out.stderr and "guidance.input" not in out.stderr
    assert not (tmp_path / "s").exists()


def test_the_consistency_sampler_needs_a_consistency_model():
    """sampler=consistency on an ordinary denoiser would blur every sample: refused, in the CLI's and
    Python's shared check."""
    with pytest.raises(ValueError, match="sampler=consistency needs a consistency model"):
        checks.sampler_fits("consistency", {"parameterization": {"_target_": "sciffusion.parameterization.EDMPrecond"}})
    checks.sampler_fits("consistency", {"parameterization": {"_target_": "sciffusion.distill.ConsistencyPrecond"}})
    checks.sampler_fits("heun", {"parameterization": {"_target_": "sciffusion.parameterization.EDMPrecond"}})


def test_a_residual_model_is_not_sampled_as_if_it_modelled_the_fields():
    with pytest.raises(ValueError, match="sciffusion_domains.weather.forecast"):
        checks.not_a_residual_model({"residual": {"predictor": "lim", "modes": 15}})
    checks.not_a_residual_model({"loss": {}})
