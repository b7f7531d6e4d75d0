"""Search time grids for a shipped model at several budgets and store them as JSON (issue #14).

    OMP_NUM_THREADS=1 python experiments/grids/search.py digits experiments/grids/digits.json \
        --num 20 --samplers dpmpp_2m unipc --evaluations 30 40 50

For each budget (NFE = sampler evaluations a sample; classifier-free guidance doubles the network
cost of each) and each sampler, ``sciffusion.grids.optimise_grid`` searches the grid on which the
sampler, with the model's shipped guidance, maps a calibration batch of prior draws closest to a
fine-step solution of the guided probability-flow ODE (UniPC-3, ``--reference-steps`` steps uniform in
log-SNR). UniPC is searched over orders 2 and 3. Then every grid, searched and fixed, is scored by
the same RMS discrepancy on a second, held-out batch (other prior draws and conditions), the fixed
ones exactly as ``grid=NAME`` samples them (``make_grid`` with the library's defaults: scaled sigma
0.002-80 for Karras and log-SNR). The JSON keeps the times, the discrepancies, the wall times and,
per sampler, the ``sampling_defaults`` block ``OptimisedGrid.store`` would put in the checkpoint.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

import sciffusion
from sciffusion.grids import optimise_grid, reference_solution, rms_distance
from sciffusion.samplers import SAMPLERS, prior_sample
from sciffusion.timesteps import make_grid

FIXED = {"karras": {}, "uniform_log_snr": {}, "uniform_t": {}, "uniform_t_sigma_min": {"sigma_min": 0.002}}
ORDERS = {"unipc": (2, 3)}  # samplers with an order option: the search picks the order too


def library_grid(name: str, process, steps: int) -> torch.Tensor:
    """The grid ``grid=name`` samples with (``uniform_t_sigma_min`` is uniform_t with sigma_min 0.002)."""
    return make_grid(name.removesuffix("_sigma_min"), process, steps, **FIXED[name])


def calibration(model, num: int, seed: int):
    """Prior draws at t_max and conditions, as ``optimise_model_grid`` draws them."""
    generator = torch.Generator().manual_seed(seed)
    cond = model.domain.condition(num, generator=generator)
    x_like, space = model.domain.template(num, generator=generator, cond=cond)
    return prior_sample(model.process, x_like, space=space, generator=generator), space, cond


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a shipped name (digits, spoken_digits) or a checkpoint")
    parser.add_argument("out", type=Path)
    parser.add_argument("--num", type=int, default=16, help="calibration (and held-out) batch size")
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--samplers", nargs="+", default=["dpmpp_2m", "unipc"])
    parser.add_argument("--evaluations", type=int, nargs="+", default=[30, 40, 50],
                        help="search runs per order, one per budget")
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1234, help="calibration seed; held-out uses seed + 1")
    args = parser.parse_args()
    if len(args.evaluations) != len(args.budgets):
        parser.error(f"give one --evaluations per budget ({len(args.budgets)}), got {args.evaluations}")
    torch.set_num_threads(1)
    model = sciffusion.load(args.model)
    process = model.process
    denoiser = model.guided(model.settings().guidance)  # the shipped guidance (CFG 2 for both models)
    batches = {"calibration": calibration(model, args.num, args.seed),
               "heldout": calibration(model, args.num, args.seed + 1)}
    started = time.time()
    references, reference_check = {}, {}
    with torch.no_grad():
        for name, (x, space, cond) in batches.items():
            references[name] = reference_solution(denoiser, x, process=process, t_start=process.t_max, sigma_min=0.002,
                                                  steps=args.reference_steps, space=space, cond=cond)
        # how far the reference is from converged: the same ODE at half the steps
        x, space, cond = batches["heldout"]
        half = reference_solution(denoiser, x, process=process, t_start=process.t_max, sigma_min=0.002,
                                  steps=args.reference_steps // 2, space=space, cond=cond)
        reference_check = {f"rms(ref {args.reference_steps // 2} steps - ref {args.reference_steps} steps)":
                           rms_distance(half, references["heldout"], space)}
    result = {"model": args.model, "guidance": model.settings().describe(), "num": args.num, "seed": args.seed,
              "reference_steps": args.reference_steps, "reference_check": reference_check,
              "reference_s": round(time.time() - started, 1), "nfe_convention": "sampler evaluations per sample "
              "(one per step for dpmpp_2m and unipc); CFG evaluates the network twice for each",
              "budgets": {}, "sampling_defaults": {}}
    jobs = [(n, e, s) for n, e in zip(args.budgets, args.evaluations) for s in args.samplers]
    for steps, evaluations, sampler in tqdm(jobs, desc="grid searches"):
        x, space, cond = batches["calibration"]
        start = time.time()
        with torch.no_grad():
            found = optimise_grid(denoiser, x, process=process, steps=steps, sampler=sampler, orders=ORDERS.get(sampler),
                                  space=space, cond=cond, reference=references["calibration"], evaluations=evaluations)
        search_s = time.time() - start
        errors = {}
        grids = {"optimised": (torch.tensor(found.times, dtype=torch.float64), found.sampler_options)}
        for grid in FIXED:
            for order in ORDERS.get(sampler, (None,)):
                grids[grid if order is None else f"{grid} order {order}"] = (
                    library_grid(grid, process, steps), {} if order is None else {"order": order})
        with torch.no_grad():
            for batch_name, (xb, space_b, cond_b) in batches.items():
                for label, (ts, options) in grids.items():
                    out = SAMPLERS[sampler](denoiser, xb, ts, process=process, space=space_b, cond=cond_b, **options)
                    errors.setdefault(label, {})[batch_name] = rms_distance(out, references[batch_name], space_b)
        sigmas = process.scaled_sigma(torch.tensor(found.times[:-1], dtype=torch.float64)).tolist()
        result["budgets"].setdefault(str(steps), {})[sampler] = {
            "times": found.times, "scaled_sigmas": [round(s, 5) for s in sigmas],
            "sampler_options": found.sampler_options, "search_error": found.error,
            "search_start_errors": found.fixed_errors, "ode_error": errors, "sampler_runs": found.evaluations,
            "search_s": round(search_s, 1)}
        result["sampling_defaults"][sampler] = found.store(result["sampling_defaults"].get(sampler)
                                                           or {"guidance": model.sampling_defaults.get("guidance")})
        tqdm.write(f"{steps} NFE {sampler} {found.sampler_options}: held-out ODE error "
                   f"{errors['optimised']['heldout']:.4f}, best fixed "
                   f"{min(v['heldout'] for k, v in errors.items() if k != 'optimised'):.4f} ({search_s:.0f} s)")
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
