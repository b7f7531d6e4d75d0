"""Prediction targets: exact round trips, agreement with each other, and EDM preconditioning."""
import pytest
import torch

from sciffusion.parameterization import (TARGETS, Coefficients, EDMPrecond, ModelDenoiser, convert, get_target,
                                         velocity_from_denoised)
from sciffusion.processes import EDM, PROCESSES, LinearInterpolant, VPLinear, make_process
from sciffusion.space import DenseSpace, GraphSpace

F64 = torch.float64


def _setup(process, batch=6, shape=(3, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(batch, *shape, generator=g, dtype=F64)
    eps = torch.randn(batch, *shape, generator=g, dtype=F64)
    t = torch.linspace(0.05, 0.95, batch, dtype=F64)
    c = Coefficients.at(process, t, x0, DenseSpace())
    return x0, eps, c.alpha * x0 + c.sigma * eps, t, c


@pytest.mark.parametrize("process_name", sorted(PROCESSES))
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_round_trip_float64(process_name, target):
    x0, eps, x, _, c = _setup(make_process(process_name))
    tgt = get_target(target)
    x0_back, eps_back = tgt.to_x0_eps(tgt.from_x0_eps(x0, eps, c), x, c)
    torch.testing.assert_close(x0_back, x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(eps_back, eps, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("source", sorted(TARGETS))
@pytest.mark.parametrize("dest", sorted(TARGETS))
def test_convert_between_targets(source, dest):
    x0, eps, x, _, c = _setup(VPLinear())
    out = convert(get_target(source).from_x0_eps(x0, eps, c), x, c, source, dest)
    torch.testing.assert_close(out, get_target(dest).from_x0_eps(x0, eps, c), rtol=1e-9, atol=1e-9)


def test_named_targets_match_their_definitions():
    x0, eps, x, _, c = _setup(LinearInterpolant())
    # flow matching on the linear interpolant: velocity = eps - x0 (Lipman et al. 2023)
    torch.testing.assert_close(get_target("velocity").from_x0_eps(x0, eps, c), eps - x0)
    torch.testing.assert_close(get_target("v").from_x0_eps(x0, eps, c), c.alpha * eps - c.sigma * x0)
    torch.testing.assert_close(get_target("score").from_x0_eps(x0, eps, c), -eps / c.sigma)


def test_velocity_is_the_time_derivative_of_the_path():
    p = VPLinear()
    x0, eps, _, t, _ = _setup(p)
    t = t.clone().requires_grad_(True)
    x_t = p.alpha(t)[:, None, None] * x0 + p.sigma(t)[:, None, None] * eps
    (dx_dt,) = torch.autograd.grad(x_t, t, grad_outputs=torch.ones_like(x_t), is_grads_batched=False)
    c = Coefficients.at(p, t.detach(), x0, DenseSpace())
    velocity = get_target("velocity").from_x0_eps(x0, eps, c)
    torch.testing.assert_close(velocity.sum((1, 2)), dx_dt)
    x = (c.alpha * x0 + c.sigma * eps)
    torch.testing.assert_close(velocity_from_denoised(x, x0, c.alpha, c.sigma, c.d_alpha, c.d_sigma), velocity)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_x0_error_scale_is_the_target_jacobian(target):
    """||T_hat - T|| = scale ||x0_hat - x0|| when x0_hat moves at fixed x_t."""
    x0, eps, x, _, c = _setup(VPLinear())
    tgt = get_target(target)
    delta = 1e-3 * torch.randn_like(x0)
    x0_hat = x0 + delta
    eps_hat = (x - c.alpha * x0_hat) / c.sigma
    err = tgt.from_x0_eps(x0_hat, eps_hat, c) - tgt.from_x0_eps(x0, eps, c)
    torch.testing.assert_close(err.abs(), (tgt.x0_error_scale(c) * delta).abs(), rtol=1e-9, atol=1e-12)


def test_model_denoiser_converts_its_target_on_graph_batches():
    p = VPLinear()
    batch = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    space = GraphSpace(batch, 3)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(9, 5, generator=g, dtype=F64)
    eps = torch.randn(9, 5, generator=g, dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=F64)
    c = Coefficients.at(p, t, x0, space)
    x = c.alpha * x0 + c.sigma * eps
    oracle = lambda x_, t_, space_, cond_: eps  # a perfect eps network
    torch.testing.assert_close(ModelDenoiser(oracle, p, "eps")(x, t, space), x0)


def test_edm_precond_matches_karras_table_1():
    net_inputs = {}

    def net(x, c_noise, space, cond):
        net_inputs.update(x=x, c_noise=c_noise)
        return torch.ones_like(x)

    p, sd = EDM(), 0.5
    d = EDMPrecond(net, p, sigma_data=sd)
    t = torch.tensor([0.01, 0.1, 0.5], dtype=F64)
    x = torch.randn(3, 2, dtype=F64)
    out = d(x, t, DenseSpace())
    s = (80 * t)[:, None]
    c_skip, c_out, c_in = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt(), 1 / (s**2 + sd**2).sqrt()
    torch.testing.assert_close(out, c_skip * x + c_out)
    torch.testing.assert_close(net_inputs["x"], c_in * x)
    torch.testing.assert_close(net_inputs["c_noise"], torch.log(80 * t) / 4)


def test_edm_precond_on_a_vp_process_uses_the_scaled_view():
    """For VP, x_t / alpha has noise sigma / alpha; an oracle F must give back x0 exactly."""
    p, sd = VPLinear(), 0.5
    x0, eps, x, t, c = _setup(p)
    s = (c.sigma / c.alpha)

    def oracle(x_in, c_noise, space, cond):
        c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
        return (x0 - c_skip * (x / c.alpha)) / c_out

    torch.testing.assert_close(EDMPrecond(oracle, p, sd)(x, t, DenseSpace()), x0)


def test_unknown_target_is_named():
    with pytest.raises(ValueError, match="choose one of"):
        get_target("epsilon")


def test_discrete_network_receives_its_integer_timestep():
    from sciffusion.processes import DiscreteVP

    p = DiscreteVP.linear()
    seen = {}

    def net(x, k, space, cond):
        seen["k"] = k
        return torch.zeros_like(x)

    t = torch.tensor([1, 500, 1000], dtype=F64) / 1000
    ModelDenoiser(net, p, "eps", time_input=p.timestep)(torch.zeros(3, 2, dtype=F64), t, DenseSpace())
    torch.testing.assert_close(seen["k"], torch.tensor([0.0, 499.0, 999.0], dtype=F64))
