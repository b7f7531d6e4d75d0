"""Guidance of QM9 sampling by a noise-aware property predictor (``guidance=property``); see
``sciffusion_domains.molecules.property`` for the predictor and EDM's protocol."""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from sciffusion.parameterization import Cond

from .domain import PROPERTIES
from .property import load_predictor


def property_guidance(denoiser, *, process, predictor: str, target: float | None = None, scale: float = 1.0,
                      std: float = 1.0, drop_condition: bool = False, t_max: float = 1.0, domain=None):
    """Classifier guidance by a noise-aware property predictor (a ``_partial_`` guidance factory):

        log p(y | x_t) = -(pred(x_t, t) - target)^2 / (2 std^2),

    added to the score ``scale`` times through ``sciffusion.guidance.ClassifierGuidance`` (which
    projects the gradient onto the zero-centre-of-mass subspace). ``target`` is in the property's
    unit; ``None`` takes each molecule's requested value from ``cond["properties"]`` (a conditional
    domain, whose ``denormalise`` turns it back into the unit). ``drop_condition`` runs a conditional
    model with its condition dropped, so that only the predictor steers the property. Guidance acts
    only at times ``t <= t_max``: near t = 1 the move of the denoised estimate, sigma^2 / alpha times
    the gradient, is hundreds of times the gradient on ``vp_cosine`` and can throw atoms apart."""
    from sciffusion.guidance import ClassifierGuidance, DropCondition

    model, meta = load_predictor(predictor)
    if not meta["network"]["noise_aware"]:
        raise ValueError(f"{predictor} was trained on clean molecules only; guidance needs a noise-aware "
                         "predictor (train it with --noise-aware)")
    if meta.get("process") and type(process).__name__ != type(_make_process(meta["process"])).__name__:
        warnings.warn(f"the predictor was trained on the {meta['process']} process, sampling uses {process}", stacklevel=2)
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    if target is None and domain is None:
        raise ValueError("target=None reads the requested property from cond, which needs the domain to "
                         "denormalise it; give target=<value in the property's unit>")

    def log_likelihood(x: Tensor, t: Tensor, space, cond: Cond) -> Tensor:
        model.to(x.device)
        pred = model(x.to(model.mean.dtype), space, t).to(x.dtype)
        if target is None:
            if PROPERTIES not in cond:
                raise ValueError("target=None needs cond['properties'] (sample from a conditional domain)")
            wanted = domain.denormalise(cond[PROPERTIES].detach().cpu())[:, 0].to(x)
        else:
            wanted = torch.full_like(pred, float(target))
        return -(pred - wanted) ** 2 / (2 * std**2)

    if not 0 < t_max <= 1:
        raise ValueError(f"t_max must be in (0, 1], got {t_max}")
    # guide only at t <= t_max: the same noise levels as scaled sigma up to that of t_max
    interval = None if t_max >= 1 else (0.0, float(process.scaled_sigma(torch.tensor([t_max], dtype=torch.float64))))
    base = DropCondition(denoiser) if drop_condition else denoiser
    return ClassifierGuidance(base, log_likelihood, process, scale=scale, interval=interval)


def _make_process(name: str):
    from sciffusion.processes import make_process

    return make_process(name)
