"""Ship a trained model as one of ``sciffusion.shipped``'s checkpoints: the run's checkpoint reduced to
what sampling needs (``training.for_sampling``: EMA weights, config, domain state), with its domain
state completed as for the other shipped checkpoints (it samples without the data) and the measured
sampling settings of ``sciffusion.shipped.SHIPPED[NAME]``. From the repository root:

    python experiments/ship.py NAME RUN/checkpoints/last.ckpt [--clear domain.autoencoder] [--fp32]

writes ``domains/<package>/weights/<file>`` of that entry, its weights stored in float16 (half the file;
loading casts them back to float32; what that changes in the samples: ``benchmarks/half_weights.py``)
unless ``--fp32``. ``--clear KEY`` sets a config entry that
names a file on the training machine to null (a latent model's ``domain.autoencoder``: the
autoencoder is embedded in the domain state, and a dangling path would only mislead a reader).
Names shipped this way: hadisst_forecast_2step, spoken_digits_2step, digits_latent, spoken_digits_latent,
turbulence_interpolate, turbulence_viscosity.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

from sciffusion import shipped
from sciffusion.cli import build
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint


def ship(name: str, checkpoint: str, *, clear: tuple[str, ...] = (), half: bool = True) -> Path:
    entry = shipped.SHIPPED[name]
    target = Path("domains") / entry.package / "weights" / entry.file
    state = load_checkpoint(checkpoint)
    domain = build.build_domain(state["config"])
    domain.load_state_dict(state.get("domain", {}))  # checks it (a latent model: its autoencoder against the base)
    config = copy.deepcopy(state["config"])
    for key in clear:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        if last not in node:
            raise KeyError(f"--clear {key}: the run's config has no such entry")
        node[last] = None
    state = dict(state, config=config, domain=domain.state_dict(),
                 sampling_defaults=dict(entry.best, measured=entry.measured))
    save_checkpoint(for_sampling(state, half=half), target)
    print(f"{name}: step {state['step']} -> {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=shipped.names())
    parser.add_argument("checkpoint")
    parser.add_argument("--clear", action="append", default=[], help="a config entry to set to null (dotted key)")
    parser.add_argument("--fp32", action="store_true", help="store the weights in float32 (twice the file)")
    args = parser.parse_args()
    ship(args.name, args.checkpoint, clear=tuple(args.clear), half=not args.fp32)


if __name__ == "__main__":
    main()
