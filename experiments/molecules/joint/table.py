"""Markdown tables from a run's curve.jsonl: the learning curve (default sampler, by step) and quality
vs sampling steps (at one checkpoint step).

    python experiments/molecules/joint/table.py RUN_DIR [--step N]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = [("atom_stability", "atom stab."), ("molecule_stability", "mol. stab."), ("validity", "validity"),
           ("validity_lenient", "lenient validity"), ("uniqueness", "unique"), ("novelty", "novel"),
           ("perceived_atom_stability", "perceived atom stab."), ("perceived_molecule_stability", "perceived mol. stab."),
           ("perceived_validity_perceived", "DetermineBonds validity"), ("perceived_connectivity", "connected")]


def row(r: dict, first: list[str]) -> str:
    cells = first + [f"{100 * r[k]:.1f}" if k in r else "" for k, _ in COLUMNS]
    cells.append(f"{r['w1_bond_angle']:.1f}" if "w1_bond_angle" in r else "")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--step", type=int, default=None)
    args = parser.parse_args()
    rows = [json.loads(line) for line in (Path(args.run) / "curve.jsonl").read_text().splitlines() if line.strip()]
    present = [(k, name) for k, name in COLUMNS if any(k in r for r in rows)]
    COLUMNS[:] = present
    header = " | ".join(name for _, name in COLUMNS) + " | W1 angle (deg) |"
    print("| step | training hours | " + header)
    print("|---|---|" + "---|" * (len(COLUMNS) + 1))
    for r in sorted((r for r in rows if r["sampling_steps"] == 100 and r["sampler"] == "ddpm"), key=lambda r: r["step"]):
        print(row(r, [str(r["step"]), f"{r['train_hours']:.2f}"]))
    default = [r for r in rows if r["sampling_steps"] == 500 and r["sampler"] == "ddpm"
               and r.get("categorical", "posterior") == "posterior"]
    if len(default) > 1:  # the shipped default's curve, where it was measured
        print("\nAt the shipped default (DDPM 500 steps, exact categorical posterior):\n")
        print("| step | training hours | " + header)
        print("|---|---|" + "---|" * (len(COLUMNS) + 1))
        for r in sorted(default, key=lambda r: r["step"]):
            print(row(r, [str(r["step"]), f"{r['train_hours']:.2f}"]))
    step = args.step or max(r["step"] for r in rows)
    at = sorted((r for r in rows if r["step"] == step), key=lambda r: r["sampling_steps"])
    if len(at) > 1:
        print(f"\nQuality vs sampling steps at step {step}:\n")
        print("| sampler | steps | " + header)
        print("|---|---|" + "---|" * (len(COLUMNS) + 1))
        for r in at:
            print(row(r, [f"{r['sampler']} + {r.get('categorical', 'posterior')}", str(r["sampling_steps"])]))


if __name__ == "__main__":
    main()
