"""Losses reach their known minimum with the exact denoiser; weightings, time laws, masks, dropout."""
import pytest
import torch

from sciffusion.losses import DROP, WEIGHTINGS, DiffusionLoss, drop_condition, flow_matching_loss
from sciffusion.parameterization import Coefficients, EDMPrecond, get_target
from sciffusion.processes import EDM, LinearInterpolant, VPCosine, VPLinear
from sciffusion.space import DenseSpace, GraphSpace
from sciffusion.testing import random_gaussian

F64 = torch.float64
DIM = 4
TARGET = random_gaussian(DIM, seed=3)


class ExactModel(torch.nn.Module):
    """The Bayes-optimal network for each target: the exact denoiser, converted."""

    def __init__(self, process, target):
        super().__init__()
        self.process, self.target, self.denoise = process, get_target(target), TARGET.denoiser(process)

    def predict(self, x, t, space, cond):
        c = Coefficients.at(self.process, t, x, space)
        x0 = self.denoise(x, t)
        return self.target.from_x0_eps(x0, (x - c.alpha * x0) / c.sigma, c)


def _minimum(process, weighting, t):
    """w(t) E||x0_hat - x0||^2 / D with the optimal denoiser, in closed form."""
    c = Coefficients(process.alpha(t), process.sigma(t), process.d_alpha(t), process.d_sigma(t))
    return WEIGHTINGS[weighting](c) * TARGET.posterior_variance_trace(c.alpha, c.sigma) / DIM


@pytest.mark.parametrize("process", [VPLinear(), LinearInterpolant(), EDM()], ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("target", ["eps", "x0", "v", "velocity", "score"])
@pytest.mark.parametrize("weighting", ["x0", "snr", "min_snr", "edm"])
def test_exact_denoiser_reaches_the_known_minimum(process, target, weighting):
    """Monte Carlo over 40k draws at one t: the standard error is about 1%; tolerance 4%."""
    n, t0 = 40_000, 0.3
    gen = torch.Generator().manual_seed(0)
    x0, _ = TARGET.sample(n, gen)
    loss = DiffusionLoss(process, weighting=weighting)(ExactModel(process, target), x0, t=torch.full((n,), t0, dtype=F64),
                                                       generator=gen, space=DenseSpace())
    expected = float(_minimum(process, weighting, torch.tensor(t0, dtype=F64)))
    assert float(loss.mean()) == pytest.approx(expected, rel=0.04)


def test_uniform_weighting_is_the_plain_target_mse():
    """'uniform' for an eps model is DDPM's simple loss: weight SNR on x0 errors."""
    p, n, t0 = VPCosine(), 40_000, 0.5
    gen = torch.Generator().manual_seed(1)
    x0, _ = TARGET.sample(n, gen)
    t = torch.full((n,), t0, dtype=F64)
    eps_loss = DiffusionLoss(p)(ExactModel(p, "eps"), x0, t=t, generator=torch.Generator().manual_seed(2),
                                space=DenseSpace())
    snr_loss = DiffusionLoss(p, weighting="snr")(ExactModel(p, "x0"), x0, t=t, generator=torch.Generator().manual_seed(2),
                                                 space=DenseSpace())
    torch.testing.assert_close(eps_loss, snr_loss, rtol=1e-8, atol=1e-12)


def test_a_wrong_model_scores_worse():
    p, n = VPLinear(), 20_000
    x0, _ = TARGET.sample(n, torch.Generator().manual_seed(0))
    exact = DiffusionLoss(p)(ExactModel(p, "eps"), x0, generator=torch.Generator().manual_seed(0),
                             space=DenseSpace()).mean()

    class Shrunk(ExactModel):
        def predict(self, x, t, space, cond):
            return 0.9 * super().predict(x, t, space, cond)

    worse = DiffusionLoss(p)(Shrunk(p, "eps"), x0, generator=torch.Generator().manual_seed(0),
                             space=DenseSpace()).mean()
    assert worse > exact * 1.01


def test_edm_preconditioned_loss_minimum():
    p = EDM()
    x0, _ = TARGET.sample(40_000, torch.Generator().manual_seed(0))
    oracle = TARGET.denoiser(p)
    sd = 0.5

    def f_net(x_in, c_noise, space, cond):  # the F that makes D exact
        s = torch.exp(4 * c_noise)[:, None]
        x = x_in * (s**2 + sd**2).sqrt()
        c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / (s**2 + sd**2).sqrt()
        return (oracle(x, s[:, 0] / 80) - c_skip * x) / c_out

    t = torch.full((40_000,), 0.01, dtype=F64)
    loss = DiffusionLoss(p, weighting="edm")(EDMPrecond(f_net, p, sd), x0, t=t, generator=torch.Generator().manual_seed(1),
                                             space=DenseSpace())
    assert float(loss.mean()) == pytest.approx(float(_minimum(p, "edm", t[0])), rel=0.04)


@pytest.mark.parametrize("law", ["uniform", "log_normal", "logit_normal"])
def test_time_distributions(law):
    p = VPLinear()
    t = DiffusionLoss(p, time_distribution=law).sample_time(200_000, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() <= p.t_max
    if law == "log_normal":
        log_sigma = torch.log(p.scaled_sigma(t))
        assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=0.02)
        assert float(log_sigma.std()) == pytest.approx(1.2, abs=0.02)
    if law == "logit_normal":
        assert float(torch.logit(t).std()) == pytest.approx(1.0, abs=0.01)


def test_flow_matching_loss_is_velocity_mse_on_the_linear_path():
    fm = flow_matching_loss()
    x0 = torch.randn(8, 3, dtype=F64)
    seen = {}

    class Net(torch.nn.Module):
        target = get_target("velocity")

        def predict(self, x, t, space, cond):
            seen.update(x=x, t=t)
            return torch.zeros_like(x)

    loss = fm(Net(), x0, space=DenseSpace(), generator=torch.Generator().manual_seed(0))
    t = seen["t"][:, None]
    eps = (seen["x"] - (1 - t) * x0) / t
    torch.testing.assert_close(loss, ((eps - x0) ** 2).mean(1))


def test_mask_keeps_missing_values_out_of_the_network_and_the_loss():
    mask = torch.tensor([True, True, False, True])
    x0 = torch.randn(16, 4, dtype=F64)
    x0[:, 2] = float("nan")
    seen = {}

    class Net(torch.nn.Module):
        target = get_target("eps")

        def predict(self, x, t, space, cond):
            seen["x"] = x
            return torch.full_like(x, 5.0)  # garbage where masked must not count

    loss = DiffusionLoss(VPLinear())(Net(), x0, space=DenseSpace(mask), generator=torch.Generator().manual_seed(0))
    assert not seen["x"].isnan().any() and (seen["x"][:, 2] == 0).all()
    assert loss.isfinite().all()
    unmasked = DiffusionLoss(VPLinear())(Net(), torch.nan_to_num(x0), generator=torch.Generator().manual_seed(0),
                                         space=DenseSpace())
    assert not torch.allclose(loss, unmasked)


def test_graph_loss_is_per_molecule():
    batch = torch.tensor([0, 0, 0, 1, 1])
    space = GraphSpace(batch, 2, zero_mean=(0, 1, 2))
    x0 = space.project(torch.randn(5, 4, dtype=F64))

    class Net(torch.nn.Module):
        target = get_target("eps")

        def predict(self, x, t, space, cond):
            return torch.zeros_like(x)

    loss = DiffusionLoss(VPLinear())(Net(), x0, space=space, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (2,)


def test_condition_dropout_rate_and_null_passthrough():
    cond = {"label": torch.arange(10_000)}
    dropped = drop_condition(cond, 10_000, 0.2, torch.Generator().manual_seed(0))
    assert float(dropped[DROP].float().mean()) == pytest.approx(0.2, abs=0.015)
    assert drop_condition({}, 4, 0.5) == {}
    forced = drop_condition({"label": torch.zeros(3), DROP: torch.tensor([True, False, False])}, 3, 1e-9)
    assert forced[DROP][0]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="loss weighting"):
        DiffusionLoss(VPLinear(), weighting="snr_min")
    with pytest.raises(ValueError, match="probability"):
        DiffusionLoss(VPLinear(), cond_dropout=1.5)

    class Bad(torch.nn.Module):
        target = get_target("eps")

        def predict(self, x, t, space, cond):
            return x[:, :1]

    with pytest.raises(ValueError, match="shaped like its input"):
        DiffusionLoss(VPLinear())(Bad(), torch.randn(4, 3), space=DenseSpace())


def test_times_are_drawn_on_the_generator_device():
    """Times come out on the generator's device (the CUDA case runs where a GPU is present)."""
    loss = DiffusionLoss(VPLinear(), time_distribution="log_normal")
    assert loss.sample_time(4, torch.Generator()).device.type == "cpu"
    if torch.cuda.is_available():
        assert loss.sample_time(4, torch.Generator("cuda")).device.type == "cuda"


class _Constant(torch.nn.Module):
    """Predicts a fixed eps, so the loss is a known function of the noise the loss draws."""
    target = get_target("eps")

    def predict(self, x, t, space, cond):
        return torch.full_like(x, 0.5)


def test_area_weights_weigh_the_per_sample_mean():
    """(out - eps)^2 averaged with weights w over unmasked entries: sum(w e) / sum(w), by hand."""
    x0 = torch.randn(3, 2, 4, 5, dtype=F64)
    mask = torch.ones(2, 4, 5, dtype=torch.bool)
    mask[0, 1, 2] = mask[1, 3, :] = False
    w = torch.cos(torch.deg2rad(torch.tensor([-60.0, -20.0, 20.0, 60.0], dtype=F64))).reshape(1, 1, 4, 1)
    w = w / w.expand(1, 2, 4, 5)[0][mask].mean()  # the documented convention: mean one over counted entries
    t = torch.full((3,), 0.4, dtype=F64)
    loss = DiffusionLoss(VPLinear())(_Constant(), x0, space=DenseSpace(mask, w), t=t,
                                     generator=torch.Generator().manual_seed(0))
    eps = DenseSpace(mask).randn_like(x0, torch.Generator().manual_seed(0))  # the same draw as the loss's
    err, full_w = (0.5 - eps) ** 2, w.expand(3, 2, 4, 5) * mask
    expected = (full_w * err).sum((1, 2, 3)) / full_w.sum((1, 2, 3))
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    unweighted = DiffusionLoss(VPLinear())(_Constant(), x0, space=DenseSpace(mask), t=t,
                                           generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(unweighted, (err * mask).sum((1, 2, 3)) / mask.sum(), rtol=1e-12, atol=0)
    assert not torch.allclose(loss, unweighted)


@pytest.mark.parametrize("value", [1.0, 0.37])
def test_uniform_weights_reproduce_the_unweighted_loss(value):
    x0 = torch.randn(4, 1, 3, 6, dtype=F64)  # float32 agrees to its own rounding (1e-7 relative), float64 to 1e-15
    mask = torch.rand(1, 3, 6, generator=torch.Generator().manual_seed(1)) > 0.3
    run = lambda space: DiffusionLoss(EDM())(_Constant(), x0, space=space, generator=torch.Generator().manual_seed(2))
    weighted, plain = run(DenseSpace(mask, torch.full((1, 1, 3, 1), value, dtype=F64))), run(DenseSpace(mask))
    if value == 1.0:
        assert torch.equal(weighted, plain)
    torch.testing.assert_close(weighted, plain, rtol=1e-12, atol=0)


def test_masked_points_stay_out_of_the_weighted_loss():
    """Garbage and huge weights at a masked point change nothing."""
    mask = torch.tensor([True, True, False, True])
    x0 = torch.randn(8, 4, dtype=F64)

    def run(garbage, weight):
        x = x0.clone()
        x[:, 2] = garbage
        w = torch.tensor([1.0, 2.0, weight, 0.5], dtype=F64)
        return DiffusionLoss(VPLinear())(_Constant(), x, space=DenseSpace(mask, w), generator=torch.Generator().manual_seed(3))

    torch.testing.assert_close(run(float("nan"), 1.0), run(1e6, 1e6), rtol=0, atol=0)
    assert run(0.0, 1.0).isfinite().all()
