"""Noise processes: exact derivatives, inverses, endpoints, and DDPM's discrete schedules."""
import math

import pytest
import torch

from sciffusion.processes import PROCESSES, DiscreteVP, VariancePreserving, make_process

F64 = torch.float64
NAMES = sorted(PROCESSES)


def _interior(n=41):
    return torch.linspace(0.01, 0.99, n, dtype=F64)


def _grad(fn, t):
    t = t.clone().requires_grad_(True)
    # `+ 0 * t` keeps constant coefficients (alpha = 1) in the graph
    (g,) = torch.autograd.grad((fn(t) + 0 * t).sum(), t)
    return g


@pytest.mark.parametrize("name", NAMES)
def test_derivatives_match_autograd(name):
    p = make_process(name)
    t = _interior()
    for value, derivative in [(p.alpha, p.d_alpha), (p.sigma, p.d_sigma), (p.log_snr, p.d_log_snr)]:
        expected = _grad(value, t)
        torch.testing.assert_close(derivative(t), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_log_snr_inverse_round_trips(name):
    p = make_process(name)
    t = _interior()
    torch.testing.assert_close(p.t_from_log_snr(p.log_snr(t)), t, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(p.t_from_scaled_sigma(p.scaled_sigma(t)), t, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", NAMES)
def test_log_snr_decreases_and_matches_definition(name):
    p = make_process(name)
    t = _interior()
    lam = p.log_snr(t)
    assert (lam[1:] < lam[:-1]).all(), "log-SNR must fall from data to noise"
    torch.testing.assert_close(lam, 2 * torch.log(p.alpha(t) / p.sigma(t)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", [n for n in NAMES if isinstance(make_process(n), VariancePreserving)])
def test_variance_preserving(name):
    p = make_process(name)
    t = _interior()
    torch.testing.assert_close(p.alpha(t) ** 2 + p.sigma(t) ** 2, torch.ones_like(t), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["vp_linear", "vp_cosine", "vp_sigmoid", "linear", "edm"] + [n for n in NAMES if n.startswith("ddpm")])
def test_data_end_is_clean(name):
    p = make_process(name)
    zero = torch.zeros((), dtype=F64)
    assert float(p.alpha(zero)) == 1.0 and float(p.sigma(zero)) == 0.0


def test_float32_stays_accurate_near_data_end():
    """sigma^2 is computed without cancellation, so tiny noise levels survive float32."""
    for name in ["vp_linear", "vp_cosine", "vp_sigmoid"]:
        p = make_process(name)
        t = torch.tensor([1e-6, 1e-4], dtype=torch.float32)
        rel = (p.sigma(t).double() - p.sigma(t.double())).abs() / p.sigma(t.double())
        assert rel.max() < 1e-5, (name, rel)


def test_vp_linear_matches_song_et_al():
    """alpha(t) = exp(-1/4 t^2 (b1 - b0) - 1/2 t b0) (Song et al. 2021, eq. 33)."""
    p = make_process("vp_linear")
    t = _interior()
    expected = torch.exp(-0.25 * t**2 * (20 - 0.1) - 0.5 * t * 0.1)
    torch.testing.assert_close(p.alpha(t), expected, rtol=1e-12, atol=0)


def test_cosine_matches_nichol_dhariwal():
    p = make_process("vp_cosine")
    t = _interior()
    f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(p.alpha(t) ** 2, f(t) / f(torch.zeros((), dtype=F64)), rtol=1e-12, atol=1e-14)


def test_shifted_cosine_shift_moves_log_snr():
    base, shifted = make_process("vp_shifted_cosine"), make_process("vp_shifted_cosine", shift=0.25)
    t = _interior()
    torch.testing.assert_close(shifted.log_snr(t) - base.log_snr(t), torch.full_like(t, 2 * math.log(0.25)))
    torch.testing.assert_close(base.log_snr(torch.tensor([0.0, 1.0], dtype=F64)), torch.tensor([15.0, -15.0], dtype=F64))


def test_discrete_vp_is_exact_on_its_grid():
    """alpha_bar_n = prod_{i <= n}(1 - beta_i) at t = n / N, as in DDPM and diffusers."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    p = DiscreteVP(betas)
    n = torch.arange(0, 1001)
    expected = torch.cat([torch.ones(1, dtype=F64), torch.cumprod(1 - betas, 0)])
    torch.testing.assert_close(p.alpha_sq(n.to(F64) / 1000), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(p.timestep(n[1:].to(F64) / 1000), (n[1:] - 1).to(F64))


def test_discrete_vp_matches_diffusers_tables():
    diffusers = pytest.importorskip("diffusers")
    ldm = dict(beta_start=0.00085, beta_end=0.012)
    for kind, ours, kw in [("linear", DiscreteVP.linear(), {}), ("scaled_linear", DiscreteVP.scaled_linear(), ldm),
                           ("squaredcos_cap_v2", DiscreteVP.cosine(), {})]:
        sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=kind, **kw)
        t = torch.arange(1, 1001, dtype=F64) / 1000
        torch.testing.assert_close(ours.alpha_sq(t), sched.alphas_cumprod.to(F64), rtol=1e-5, atol=1e-6)  # theirs is float32


def test_discrete_vp_is_continuous_between_steps():
    p = DiscreteVP.linear(num_steps=10)
    t = torch.linspace(0.0, 1.0, 1001, dtype=F64)
    la = torch.log(p.alpha_sq(t))
    assert (la[1:] <= la[:-1]).all()
    assert (la[1:] - la[:-1]).abs().max() < 0.01


@pytest.mark.parametrize("bad", [dict(name="vp_linear", beta_min=5.0, beta_max=1.0), dict(name="ve", sigma_min=0.0)])
def test_bad_parameters_are_named(bad):
    name = bad.pop("name")
    with pytest.raises(ValueError, match="need"):
        make_process(name, **bad)


def test_unknown_process_lists_choices():
    with pytest.raises(ValueError, match="vp_linear"):
        make_process("vp-lin")
