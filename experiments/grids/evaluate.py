"""Score samples drawn on searched and fixed grids against the test split (issue #14).

    OMP_NUM_THREADS=1 python experiments/grids/evaluate.py digits experiments/grids/digits_grids.json \
        experiments/grids/digits_scores.json --num 500 [--seed 0] [--only 5:dpmpp_2m:optimised ...]
    python experiments/grids/evaluate.py spoken_digits - experiments/grids/spoken_digits_real.json --real 200

Each cell (budget, sampler, grid) samples ``--num`` items with the model's shipped guidance, seed and
batch size 100, as ``sciffusion-evaluate`` does (the same ``Model.draw`` path: labels, prior and
sampler noise depend only on the seed and the batch), and scores them with the domain's metrics
against its whole test split. The cells, most important first: for the model's sampler (DPM-Solver++
(2M)) the searched grid, Karras and uniform log-SNR at every budget; UniPC on its searched grid and
on its best fixed grid (order included); last, the uniform-in-t grids, only where their held-out ODE
error is within twice the best fixed grid's (elsewhere they are not competitive and the ODE error
alone is reported). Finished cells are kept in the output and skipped on a rerun, so an interrupted
run resumes. ``--real N`` instead scores disjoint chunks of N real validation items: the metric's
floor and its noise at that count.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import sciffusion

DEFAULT = "dpmpp_2m"


def cell_settings(cell: dict, found: dict) -> dict:
    """``Model.sample`` arguments of a cell: grid name and options, sampler options."""
    n, sampler, grid = str(cell["nfe"]), cell["sampler"], cell["grid"]
    entry = found["budgets"][n][sampler]
    if grid == "optimised":
        return {"grid": "optimised", "grid_options": {"grids": {n: entry["times"]}},
                "sampler_options": entry["sampler_options"]}
    options = {"order": cell["order"]} if cell.get("order") else {}
    if grid == "uniform_t_sigma_min":
        return {"grid": "uniform_t", "grid_options": {"sigma_min": 0.002}, "sampler_options": options}
    return {"grid": grid, "grid_options": {}, "sampler_options": options}


def plan(found: dict) -> list[dict]:
    """The cells in priority order, each with the held-out ODE error of its grid."""
    first, second, last = [], [], []
    for n, by_sampler in found["budgets"].items():
        for sampler, entry in by_sampler.items():
            errors = {k: v["heldout"] for k, v in entry["ode_error"].items()}
            best_fixed = min(v for k, v in errors.items() if k != "optimised")
            order = entry["sampler_options"].get("order")
            first_grids = ["optimised", "karras", "uniform_log_snr"] if sampler == DEFAULT else ["optimised"]
            (first if sampler == DEFAULT else second).extend(
                {"nfe": int(n), "sampler": sampler, "grid": g, "order": order if g == "optimised" else None,
                 "ode_error": errors[g]} for g in first_grids)
            if sampler != DEFAULT:  # its best fixed grid and order, by held-out ODE error
                label = min((k for k in errors if k != "optimised"), key=errors.get)
                grid, _, order_text = label.partition(" order ")
                second.append({"nfe": int(n), "sampler": sampler, "grid": grid,
                               "order": int(order_text) if order_text else None, "ode_error": errors[label]})
            else:
                last.extend({"nfe": int(n), "sampler": sampler, "grid": g, "order": None, "ode_error": errors[g]}
                            for g in ("uniform_t", "uniform_t_sigma_min") if errors[g] <= 2 * best_fixed)
    def key(cell: dict) -> int:  # within a priority group, the smaller budgets first: cheaper
        return cell["nfe"]
    return sorted(first, key=key) + sorted(second, key=key) + sorted(last, key=key)


def name(cell: dict, seed: int) -> str:
    return f"{cell['nfe']}:{cell['sampler']}{'-' + str(cell['order']) if cell.get('order') else ''}:{cell['grid']}:seed{seed}"


def score_real(model_name: str, num: int, out: Path) -> None:
    model = sciffusion.load(model_name)
    reference = model.domain.reference("test")
    real = model.domain.reference("val")
    rows = [{"val_items": f"{i}-{i + num - 1}", "metrics": model.metrics(real[i:i + num], reference)}
            for i in range(0, len(real) - num + 1, num)]
    out.write_text(json.dumps({"model": model_name, "num": num, "reference": f"test split ({len(reference)})",
                               "rows": rows}, indent=1))
    print(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("grids", help="the JSON written by search.py ('-' with --real)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", help="cells NFE:SAMPLER:GRID (e.g. 5:dpmpp_2m:optimised) from the plan")
    parser.add_argument("--real", type=int, help="score chunks of this many real validation items instead")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.real:
        return score_real(args.model, args.real, args.out)
    found = json.loads(Path(args.grids).read_text())
    cells = plan(found)
    if args.only:
        cells = [c for c in cells if f"{c['nfe']}:{c['sampler']}:{c['grid']}" in args.only]
    done = json.loads(args.out.read_text()) if args.out.exists() else {"model": args.model, "rows": {}}
    model = sciffusion.load(args.model)
    reference = model.domain.reference("test")
    print(f"{len(cells)} cells: " + ", ".join(name(c, args.seed) for c in cells), flush=True)
    for cell in cells:
        key = name(cell, args.seed)
        if key in done["rows"] and done["rows"][key]["num"] == args.num:
            continue
        settings = cell_settings(cell, found)
        start = time.time()
        objects = model.sample(args.num, sampler=cell["sampler"], steps=cell["nfe"], seed=args.seed, batch_size=100,
                               progress=False, verbose=False, **settings)
        sample_s = time.time() - start
        metrics = model.metrics(objects, reference)
        done["rows"][key] = {**cell, "sample_args": settings, "seed": args.seed, "num": args.num, "metrics": metrics,
                             "sample_s": round(sample_s, 1)}
        print(key, f"{sample_s:.0f} s", json.dumps(metrics), flush=True)
        args.out.write_text(json.dumps(done, indent=1))


if __name__ == "__main__":
    main()
