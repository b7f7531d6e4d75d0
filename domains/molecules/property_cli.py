"""The property predictor's command line: training (``train``) and EDM's evaluation of property-
conditioned generation (``baselines``, ``evaluate``, ``table``); see
``sciffusion_domains.molecules.property`` for the protocol and the commands.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch

from .domain import PROPERTIES
from .property import (PropertyLoss, PropertyPredictor, _domain, _predict_with, labels, load_predictor,
                       save_predictor)
from .property_guidance import property_guidance


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train a predictor on one half (or all) of QM9's training split with the project's ``Trainer``
    (its run folder is temporary: the predictor file ``--out`` is the result); see ``main``."""
    from sciffusion.processes import make_process
    from sciffusion.training import Trainer, TrainOptions

    torch.manual_seed(args.seed)
    domain = _domain(args.property, None if args.half == "all" else args.half, limit=args.limit or None)
    mean, std = (float(v) for v in domain.property_stats())
    model = PropertyPredictor(domain.num_features, hidden=args.hidden, num_layers=args.layers,
                              noise_aware=args.noise_aware, pooling=args.pooling, mean=mean, std=std)
    loss = PropertyLoss(kind=args.loss, process=make_process(args.process) if args.noise_aware else None,
                        t_min=args.t_min)
    options = TrainOptions(steps=args.steps, batch_size=args.batch_size, grad_clip=1.0, seed=args.seed,
                           lr_schedule="cosine", warmup=min(200, args.steps // 10), log_every=100,
                           save_every=args.steps, progress=args.progress, tensorboard=False, resume=None)
    optimiser = partial(torch.optim.AdamW, lr=args.lr, weight_decay=args.weight_decay)
    start, losses = time.time(), []

    def report(step: int, out: dict) -> bool:
        losses.append(float(out["loss"]))
        if step % 100 == 0 and not args.progress:
            print(f"step {step} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} {time.time() - start:.0f}s",
                  flush=True)
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"stopping at step {step}: --max-minutes {args.max_minutes} reached", flush=True)
            return True
        return False

    with tempfile.TemporaryDirectory(prefix="property_run_") as run_dir:
        trainer = Trainer(domain=domain, model=model, process=None, loss=loss, optimizer=optimiser,
                          run_dir=run_dir, options=options)
        trainer.fit(after_step=report)
    model = trainer.model.eval()
    step, seconds = trainer.step, time.time() - start
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
    if molecules and getattr(molecules[0], "bond_order", None) is not None:
        # a joint model generates its bonds: also score them (strict validity, every H generated)
        from .joint_metrics import evaluate_joint

        generated = evaluate_joint(molecules, perceive=False)
        result.update(generated_atom_stability=generated["atom_stability"],
                      generated_molecule_stability=generated["molecule_stability"], validity=generated["validity"])
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
    """A Markdown table of ``baselines`` and ``evaluate`` JSON files. Stability is EDM's (bonds
    perceived from distances); rows of a joint model add the stability and strict validity of the
    bonds it generated."""
    rows = [json.loads(Path(p).read_text()) for p in args.files]
    unit = rows[0]["unit"] if rows else ""
    joint = any("validity" in row for row in rows)
    extra = " generated-bond atom stab. | mol. stab. | validity |" if joint else ""
    blank = " | | |" if joint else ""
    lines = [f"| method | MAE ({unit}) | median AE | corr(c, pred) | samples | sampler | atom stab. | mol. stab. |{extra}",
             "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if joint else "")]
    lower = None
    for row in rows:
        if "u_bound" in row:
            n = row["molecules"]
            lines += [f"| U-bound (labels shuffled) | {row['u_bound']:.2f} | | | {n} real | | | |{blank}",
                      f"| #Atoms | {row['atoms']:.2f} | | | {n} real | | | |{blank}"]
            lower = f"| L-bound (real molecules) | {row['l_bound']:.2f} | | | {n} real | | | |{blank}"
        else:
            line = (f"| {row['name']} | {row['mae']:.2f} | {row['median_ae']:.2f} | {row['corr']:.2f} | "
                    f"{row['num_samples']} | {row['sampler']} | "
                    f"{100 * row['atom_stability']:.1f}% | {100 * row['molecule_stability']:.1f}% |")
            if joint:
                line += (f" {100 * row['generated_atom_stability']:.1f}% | {100 * row['generated_molecule_stability']:.1f}%"
                         f" | {100 * row['validity']:.1f}% |" if "validity" in row else blank)
            lines.append(line)
    if lower is not None:
        lines.append(lower)
    text = "\n".join(lines)
    print(text)
    return text


def main(argv: Sequence[str] | None = None) -> None:
    from . import property as module  # the protocol and the commands are described there

    parser = argparse.ArgumentParser(prog="python -m sciffusion_domains.molecules.property", description=module.__doc__,
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
