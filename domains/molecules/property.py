"""Property prediction for QM9 molecules: an E(3)-invariant EGNN regressor, its training entry point,
guidance of sampling by it, and EDM's evaluation of property-conditioned generation.

EDM's protocol (Hoogeboom et al. 2022, sec. 5.3): the 100k training molecules are split into two
fixed halves (``QM9Domain(half="a" | "b")``). The *evaluation* predictor phi is trained on half a; the
conditional generative model on half b. Molecules are sampled for property values c drawn from half
b (atom count from p(N | c)), phi predicts their property, and the mean absolute error between c and
phi's prediction is reported next to three baselines: "U-bound" (phi on half b with the labels
shuffled), "#Atoms" (the property predicted from the atom count alone) and "L-bound" (phi's error on
the real molecules of half b).

A noise-aware predictor (``noise_aware=True``) also reads the diffusion time t and is trained on
x_t = alpha(t) x0 + sigma(t) eps from the diffusion model's own process, so that its gradient can
guide sampling (``property_guidance``, a guidance config: ``guidance=property``).

    python -m sciffusion_domains.molecules.property train --half a --out phi_alpha_a.pt
    python -m sciffusion_domains.molecules.property train --half b --noise-aware --out psi_alpha_b.pt
    python -m sciffusion_domains.molecules.property baselines --predictor phi_alpha_a.pt --out base.json
    python -m sciffusion_domains.molecules.property evaluate --predictor phi_alpha_a.pt \\
        --checkpoint RUN/checkpoints/last.ckpt --cfg-scale 1 --num-samples 500 --out row.json
    python -m sciffusion_domains.molecules.property table base.json row.json ...

Checkpoints are written atomically (``sciffusion.training.save_checkpoint``) and hold only tensors
and plain values: ``torch.load(path, weights_only=True)`` reads them.

The module holds the predictor, its training loss (trained by the project's ``Trainer``), its
checkpoints and its data helpers; the guidance factory lives in
``property_guidance``, training and EDM's evaluation (the command line above) in ``property_cli``.
Both are also reachable under this module's name (``property.property_guidance``, ``property.main``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .networks.egnn import EquivariantLayer, _mlp
from .networks.inputs import molecule_edges, molecule_index, split_atoms

KIND = "sciffusion-property-predictor"
SATURATION = 100.0  # A^2: squared distances enter the predictor as SATURATION * tanh(d2 / SATURATION)


class PropertyPredictor(nn.Module):
    """``pred(x [N, 3 + F], space, t=None) -> [B]``: one scalar property a molecule, in its unit.

    EGNN layers (``networks.egnn.EquivariantLayer``: invariant messages on distances, equivariant
    position updates) on the atom-type features (and, when ``noise_aware``, the time t of the
    molecule), then an invariant readout: a per-atom MLP, a sum (or mean) over the molecule's atoms
    and an MLP on the pooled features. Only distances reach the features, so the output is invariant
    to rotations, reflections, translations and permutations of the atoms. The network predicts the
    property standardised by ``mean`` and ``std`` (buffers saved with the weights). Squared
    distances are saturated (``SATURATION``), so that a stray atom cannot blow the output up.
    """

    def __init__(self, num_features: int, *, hidden: int = 64, num_layers: int = 4, attention: bool = True,
                 noise_aware: bool = False, pooling: str = "sum", coords_range: float = 15.0,
                 normalization: float = 1.0, mean: float = 0.0, std: float = 1.0, dtype: torch.dtype | None = None):
        super().__init__()
        if pooling not in ("sum", "mean"):
            raise ValueError(f"pooling must be 'sum' or 'mean', got {pooling!r}")
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.num_features, self.noise_aware, self.pooling = num_features, noise_aware, pooling
        self.embed = nn.Linear(num_features + int(noise_aware), hidden)
        self.layers = nn.ModuleList(
            EquivariantLayer(hidden, 2, sublayers=1, attention=attention, coords_range=coords_range / num_layers,
                             normalization=normalization) for _ in range(num_layers))
        self.node_out = _mlp([hidden, hidden, hidden], last_act=False)
        self.graph_out = _mlp([hidden, hidden, 1], last_act=False)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.to(dtype or torch.get_default_dtype())

    @staticmethod
    def _saturate(d2: Tensor) -> Tensor:
        """Squared distances bounded at SATURATION (nearly linear below ~50 A^2, QM9's range): a
        generated molecule with an atom thrown far away gets a finite prediction and gradient."""
        return SATURATION * torch.tanh(d2 / SATURATION)

    def standardised(self, x: Tensor, space, t: Tensor | None = None) -> Tensor:
        """The prediction in standard units ``(y - mean) / std``, ``[B]``."""
        batch, num_molecules = molecule_index(space, x)
        pos, types = split_atoms(x, self.num_features)
        columns = [types]
        if self.noise_aware:
            if t is None:
                t = x.new_zeros(num_molecules)
            t = t.to(x).expand(num_molecules) if t.dim() == 0 else t.to(x)
            columns.append(t[batch, None])
        h = self.embed(torch.cat(columns, 1))
        edges = molecule_edges(pos, batch, radius=None, max_num_neighbors=None)
        d2_initial = self._saturate(((pos[edges[1]] - pos[edges[0]]) ** 2).sum(1, keepdim=True))
        for layer in self.layers:
            diff = pos[edges[1]] - pos[edges[0]]
            d2 = (diff**2).sum(1, keepdim=True)
            direction = diff / ((d2 + 1e-8).sqrt() + 1.0)
            h, pos = layer(h, pos, edges, torch.cat([self._saturate(d2), d2_initial], 1), direction)
        pooled = h.new_zeros(num_molecules, h.shape[1]).index_add_(0, batch, self.node_out(h))
        if self.pooling == "mean":
            pooled = pooled / torch.bincount(batch, minlength=num_molecules).clamp(min=1).to(h)[:, None]
        return self.graph_out(pooled).squeeze(1)

    def forward(self, x: Tensor, space, t: Tensor | None = None) -> Tensor:
        return self.standardised(x, space, t) * self.std + self.mean


class PropertyLoss:
    """The predictor's training task, in the project ``Trainer``'s loss interface: the absolute
    (``kind="l1"``) or squared (``"l2"``) error per molecule ``[B]`` between the standardised
    prediction and the domain's normalised property ``cond[PROPERTIES][:, 0]``.

    With a ``process`` (a noise-aware predictor) molecules are first noised to
    ``x_t = alpha(t) x0 + sigma(t) eps`` at ``t ~ U(t_min, 1)``, the times the guidance will ask about;
    without one, t is 0 and the molecules are clean.
    """

    def __init__(self, *, kind: str = "l1", process=None, t_min: float = 1e-5):
        if kind not in ("l1", "l2"):
            raise ValueError(f"the property loss is 'l1' or 'l2', got {kind!r}")
        self.kind, self.process, self.t_min = kind, process, t_min

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        if self.process is None:
            return torch.zeros(n, dtype=torch.float64)
        return self.t_min + (1 - self.t_min) * torch.rand(n, generator=generator, dtype=torch.float64)

    def __call__(self, model: PropertyPredictor, x0: Tensor, *, space, cond: dict, t: Tensor,
                 generator: torch.Generator | None = None) -> Tensor:
        from .domain import PROPERTIES

        x, t_in = x0, None
        if self.process is not None:
            alpha = space.per_sample(self.process.alpha(t).to(x0), x0)
            sigma = space.per_sample(self.process.sigma(t).to(x0), x0)
            x, t_in = alpha * x0 + sigma * space.randn_like(x0, generator), t.to(x0)
        error = model.standardised(x, space, t_in) - cond[PROPERTIES][:, 0]
        return error.abs() if self.kind == "l1" else error**2


# -- checkpoints ------------------------------------------------------------------------------------
def save_predictor(model: PropertyPredictor, path: str | Path, meta: dict[str, Any]) -> Path:
    """Weights (float32) and metadata, atomically; ``meta`` holds plain values only."""
    from sciffusion.training.checkpoint import save_checkpoint

    weights = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    return save_checkpoint({"kind": KIND, "model": weights, **meta}, path)


def load_predictor(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[PropertyPredictor, dict[str, Any]]:
    """The predictor in eval mode and the checkpoint's metadata (read with ``weights_only=True``)."""
    from sciffusion.training.checkpoint import safe_load

    state = safe_load(path, what="property predictor", map_location=device,
                      fix="pass a file written by `python -m sciffusion_domains.molecules.property train`")
    if not isinstance(state, dict) or state.get("kind") != KIND:
        raise ValueError(f"{path} is not a property-predictor checkpoint (written by `property train`)")
    model = PropertyPredictor(state["num_features"], **state["network"])
    model.load_state_dict(state["model"])
    meta = {k: v for k, v in state.items() if k != "model"}
    return model.to(device).eval(), meta


# -- data -----------------------------------------------------------------------------------------
def _domain(property: str, half: str | None, **options: Any):
    from .domain import QM9Domain

    return QM9Domain(condition=property, half=half, perceive_bonds=False, **options)


def labels(domain, molecules) -> Tensor:
    """The raw (unit) property of a ``MoleculeSet`` ``[M]``."""
    return molecules.y[:, domain._property_column()].double()


@torch.no_grad()
def predict(model: PropertyPredictor, molecules, *, atom_types: Sequence[str], include_charges: bool,
            batch_size: int = 500) -> Tensor:
    """Predictions ``[M]`` (float64, property unit) for a ``MoleculeSet`` or a list of ``Data``."""
    from .data import MoleculeSet, to_state

    packed = MoleculeSet.from_molecules(molecules)
    out = []
    for k in range(0, len(packed), batch_size):
        part = packed.select(torch.arange(k, min(k + batch_size, len(packed))))
        x, space = to_state(part, atom_types=atom_types, include_charges=include_charges)
        out.append(model(x.to(next(model.parameters())), space).double())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _predict_with(model: PropertyPredictor, meta: dict[str, Any], molecules, **kw) -> Tensor:
    return predict(model, molecules, atom_types=meta["atom_types"], include_charges=meta["include_charges"], **kw)


# -- the guidance factory and the command line, in their own modules -----------------------------------
_GUIDANCE = ("property_guidance",)
_CLI = ("train", "baselines", "evaluate", "table", "main")


def __getattr__(name: str):
    """``property.property_guidance`` (the guidance config's target) and ``property.main`` and the
    other commands, imported on first use from ``property_guidance`` and ``property_cli``."""
    if name in _GUIDANCE:
        from . import property_guidance as module
    elif name in _CLI:
        from . import property_cli as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


if __name__ == "__main__":
    from sciffusion_domains.molecules.property_cli import main

    main()
