"""Categorical processes against exact answers: marginals, Markov property, exact posteriors, sampler
convergence with its order (exact laws, no Monte Carlo), the masked ELBO, and Meta's flow_matching."""
import itertools
import math

import numpy as np
import pytest
import torch

from sciffusion.categorical import CategoricalProcess, sample_classes, step_probs
from sciffusion.joint import JointLoss, JointModel, JointProcess
from sciffusion.space import DenseSpace
from sciffusion.state import PartsSpace
from sciffusion.testing_joint import CategoricalTarget

PRIORS = [("masked", None), ("uniform", None), ("marginal", [0.4, 0.3, 0.2, 0.1])]


def process_of(prior, marginals, schedule="cosine"):
    return CategoricalProcess(4, prior, schedule=schedule, marginals=marginals)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "polynomial"])
def test_schedule_ends_and_derivative(schedule):
    p = CategoricalProcess(3, "uniform", schedule=schedule, exponent=2.0)
    t = torch.linspace(0.01, 0.99, 17, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(p.kappa(t).sum(), t)
    torch.testing.assert_close(p.d_kappa(t.detach()), grad, rtol=1e-10, atol=1e-12)
    assert float(p.kappa(torch.tensor(0.0))) == 1.0 and abs(float(p.kappa(torch.tensor(1.0)))) < 1e-12


@pytest.mark.parametrize("prior,marginals", PRIORS)
def test_forward_kernel_is_markov(prior, marginals):
    """q(x_t | x0) = q(x_s | x0) K(s -> t), K = r I + (1 - r) 1 pi^T with r = kappa_t / kappa_s."""
    p = process_of(prior, marginals)
    x0 = torch.arange(4)
    s, t = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    r = p.kappa(t) / p.kappa(s)
    kernel = r * torch.eye(p.num_states, dtype=torch.float64) + (1 - r) * p.pi[None]
    torch.testing.assert_close(p.marginal_probs(x0, p.kappa(s)) @ kernel, p.marginal_probs(x0, p.kappa(t)))
    torch.testing.assert_close(p.marginal_probs(x0, p.kappa(t)).sum(-1), torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("prior,marginals", PRIORS)
def test_posterior_matches_bayes_rule(prior, marginals):
    """posterior_probs with a one-hot p0 is q(x_s | x_t, x0) computed by Bayes' rule from the kernels."""
    p = process_of(prior, marginals)
    s, t = torch.tensor(0.35, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64)
    ks, kt = p.kappa(s), p.kappa(t)
    r = kt / ks
    kernel = r * torch.eye(p.num_states, dtype=torch.float64) + (1 - r) * p.pi[None]  # [x_s, x_t]
    for x0, x_t in itertools.product(range(4), range(p.num_states)):
        q_s = p.marginal_probs(torch.tensor(x0), ks)
        joint = q_s * kernel[:, x_t]
        if joint.sum() == 0:
            continue
        want = joint / joint.sum()
        got = p.posterior_probs(torch.tensor([x_t]), torch.nn.functional.one_hot(torch.tensor([x0]), 4).double(),
                                kt.reshape(1), ks.reshape(1))[0]
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("prior,marginals", PRIORS)
def test_posterior_sampler_is_exact_for_one_variable(prior, marginals):
    """With one variable the exact denoiser makes every ancestral step exact: two steps suffice."""
    target = CategoricalTarget.random(1, 4, seed=3)
    law = target.sampler_law(process_of(prior, marginals), [1.0, 0.5, 0.0])
    assert target.total_variation(law) < 1e-12


@pytest.mark.parametrize("prior,marginals", PRIORS)
@pytest.mark.parametrize("method,eta", [("posterior", 0.0), ("euler", 0.0), ("euler", 1.0)])
def test_samplers_converge_first_order(prior, marginals, method, eta):
    """Three strongly correlated variables with four classes: the exact law of each sampler's output
    approaches the target with the step count, at order about 1 (measured: 0.8-1.1)."""
    target = CategoricalTarget.random(3, 4, seed=0)
    p = process_of(prior, marginals)
    tvs = [target.total_variation(target.sampler_law(p, torch.linspace(1, 0, n + 1, dtype=torch.float64),
                                                     method=method, eta=eta)) for n in (16, 32, 64)]
    orders = [math.log2(tvs[i] / tvs[i + 1]) for i in range(2)]
    assert tvs[0] > tvs[1] > tvs[2] and tvs[2] < 0.04, tvs
    assert all(0.7 < o < 1.3 for o in orders), orders


def test_masked_euler_equals_posterior():
    p = CategoricalProcess(4, "masked", schedule="linear")
    g = torch.Generator().manual_seed(0)
    x_t = torch.randint(0, 5, (50,), generator=g)
    p0 = torch.softmax(torch.randn(50, 4, generator=g, dtype=torch.float64), -1)
    kt, ks = torch.full((50,), 0.6, dtype=torch.float64), torch.full((50,), 0.8, dtype=torch.float64)
    torch.testing.assert_close(p.euler_probs(x_t, p0, kt, ks), p.posterior_probs(x_t, p0, kt, ks))
    # an unmasked entry stays put whatever the network says (carry-over unmasking)
    unmasked = x_t < 4
    assert (p.posterior_probs(x_t, p0, kt, ks)[unmasked].argmax(-1) == x_t[unmasked]).all()


def _exact_model(target, process):
    def net(x, t, space, cond):
        return {"c": torch.log(target.denoiser(process, x["c"], t).clamp_min(1e-300))}
    return JointModel(net, JointProcess({"c": process}))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_masked_elbo_equals_log_likelihood(schedule):
    """With the exact denoiser the masked process's ELBO is exact: -ELBO(x) = -log p(x) (every
    unmasking order factorises p exactly). Quadrature over t of the weighted, mask-enumerated loss."""
    target = CategoricalTarget.random(3, 4, seed=1)
    p = CategoricalProcess(4, "masked", schedule=schedule)
    nodes, weights = (torch.as_tensor(v, dtype=torch.float64) for v in np.polynomial.legendre.leggauss(200))
    t = 0.5 * (nodes + 1)
    for x in target.states[:: 7]:
        total = torch.zeros((), dtype=torch.float64)
        for masked in itertools.product([False, True], repeat=3):
            m = torch.tensor(masked)
            if not m.any():
                continue
            x_t = torch.where(m, torch.tensor(4), x).expand(t.numel(), 3)
            p0 = target.denoiser(p, x_t, t)
            nll = -torch.log(p0[:, m][:, torch.arange(int(m.sum())), x[m]])  # [T, |M|]
            kappa = p.kappa(t)
            prob_mask = (1 - kappa) ** int(m.sum()) * kappa ** int((~m).sum())
            total = total + 0.5 * (weights * p.elbo_weight(t) * prob_mask * nll.sum(-1)).sum()
        want = -math.log(float(target.probs[tuple(x.tolist())]))
        assert abs(float(total) - want) < 1e-6, (x.tolist(), float(total), want)


def test_joint_loss_elbo_estimates_the_entropy():
    """Monte Carlo: the 'elbo'-weighted JointLoss with the exact denoiser, times D (it averages over
    entries), has expectation H(p) = E[-log p(x)] over data."""
    target = CategoricalTarget.random(3, 4, seed=1)
    p = CategoricalProcess(4, "masked", schedule="linear")
    model = _exact_model(target, p)
    loss = JointLoss(model.process, categorical_weighting="elbo")
    g = torch.Generator().manual_seed(0)
    x = target.sample(40_000, g)
    values = 3 * loss(model, {"c": x}, space=PartsSpace({"c": DenseSpace()}), generator=g).double()
    err = 3 * float(values.std()) / math.sqrt(values.numel())
    assert abs(float(values.mean()) - target.entropy()) < err, (float(values.mean()), target.entropy(), err)


def test_elbo_weighting_refuses_other_priors():
    with pytest.raises(ValueError, match="masked"):
        JointLoss(JointProcess({"c": CategoricalProcess(4, "uniform")}), categorical_weighting="elbo")


def test_sample_classes_follows_probabilities():
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.1, 0.6, 0.3]).expand(100_000, 3)
    freq = torch.bincount(sample_classes(probs, g), minlength=3) / 100_000
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.6, 0.3]), atol=0.005, rtol=0)
    assert sample_classes(torch.zeros(0, 3)).shape == (0,)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="prior"):
        CategoricalProcess(4, "gaussian")
    with pytest.raises(ValueError, match="marginals"):
        CategoricalProcess(3, "marginal", marginals=[1, 2])
    with pytest.raises(ValueError, match="categorical step"):
        step_probs(CategoricalProcess(3), "leap", torch.zeros(1, dtype=torch.long), torch.ones(1, 3) / 3,
                   torch.ones(1), torch.ones(1))


# --- Meta's flow_matching (test-only dependency): the same path and the same Euler velocity ------------
flow_matching = pytest.importorskip("flow_matching")


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_path_matches_flow_matching(exponent):
    """Their MixtureDiscreteProbPath with PolynomialConvexScheduler(n) in flow time u = 1 - t is our
    polynomial schedule: the same kappa, its derivative, and the same sampled marginals."""
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.path.scheduler import PolynomialConvexScheduler

    scheduler = PolynomialConvexScheduler(n=exponent)
    ours = CategoricalProcess(4, "uniform", schedule="polynomial", exponent=exponent)
    u = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    out = scheduler(u)
    torch.testing.assert_close(ours.kappa(1 - u), out.alpha_t)
    torch.testing.assert_close(-ours.d_kappa(1 - u), out.d_alpha_t)
    torch.manual_seed(0)
    n = 200_000
    x1 = torch.full((n,), 2)
    x0 = torch.randint(0, 4, (n,))
    t_fm = torch.full((n,), 0.3)
    theirs = MixtureDiscreteProbPath(scheduler).sample(x_0=x0, x_1=x1, t=t_fm).x_t
    freq = torch.bincount(theirs, minlength=4).double() / n
    want = ours.marginal_probs(torch.tensor(2), ours.kappa(torch.tensor(0.7, dtype=torch.float64)))
    torch.testing.assert_close(freq, want, atol=0.004, rtol=0)


def test_euler_step_matches_flow_matching_velocity():
    """On the linear path our Euler step is exactly x_t + h u_t with their posterior_to_velocity."""
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.path.scheduler import PolynomialConvexScheduler

    path = MixtureDiscreteProbPath(PolynomialConvexScheduler(n=1.0))
    ours = CategoricalProcess(5, "uniform", schedule="linear")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=g, dtype=torch.float64)
    x_t = torch.randint(0, 5, (64,), generator=g)
    u_fm, h = 0.4, 0.05
    velocity = path.posterior_to_velocity(logits, x_t, torch.full((64,), u_fm, dtype=torch.float64))
    want = torch.nn.functional.one_hot(x_t, 5).double() + h * velocity
    kt = ours.kappa(torch.full((64,), 1 - u_fm, dtype=torch.float64))
    ks = ours.kappa(torch.full((64,), 1 - u_fm - h, dtype=torch.float64))
    torch.testing.assert_close(ours.euler_probs(x_t, torch.softmax(logits, -1), kt, ks), want)
