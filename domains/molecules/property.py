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
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from sciffusion.parameterization import Cond

from .domain import PROPERTIES
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


def _batches(dataset, batch_size: int, generator: torch.Generator):
    """Endless shuffled batches of dataset indices (whole epochs)."""
    while True:
        perm = torch.randperm(len(dataset), generator=generator)
        for k in range(0, len(perm) - batch_size + 1, batch_size):
            yield dataset.__getitems__(perm[k:k + batch_size].tolist())


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


# -- training -------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train a predictor on one half (or all) of QM9's training split; see ``main``."""
    from tqdm import tqdm

    from sciffusion.processes import make_process

    torch.manual_seed(args.seed)
    domain = _domain(args.property, None if args.half == "all" else args.half, limit=args.limit or None)
    train_set = domain.dataset("train")
    mean, std = (float(v) for v in domain.property_stats())
    model = PropertyPredictor(domain.num_features, hidden=args.hidden, num_layers=args.layers,
                              noise_aware=args.noise_aware, pooling=args.pooling, mean=mean, std=std)
    process = make_process(args.process) if args.noise_aware else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warmup = min(200, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(warmup, 1)) * 0.5 * (1 + math.cos(math.pi * min(s / args.steps, 1.0))))
    generator = torch.Generator().manual_seed(args.seed)
    batches = _batches(train_set, args.batch_size, generator)
    start, losses, step = time.time(), [], 0
    bar = tqdm(total=args.steps, desc=f"property {args.property} half {args.half}", disable=not args.progress,
               mininterval=5)
    model.train()
    for step in range(1, args.steps + 1):
        items = next(batches)
        batch = domain.collate(items)
        x, space, y = batch.x, batch.space, batch.cond[PROPERTIES][:, 0]
        t = None
        if process is not None:
            t = args.t_min + (1 - args.t_min) * torch.rand(space.num_samples, generator=generator, dtype=torch.float64)
            alpha = space.per_sample(process.alpha(t).to(x), x)
            sigma = space.per_sample(process.sigma(t).to(x), x)
            x = alpha * x + sigma * space.randn_like(x, generator)
            t = t.to(x)
        loss = nn.functional.l1_loss(model.standardised(x, space, t), y) if args.loss == "l1" else \
            nn.functional.mse_loss(model.standardised(x, space, t), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        bar.update(1)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4f}")
            if not args.progress:
                print(f"step {step} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} "
                      f"{time.time() - start:.0f}s", flush=True)
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"stopping at step {step}: --max-minutes {args.max_minutes} reached", flush=True)
            break
    bar.close()
    model.eval()
    seconds = time.time() - start
    val = domain._split("val")
    val = val.select(torch.arange(min(args.val_limit, len(val))))
    meta = {"num_features": domain.num_features,
            "network": {"hidden": args.hidden, "num_layers": args.layers, "noise_aware": args.noise_aware,
                        "pooling": args.pooling},
            "property": args.property, "unit": _unit(args.property), "half": args.half, "half_seed": domain.half_seed,
            "split_seed": domain.seed, "atom_types": list(domain.atom_types), "include_charges": domain.include_charges,
            "remove_h": domain.remove_h, "process": args.process if args.noise_aware else None, "t_min": args.t_min,
            "limit": args.limit or None, "steps": step, "batch_size": args.batch_size, "lr": args.lr, "loss": args.loss, "seed": args.seed,
            "train_seconds": round(seconds, 1), "final_train_loss": sum(losses[-100:]) / max(len(losses[-100:]), 1),
            "command": " ".join(sys.argv)}
    clean = _predict_with(model, meta, val)
    meta["val_mae"] = (clean - labels(domain, val)).abs().mean().item()
    meta["val_molecules"] = len(val)
    path = save_predictor(model, args.out, meta)
    size = path.stat().st_size
    print(json.dumps({"out": str(path), "bytes": size, "steps": step, "seconds": round(seconds, 1),
                      "val_mae": meta["val_mae"], "unit": meta["unit"]}), flush=True)
    return meta


def _unit(property: str) -> str:
    from .data import QM9_TARGETS

    return QM9_TARGETS[property][2]


# -- guidance -------------------------------------------------------------------------------------
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


# -- evaluation -----------------------------------------------------------------------------------
def baselines(args: argparse.Namespace) -> dict[str, Any]:
    """U-bound, #Atoms and L-bound of EDM's Table 3 on half b, for the evaluation predictor."""
    phi, meta = load_predictor(args.predictor)
    prop = meta["property"]
    half_a, half_b = _domain(prop, "a"), _domain(prop, "b")
    a, b = half_a._split("train"), half_b._split("train")
    y_a, y_b = labels(half_a, a), labels(half_b, b)
    if args.limit:
        b = b.select(torch.arange(min(args.limit, len(b))))
        y_b = y_b[:len(b)]
    pred_b = _predict_with(phi, meta, b)
    shuffled = y_b[torch.randperm(len(y_b), generator=torch.Generator().manual_seed(args.seed))]
    # #Atoms: the mean property of half-a molecules with the same atom count (global mean if none)
    counts_a, counts_b = a.counts.long(), b.counts.long()
    size = int(max(counts_a.max(), counts_b.max())) + 1
    total = torch.zeros(size, dtype=torch.float64).index_add_(0, counts_a, y_a)
    number = torch.bincount(counts_a, minlength=size).double()
    by_count = torch.where(number > 0, total / number.clamp(min=1), y_a.mean())
    result = {"property": prop, "unit": meta["unit"], "molecules": len(b),
              "u_bound": (pred_b - shuffled).abs().mean().item(),
              "atoms": (by_count[counts_b] - y_b).abs().mean().item(),
              "l_bound": (pred_b - y_b).abs().mean().item(),
              "predictor": str(args.predictor)}
    _write(result, args.out)
    return result


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Sample from a conditional checkpoint for properties drawn from its training half (p(N | c) for
    the size), optionally guided, and score phi's predictions against the requested values."""
    from sciffusion.api import load as load_model
    from sciffusion.guidance import ClassifierFreeGuidance
    from sciffusion.training import SamplingOptions, decode_all, generate

    from . import bonds
    from .data import MoleculeSet

    torch.manual_seed(args.seed)
    phi, meta = load_predictor(args.predictor)
    loaded = load_model(args.checkpoint)  # EMA weights, the domain with its state
    domain, process, model = loaded.domain, loaded.process, loaded.denoiser
    if domain.condition_name != meta["property"]:
        raise ValueError(f"the checkpoint is conditioned on {domain.condition_name!r}, the predictor on {meta['property']!r}")
    denoiser = model
    if args.guidance_predictor:
        denoiser = property_guidance(model, process=process, predictor=args.guidance_predictor,
                                     scale=args.guidance_scale, std=args.guidance_std, t_max=args.guidance_t_max,
                                     drop_condition=args.cfg_scale == 0, domain=domain)
        if args.cfg_scale not in (0, 1):
            raise ValueError("combine predictor guidance with --cfg-scale 0 (condition dropped) or 1 (conditional)")
    elif args.cfg_scale != 1:
        denoiser = ClassifierFreeGuidance(model, args.cfg_scale)
    options = SamplingOptions(sampler=args.sampler, steps=args.steps, grid="uniform_t", batch_size=args.batch_size,
                              seed=args.seed)
    start = time.time()
    batches = generate(domain, denoiser, process, args.num_samples, options=options)
    seconds = time.time() - start
    molecules = decode_all(domain, batches)
    wanted = torch.cat([domain.denormalise(b.cond[PROPERTIES])[:, 0].double() for b in batches])
    achieved = _predict_with(phi, meta, molecules)
    packed = MoleculeSet.from_molecules(molecules)
    atom_ok, molecule_ok = bonds.stability(packed.pos, packed.z, packed.counts)
    finite = torch.isfinite(achieved)
    result = {"name": args.name or _row_name(args), "property": meta["property"], "unit": meta["unit"],
              "mae": (achieved - wanted)[finite].abs().mean().item(), "num_samples": len(molecules),
              "median_ae": (achieved - wanted)[finite].abs().median().item(), "non_finite": int((~finite).sum()),
              "sampler": f"{args.sampler} {args.steps} steps", "cfg_scale": args.cfg_scale,
              "guidance_predictor": args.guidance_predictor, "guidance_scale": args.guidance_scale if args.guidance_predictor else None,
              "guidance_std": args.guidance_std if args.guidance_predictor else None,
              "guidance_t_max": args.guidance_t_max if args.guidance_predictor else None,
              "atom_stability": atom_ok.float().mean().item(), "molecule_stability": molecule_ok.float().mean().item(),
              "requested_mean": wanted.mean().item(), "achieved_mean": achieved[finite].mean().item(),
              "corr": torch.corrcoef(torch.stack([wanted[finite], achieved[finite]]))[0, 1].item(),
              "checkpoint": str(args.checkpoint), "predictor": str(args.predictor), "seed": args.seed,
              "sampling_seconds": round(seconds, 1)}
    _write(result, args.out)
    return result


def _row_name(args) -> str:
    if args.guidance_predictor:
        base = "conditional" if args.cfg_scale == 1 else "condition dropped"
        t_max = "" if args.guidance_t_max >= 1 else f", t <= {args.guidance_t_max}"
        return f"predictor guidance (scale {args.guidance_scale}, std {args.guidance_std}{t_max}), {base}"
    if args.cfg_scale == 0:
        return "condition dropped (N from p(N|c) only)"
    if args.cfg_scale == 1:
        return "conditional model (CFG scale 1)"
    return f"classifier-free guidance, scale {args.cfg_scale}"


def _write(result: dict[str, Any], out: str | None) -> None:
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")


def table(args: argparse.Namespace) -> str:
    """A Markdown table of ``baselines`` and ``evaluate`` JSON files."""
    rows = [json.loads(Path(p).read_text()) for p in args.files]
    unit = rows[0]["unit"] if rows else ""
    lines = [f"| method | MAE ({unit}) | median AE | corr(c, pred) | samples | sampler | atom stab. | mol. stab. |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "u_bound" in row:
            n = row["molecules"]
            lines += [f"| U-bound (labels shuffled) | {row['u_bound']:.2f} | | | {n} real | | | |",
                      f"| #Atoms | {row['atoms']:.2f} | | | {n} real | | | |"]
            lower = f"| L-bound (real molecules) | {row['l_bound']:.2f} | | | {n} real | | | |"
        else:
            lines.append(f"| {row['name']} | {row['mae']:.2f} | {row['median_ae']:.2f} | {row['corr']:.2f} | "
                         f"{row['num_samples']} | {row['sampler']} | "
                         f"{100 * row['atom_stability']:.1f}% | {100 * row['molecule_stability']:.1f}% |")
    if any("u_bound" in row for row in rows):
        lines.append(lower)
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sciffusion_domains.molecules.property", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a property predictor on half a, half b or all of QM9's training split")
    p.add_argument("--property", default="alpha")
    p.add_argument("--half", choices=["a", "b", "all"], default="a")
    p.add_argument("--noise-aware", action="store_true", help="read t and train on noised molecules x_t")
    p.add_argument("--process", default="vp_cosine", help="noise process of the noise-aware predictor")
    p.add_argument("--t-min", type=float, default=1e-5)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop early after this much wall time (0: never)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-12)
    p.add_argument("--loss", choices=["l1", "l2"], default="l1")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--pooling", choices=["sum", "mean"], default="sum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-limit", type=int, default=5000)
    p.add_argument("--limit", type=int, default=0, help="use only the first N QM9 rows (smoke tests)")
    p.add_argument("--progress", action="store_true", help="a tqdm bar instead of a line every 100 steps")
    p.add_argument("--out", required=True)
    p = sub.add_parser("baselines", help="U-bound, #Atoms and L-bound on half b")
    p.add_argument("--predictor", required=True)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    p = sub.add_parser("evaluate", help="MAE of generated molecules (requested vs predicted property)")
    p.add_argument("--predictor", required=True, help="the evaluation predictor (trained on half a)")
    p.add_argument("--checkpoint", required=True, help="a conditional diffusion checkpoint (trained on half b)")
    p.add_argument("--cfg-scale", type=float, default=1.0, help="1: conditional; 0: condition dropped; >1: CFG")
    p.add_argument("--guidance-predictor", help="a noise-aware predictor for classifier guidance")
    p.add_argument("--guidance-scale", type=float, default=1.0)
    p.add_argument("--guidance-std", type=float, default=1.0, help="s of log p = -(pred - c)^2 / (2 s^2), in the unit")
    p.add_argument("--guidance-t-max", type=float, default=1.0, help="guide only at t <= this")
    p.add_argument("--num-samples", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--sampler", default="ddpm")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name")
    p.add_argument("--out")
    p = sub.add_parser("table", help="Markdown table of baselines/evaluate JSON files")
    p.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    {"train": train, "baselines": baselines, "evaluate": evaluate, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
