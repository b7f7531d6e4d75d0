"""From a resolved config (plain nested dicts) to the objects the loop and the samplers use.

Everything is built before any work starts, so a wrong ``_target_``, an unknown domain or a bad
option fails at once with its own message.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from hydra.utils import instantiate
from torch import nn

from ..domain import Domain
from ..losses import DiffusionLoss
from ..parameterization import Denoiser
from ..processes import NoiseProcess
from ..registry import make_domain
from ..training import SamplingOptions, TrainOptions


@dataclass
class Parts:
    domain: Domain
    process: NoiseProcess
    model: nn.Module  # the denoiser module (ModelDenoiser or EDMPrecond) holding the network
    loss: DiffusionLoss
    optimizer: Callable[..., Any]


def build_domain(cfg: dict[str, Any]) -> Domain:
    options = dict(cfg["domain"])
    return make_domain(options.pop("name"), **options)


def build_network(cfg: dict[str, Any], domain: Domain) -> nn.Module:
    network = dict(cfg.get("network") or {})
    if "_target_" in network:
        return instantiate(network)
    return domain.network(**network)


def build(cfg: dict[str, Any], *, domain_state: dict[str, Any] | None = None) -> Parts:
    """Domain, process, denoiser, loss and optimiser factory of a train config. ``domain_state`` (a
    checkpoint's) is loaded into the domain first, so that what a process learns from data (a
    categorical part's class marginals, via ``Domain.prepare_process``) comes from the checkpoint."""
    domain = build_domain(cfg)
    if domain_state:
        domain.load_state_dict(domain_state)
    process = instantiate(cfg["process"])
    domain.prepare_process(process)
    model = instantiate(cfg["parameterization"])(build_network(cfg, domain), process)
    loss = instantiate(cfg["loss"])(process)
    return Parts(domain, process, model, loss, instantiate(cfg["optim"]))


def options_of(cls: type, values: dict[str, Any]):
    """A dataclass from the matching keys of ``values``."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def train_options(cfg: dict[str, Any]) -> TrainOptions:
    return options_of(TrainOptions, cfg["train"])


def sampling_options(cfg: dict[str, Any]) -> SamplingOptions:
    return options_of(SamplingOptions, cfg["sampling"])


def guided(denoiser: Denoiser, guidance: dict[str, Any] | None, process: NoiseProcess,
           domain: Domain | None = None) -> Denoiser:
    """Wrap ``denoiser`` in the configured guidance (a ``_partial_`` config), or return it unchanged.
    Every guidance factory is called the same way, ``make(denoiser, process=..., domain=...)`` (the
    domain with the checkpoint's state loaded: its normalisation, atom types...), plus its options;
    a factory takes both keywords, ignoring those it does not need."""
    if not guidance:
        return denoiser
    make = instantiate(guidance)
    try:
        return make(denoiser, process=process, domain=domain)
    except TypeError as err:
        if "unexpected keyword argument" in str(err) and ("'process'" in str(err) or "'domain'" in str(err)):
            raise TypeError(f"the guidance factory {guidance.get('_target_')!r} must accept the keywords process= and "
                            f"domain= (every factory is called as make(denoiser, process=..., domain=...)): {err}") from None
        raise
