"""The space is required, never guessed: every sampler, ``prior_sample``, the losses, the model
denoisers, the likelihood and the grid search refuse a missing one with a one-line TypeError that
names the function and says what to pass, and run with ``DenseSpace()`` for plain tensors."""
from __future__ import annotations

import pytest
import torch

from sciffusion.grids import optimise_grid
from sciffusion.likelihood import log_likelihood
from sciffusion.losses import DiffusionLoss
from sciffusion.parameterization import EDMPrecond, ModelDenoiser
from sciffusion.processes import VPCosine
from sciffusion.samplers import SAMPLERS, prior_sample
from sciffusion.space import DenseSpace
from sciffusion.timesteps import uniform_t

PROCESS = VPCosine()
MISSING = "needs the batch's space, got None; pass space= .*DenseSpace\\(\\)"


def _shrink(x, t, space, cond):
    return 0.5 * x


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_requires_a_space(name):
    sampler, x, ts = SAMPLERS[name], torch.randn(3, 2), uniform_t(PROCESS, 3)
    for missing in ({}, {"space": None}):
        with pytest.raises(TypeError, match=f"^{sampler.__name__} {MISSING}") as error:
            sampler(_shrink, x, ts, process=PROCESS, **missing)
        _one_line(error)
    out = sampler(_shrink, x, ts, process=PROCESS, space=DenseSpace(), generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_prior_sample_requires_a_space():
    with pytest.raises(TypeError, match=f"^prior_sample {MISSING}") as error:
        prior_sample(PROCESS, torch.zeros(4, 2))
    _one_line(error)
    mask = torch.tensor([True, False])
    x = prior_sample(PROCESS, torch.zeros(4, 2), space=DenseSpace(mask), generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 2) and (x[:, 1] == 0).all() and (x[:, 0] != 0).all()


def test_losses_denoisers_likelihood_and_grid_search_require_a_space():
    x, t = torch.randn(4, 2, dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    net = lambda x, t, space, cond: 0.1 * x  # noqa: E731
    model = ModelDenoiser(net, PROCESS, "eps")
    calls = {
        "DiffusionLoss": lambda **kw: DiffusionLoss(PROCESS)(model, x, **kw),
        "ModelDenoiser": lambda **kw: model(x, t, kw.get("space")),
        "EDMPrecond": lambda **kw: EDMPrecond(net, PROCESS)(x, t, kw.get("space")),
        "log_likelihood": lambda **kw: log_likelihood(_shrink, x, process=PROCESS, trace="exact", **kw),
        "optimise_grid": lambda **kw: optimise_grid(_shrink, x, process=PROCESS, steps=2, sampler="ddim",
                                                    reference_steps=4, evaluations=1, **kw),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=f"^{name} {MISSING}") as error:
            call()
        _one_line(error)
        assert call(space=DenseSpace()) is not None
