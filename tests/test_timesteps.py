"""Time grids."""
import pytest
import torch

from sciffusion.processes import EDM, LinearInterpolant, VPCosine, VPLinear
from sciffusion.timesteps import custom, karras, make_grid, uniform_log_snr, uniform_t


@pytest.mark.parametrize("process", [VPLinear(), VPCosine(), LinearInterpolant(), EDM()])
@pytest.mark.parametrize("grid", ["uniform_t", "uniform_log_snr", "karras"])
def test_grids_decrease_to_zero(process, grid):
    ts = make_grid(grid, process, 10)
    assert ts.dtype == torch.float64 and len(ts) == 11
    assert ts[-1] == 0 and (ts[1:] < ts[:-1]).all()
    assert ts[0] <= process.t_max + 1e-12


def test_karras_matches_eq_5_on_the_edm_process():
    ts = karras(EDM(), 18, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    i = torch.arange(18, dtype=torch.float64)
    sigmas = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(ts[:-1] * 80, sigmas)


def test_karras_on_vp_is_in_scaled_sigma():
    p = VPLinear()
    ts = karras(p, 12, sigma_min=0.01, sigma_max=50.0)
    torch.testing.assert_close(p.scaled_sigma(ts[[0, -2]]), torch.tensor([50.0, 0.01], dtype=torch.float64))


def test_uniform_log_snr_is_uniform():
    p = VPCosine()
    lam = p.log_snr(uniform_log_snr(p, 8)[:-1])
    steps = lam[1:] - lam[:-1]
    torch.testing.assert_close(steps, steps.mean().expand_as(steps))


def test_sigma_max_capped_at_what_the_process_reaches():
    p = VPLinear()  # scaled sigma at t = 1 is about 152
    assert float(karras(p, 5, sigma_max=1e4)[0]) == pytest.approx(1.0)


def test_uniform_t():
    torch.testing.assert_close(uniform_t(LinearInterpolant(), 4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("bad,match", [([0.5, 0.6, 0.0], "decrease"), ([1.0, 0.5], "end at t = 0"), ([0.3], "two times")])
def test_custom_grid_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        custom(bad)


def test_bad_step_count_and_name():
    with pytest.raises(ValueError, match="positive integer"):
        uniform_t(VPLinear(), 0)
    with pytest.raises(ValueError, match="karras"):
        make_grid("kara", VPLinear(), 4)


def test_noise_level_grid_on_pure_noise_end_needs_a_finite_sigma_max():
    with pytest.raises(ValueError, match="finite sigma_max"):
        karras(LinearInterpolant(), 5, sigma_max=None)


def test_sigma_min_below_the_process_floor_is_refused():
    from sciffusion.processes import VarianceExploding

    with pytest.raises(ValueError, match="already has at t = 0"):
        karras(VarianceExploding(), 5)  # sigma(0) = 0.01 > 0.002
    ts = karras(VarianceExploding(), 5, sigma_min=0.02)
    assert (ts[:-1] > 0).all()


def test_uniform_t_to_sigma_min_ends_at_that_noise_level():
    process = VPLinear()
    ts = uniform_t(process, 5, sigma_min=0.01)
    assert ts.shape == (6,) and float(ts[0]) == pytest.approx(1.0) and float(ts[-1]) == 0.0
    assert float(process.scaled_sigma(ts[-2])) == pytest.approx(0.01, rel=1e-9)
    steps = ts[:-1].diff()
    torch.testing.assert_close(steps, steps[:1].expand(4))  # equal steps in t down to sigma_min
    assert torch.equal(uniform_t(process, 5), torch.linspace(1.0, 0.0, 6, dtype=torch.float64))  # default unchanged
    with pytest.raises(ValueError, match="sigma_min=1000000.0 must lie strictly between"):
        uniform_t(process, 5, sigma_min=1e6)
