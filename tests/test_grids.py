"""Time grids optimised for a denoiser and a budget (sciffusion.grids): on an exact target the searched
grid beats every fixed grid on starting points it was not searched on, and it travels with a
checkpoint's sampling_defaults to ``grid=optimised`` for any sampler."""
from __future__ import annotations

import json
import math

import pytest
import torch

from sciffusion.grids import optimise_grid, reference_solution, rms_distance
from sciffusion.processes import DiscreteVP, LinearInterpolant
from sciffusion.samplers import SAMPLERS
from sciffusion.settings import resolve
from sciffusion.space import DenseSpace
from sciffusion.testing import gaussian_mixture_2d
from sciffusion.timesteps import karras, make_grid, uniform_log_snr, uniform_t

F64 = torch.float64
PROCESS = DiscreteVP.linear(1000)
MIXTURE = gaussian_mixture_2d()
SIGMA_MIN = float(PROCESS.scaled_sigma(torch.tensor(1e-3, dtype=F64)))  # 0.0100, diffusers' last noise level


def _starts(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    alpha, sigma = (float(c) for c in (PROCESS.alpha(torch.tensor(1.0)), PROCESS.sigma(torch.tensor(1.0))))
    return alpha * MIXTURE.sample(n, g)[0] + sigma * torch.randn(n, 2, generator=g, dtype=F64)


@pytest.mark.parametrize("sampler, orders", [("ipndm", (3, 4)), ("unipc", (2, 3))])
def test_optimised_grid_beats_every_fixed_grid_at_10_nfe(sampler, orders):
    """10 NFE on the three-mode 2-D mixture with its exact denoiser: searched on 1000 starting points,
    measured on 2000 others (RMS distance to the probability-flow map, UniPC-3 at 500 steps). Every
    fixed grid (Karras rho 5, 7 and 9, uniform in log-SNR, uniform in t) with every order is worse.
    Measured: iPNDM 0.043 (order 3) against 0.099 for its best fixed grid (log-SNR, order 4); UniPC
    0.085 (order 2) against 0.16 (uniform t, order 2)."""
    denoiser = MIXTURE.denoiser(PROCESS)
    found = optimise_grid(denoiser, _starts(1000, seed=11), process=PROCESS, steps=10, sampler=sampler,
                          orders=orders, t_start=1.0, sigma_min=SIGMA_MIN, reference_steps=500, space=DenseSpace())
    x = _starts(2000, seed=0)
    exact = reference_solution(denoiser, x, process=PROCESS, t_start=1.0, sigma_min=SIGMA_MIN, steps=500,
                               space=DenseSpace())
    run = lambda ts, options: rms_distance(SAMPLERS[sampler](denoiser, x, ts, process=PROCESS,
                                                             space=DenseSpace(), **options), exact,
                                           DenseSpace())
    fixed = {"uniform_log_snr": uniform_log_snr(PROCESS, 10, sigma_min=SIGMA_MIN, sigma_max=157.0),
             "uniform_t": uniform_t(PROCESS, 10)}
    fixed.update({f"karras rho {rho}": karras(PROCESS, 10, sigma_min=SIGMA_MIN, sigma_max=157.0, rho=rho)
                  for rho in (5.0, 7.0, 9.0)})
    fixed_errors = {}
    for name, ts in fixed.items():
        ts[0] = 1.0
        for order in orders:
            fixed_errors[f"{name}, order {order}"] = run(ts, {"order": order})
    optimised = run(torch.tensor(found.times, dtype=F64), found.sampler_options)
    assert found.steps == 10 and found.sampler_options["order"] in orders
    assert found.error <= min(found.fixed_errors.values())  # on its own batch it can only improve
    assert optimised < 0.9 * min(fixed_errors.values()), (optimised, fixed_errors)


def test_stored_grid_travels_with_the_checkpoint_to_any_sampler():
    """``store`` puts the grid in sampling_defaults (JSON, as save_pretrained writes it); a later run
    resolves grid=optimised with its times, keeps grids of other budgets, and every one-evaluation
    sampler runs on it."""
    denoiser = MIXTURE.denoiser(PROCESS)
    x = _starts(200, seed=3)
    five = optimise_grid(denoiser, x, process=PROCESS, steps=5, sampler="ddim", t_start=1.0, sigma_min=SIGMA_MIN,
                         reference_steps=100, evaluations=20, space=DenseSpace())
    six = optimise_grid(denoiser, x, process=PROCESS, steps=6, sampler="dpmpp_2m", t_start=1.0,
                        sigma_min=SIGMA_MIN, reference_steps=100, evaluations=20, space=DenseSpace())
    defaults = json.loads(json.dumps(six.store(five.store({"guidance": None}))))
    settings = resolve({}, defaults)
    assert (settings.sampler, settings.steps, settings.grid) == ("dpmpp_2m", 6, "optimised")
    ts = make_grid(settings.grid, PROCESS, settings.steps, **settings.grid_options)
    assert ts.tolist() == six.times and ts[0] == 1.0 and ts[-1] == 0
    five_again = resolve({"steps": 5}, defaults)
    assert make_grid("optimised", PROCESS, 5, **five_again.grid_options).tolist() == five.times
    for name in ("ddim", "euler", "dpmpp_2m", "unipc", "deis", "ipndm"):
        assert torch.isfinite(SAMPLERS[name](denoiser, x, ts, process=PROCESS, space=DenseSpace())).all(), name
    with pytest.raises(ValueError, match=r"no optimised grid of 7 steps .* steps \[5, 6\]"):
        make_grid("optimised", PROCESS, 7, **settings.grid_options)
    with pytest.raises(ValueError, match="it has none"):
        make_grid("optimised", PROCESS, 7)


def test_fixed_errors_are_those_of_the_grids_sampling_uses():
    """The linear VP reaches scaled sigma 157 at t = 1; ``grid=karras`` (log-SNR) samples from sigma 80
    with the prior draw as its state there. The errors reported under those names are of exactly those
    grids (they were of grids from 157, which are other grids and were worse on spoken digits), so the
    searched grid is never worse than what the names give."""
    denoiser = MIXTURE.denoiser(PROCESS)
    x = _starts(100, seed=5)
    reference = reference_solution(denoiser, x, process=PROCESS, t_start=1.0, sigma_min=SIGMA_MIN, steps=100,
                                   space=DenseSpace())
    found = optimise_grid(denoiser, x, process=PROCESS, steps=5, sampler="dpmpp_2m", sigma_min=SIGMA_MIN,
                          reference=reference, evaluations=10, space=DenseSpace())
    sampled = {"karras": karras(PROCESS, 5, sigma_min=SIGMA_MIN),
               "uniform_log_snr": uniform_log_snr(PROCESS, 5, sigma_min=SIGMA_MIN), "uniform_t": uniform_t(PROCESS, 5)}
    assert float(PROCESS.scaled_sigma(sampled["karras"][0])) == pytest.approx(80.0)
    for name, ts in sampled.items():
        out = SAMPLERS["dpmpp_2m"](denoiser, x, ts, process=PROCESS, space=DenseSpace())
        assert found.fixed_errors[name] == pytest.approx(rms_distance(out, reference, DenseSpace()), rel=1e-9), name
    assert found.error <= min(found.fixed_errors.values())


def test_the_search_also_starts_from_where_the_batch_lives():
    """Above sigma 80 the search also starts from Karras and log-SNR grids from t_start (157 here): it never
    moves a grid's first time, so only these let it use the top of the noise range; it searches from the
    best of them as well as from the best start overall. Its result is never worse than any start."""
    denoiser = MIXTURE.denoiser(PROCESS)
    x = _starts(100, seed=5)
    reference = reference_solution(denoiser, x, process=PROCESS, t_start=1.0, sigma_min=SIGMA_MIN, steps=100,
                                   space=DenseSpace())
    found = optimise_grid(denoiser, x, process=PROCESS, steps=10, sampler="ipndm", sampler_options={"order": 3},
                          sigma_min=SIGMA_MIN, reference=reference, evaluations=10, space=DenseSpace())
    assert {"karras_from_t_start", "uniform_log_snr_from_t_start"} <= set(found.fixed_errors)
    assert found.error <= min(found.fixed_errors.values())
    assert found.evaluations == len(found.fixed_errors) + 2 * 10  # the starts, then two searches of 10 runs
    # the error reported under karras_from_t_start is that of the Karras grid from sigma 157, first time t = 1
    ts = karras(PROCESS, 10, sigma_min=SIGMA_MIN, sigma_max=float(PROCESS.scaled_sigma(torch.tensor(1.0, dtype=F64))))
    ts[0] = 1.0
    out = SAMPLERS["ipndm"](denoiser, x, ts, process=PROCESS, space=DenseSpace(), order=3)
    assert found.fixed_errors["karras_from_t_start"] == pytest.approx(rms_distance(out, reference, DenseSpace()), rel=1e-9)


def test_search_on_a_process_that_reaches_pure_noise():
    """The linear interpolant has infinite sigma / alpha at t = 1: the grid starts at scaled sigma 80,
    where the fixed grids start, and the search still improves on them."""
    process = LinearInterpolant()
    denoiser = MIXTURE.denoiser(process)
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0), dtype=F64)  # the prior at t = 1
    found = optimise_grid(denoiser, x, process=process, steps=6, sampler="unipc", reference_steps=200, evaluations=60,
                          space=DenseSpace())
    t_80 = float(process.t_from_scaled_sigma(torch.tensor(80.0, dtype=F64)))
    assert found.times[0] == t_80 and found.times[-1] == 0.0 and math.isfinite(found.error)
    assert found.error <= min(found.fixed_errors.values())


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        optimise_grid(MIXTURE.denoiser(PROCESS), _starts(4, 0), process=PROCESS, steps=4, sampler="nope",
                      space=DenseSpace())
    with pytest.raises(ValueError, match="steps >= 2"):
        optimise_grid(MIXTURE.denoiser(PROCESS), _starts(4, 0), process=PROCESS, steps=1, space=DenseSpace())


def test_a_shipped_model_keeps_its_searched_grid_in_its_folder(tmp_path):
    """The plumbing on a shipped network (a short search: the numbers are not the point here): the
    grid is searched with the model's own sampler, stored in sampling_defaults, written by
    save_pretrained and used by the reloaded model's sample() by default."""
    import sciffusion
    from sciffusion import shipped
    from sciffusion.grids import optimise_model_grid

    if shipped.lookup("spoken_digits").path() is None:
        pytest.skip("the spoken_digits checkpoint or its domain plugin is not installed")
    model = sciffusion.load("spoken_digits")
    found = optimise_model_grid(model, 3, num_samples=2, reference_steps=6, evaluations=2)
    assert model.sampling_defaults["grid"] == "optimised" and model.sampling_defaults["steps"] == 3
    again = sciffusion.load(model.save_pretrained(tmp_path / "model"))
    settings = again.settings()
    assert (settings.sampler, settings.steps, settings.grid) == (found.sampler, 3, "optimised")
    assert make_grid("optimised", again.process, 3, **settings.grid_options).tolist() == found.times
    assert len(again.sample(1, progress=False, verbose=False)) == 1
