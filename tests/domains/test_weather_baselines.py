"""The classical baselines on processes whose answers are known: a linear inverse model recovers the
propagator and error covariance of a vector AR(1) process, damped persistence the coefficient and
spread of independent AR(1) series; the closed-form Gaussian CRPS and the fair ensemble CRPS."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("xarray")

from sciffusion_domains.weather.baselines import DampedPersistence, LinearInverseModel  # noqa: E402
from sciffusion_domains.weather.scores import crps_ensemble, crps_gaussian  # noqa: E402

LAT = np.array([-30.0, 25.0])  # unequal area weights: the LIM's answer on the grid must not depend on them


def var1(a: torch.Tensor, noise: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """``steps`` states ``[T, P]`` of x(t+1) = A x(t) + L e, e ~ N(0, I), after a burn-in."""
    g = torch.Generator().manual_seed(seed)
    x, out = torch.zeros(a.shape[0], dtype=torch.float64), []
    for k in range(steps + 200):
        x = a @ x + noise @ torch.randn(a.shape[0], generator=g, dtype=torch.float64)
        if k >= 200:
            out.append(x)
    return torch.stack(out)


@pytest.fixture(scope="module")
def process():
    """A stable, non-normal, non-symmetric 6-variable AR(1) on a 2 x 3 grid."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor([0.9, 0.8, 0.6, 0.5, 0.3, 0.1], dtype=torch.float64)) @ q.T
    a = a + 0.1 * torch.triu(torch.randn(6, 6, generator=g, dtype=torch.float64), 1)
    noise = 0.5 * torch.eye(6, dtype=torch.float64) + 0.1 * torch.randn(6, 6, generator=g, dtype=torch.float64)
    return a, noise, var1(a, noise, 40000, seed=1).reshape(-1, 2, 3)


def true_error_covariance(a, noise, lead):
    """sum_{k < lead} A^k L L^T (A^k)^T: the spread of x(t + lead) given x(t)."""
    q = noise @ noise.T
    return sum(torch.linalg.matrix_power(a, k) @ q @ torch.linalg.matrix_power(a, k).T for k in range(lead))


def test_the_lim_recovers_the_propagator_and_error_covariance_of_an_ar1_process(process):
    a, noise, states = process
    lim = LinearInverseModel.fit(states, lat=LAT, modes=6)
    initial = torch.eye(6, dtype=torch.float64).reshape(6, 2, 3)  # unit anomalies at each point
    x = states.reshape(-1, 6)
    least_squares = torch.linalg.solve(x[:-1].T @ x[:-1], x[:-1].T @ x[1:]).T  # x(t+1) ~ A x(t)
    # the least-squares estimate's standard errors: Var(A_ij) = Q_ii (C(0)^-1)_jj / T
    c0 = true_error_covariance(a, noise, 2000)
    standard_error = (torch.outer((noise @ noise.T).diagonal(), torch.linalg.inv(c0).diagonal()) / len(x)).sqrt()
    for lead in (1, 3):
        forecast = lim.forecast(initial, lead=lead)
        recovered = forecast.mean.reshape(6, 6).T  # column j: the forecast from a unit anomaly at point j
        torch.testing.assert_close(recovered, torch.linalg.matrix_power(least_squares, lead))
        if lead == 1:
            assert ((recovered - a).abs() / standard_error).max() < 4.5
        torch.testing.assert_close(recovered, torch.linalg.matrix_power(a, lead), atol=0.05, rtol=0)
        expected = true_error_covariance(a, noise, lead).diagonal().sqrt().reshape(2, 3)
        torch.testing.assert_close(forecast.std[0], expected, rtol=0.02, atol=0)
    assert lim.residual_var.abs().max() < 1e-20, "all six modes kept: nothing is left out"


def test_lim_ensembles_follow_its_gaussian_forecast_also_when_modes_are_left_out(process):
    _, _, states = process
    lim = LinearInverseModel.fit(states, lat=LAT, modes=3)
    assert lim.residual_var.min() > 0.01
    initial = states[:2]
    forecast = lim.forecast(initial, lead=2)
    ensemble = lim.sample(initial, lead=2, members=40000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ensemble.mean(0), forecast.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(ensemble.std(0), forecast.std, rtol=0.02, atol=0)


def test_lim_checks_its_inputs(process):
    states = process[2]
    with pytest.raises(ValueError, match="modes=7"):
        LinearInverseModel.fit(states, lat=LAT, modes=7)
    lim = LinearInverseModel.fit(states[:, :, :2].clone(), lat=LAT, modes=2)
    with pytest.raises(ValueError, match=r"expected \[N, 2, 2\]"):
        lim.forecast(states[:3], lead=1)


def test_masked_points_are_left_out_and_forecast_as_nan(process):
    states = process[2].clone()
    states[:, 1, 2] = float("nan")
    for model in (LinearInverseModel.fit(states, lat=LAT, modes=5), DampedPersistence.fit(states, leads=[1])):
        forecast = model.forecast(states[:4], lead=1)
        assert forecast.mean[:, 1, 2].isnan().all() and forecast.std[:, 1, 2].isnan().all()
        assert forecast.mean[:, :, :2].isfinite().all() and forecast.std[:, 0].isfinite().all()


def test_damped_persistence_recovers_independent_ar1_series():
    phi = torch.tensor([[0.95, 0.7], [0.3, 0.0]], dtype=torch.float64)
    states = var1(torch.diag(phi.flatten()), torch.eye(4, dtype=torch.float64), 50000, seed=3).reshape(-1, 2, 2)
    model = DampedPersistence.fit(states, leads=[1, 2, 4])
    for k, lead in enumerate((1, 2, 4)):
        torch.testing.assert_close(model.coef[k], phi**lead, atol=0.015, rtol=0)
        spread = ((1 - phi ** (2 * lead)) / (1 - phi**2)).sqrt()  # the AR(1)'s lead-step error
        torch.testing.assert_close(model.std[k], spread, rtol=0.02, atol=0)
    initial = states[:5]
    torch.testing.assert_close(model.forecast(initial, lead=2).mean, model.coef[1] * initial)
    with pytest.raises(ValueError, match="lead 3 was not fitted"):
        model.forecast(initial, lead=3)


def test_gaussian_crps_matches_properscoring_and_the_absolute_error_without_spread():
    ps = pytest.importorskip("properscoring")
    g = torch.Generator().manual_seed(4)
    mean, truth = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    std = torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    expected = ps.crps_gaussian(truth.numpy(), mean.numpy(), std.numpy())
    np.testing.assert_allclose(crps_gaussian(mean, std, truth).numpy(), expected, rtol=1e-12)
    torch.testing.assert_close(crps_gaussian(mean, torch.zeros(50, dtype=torch.float64), truth), (mean - truth).abs())
    nan = crps_gaussian(torch.tensor([float("nan"), 0.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0]))
    assert nan[0].isnan() and nan[1].item() == pytest.approx((2 - math.sqrt(2)) / math.sqrt(2 * math.pi), rel=1e-6)


def test_the_fair_crps_is_unbiased_for_any_ensemble_size_and_the_standard_one_is_not():
    """E[fair CRPS of M draws from F] = CRPS(F) for every M (Ferro 2014); the standard estimator is
    too large by E|X - X'| / (2M) = sigma / (sqrt(pi) M) for a Gaussian."""
    g = torch.Generator().manual_seed(5)
    cases, sigma = 200000, 1.5
    truth = torch.randn(cases, generator=g, dtype=torch.float64) * 1.2 + 0.3
    exact = crps_gaussian(torch.zeros(cases, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64),
                          truth).mean()
    for members in (2, 3, 8):
        ensemble = sigma * torch.randn(members, cases, generator=g, dtype=torch.float64)
        fair, standard = crps_ensemble(ensemble, truth, fair=True).mean(), crps_ensemble(ensemble, truth).mean()
        assert fair.item() == pytest.approx(exact.item(), abs=0.01)
        assert (standard - fair).item() == pytest.approx(sigma / (math.sqrt(math.pi) * members), abs=0.01)
