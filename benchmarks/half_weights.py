"""What storing a shipped checkpoint's weights in float16 (``training.half_weights``) does to its samples.

For each shipped model: its file size with float32 and with float16 weights (the latent models' embedded
autoencoder too), and how far samples move when the weights are rounded to float16 and back, everything
else equal (same seed, the checkpoint's default sampler settings, ``--samples`` samples):

    relative change   ||x16 - x32|| / ||x32|| over the float parts of the raw samples (positions, pixels,
                      latents, spectrograms); a chaotic sampler amplifies a tiny change in the network
    flipped           the share of categorical entries (atom types, charges, bonds) that differ

    python benchmarks/half_weights.py [--samples 8] [--names qm9_joint turbulence old/qm9_joint_cpu.ckpt]

Run it on float32 files, those of commit dddf7b2 (``git show dddf7b2:domains/molecules/weights/
qm9_joint_cpu.ckpt > /tmp/qm9_joint_cpu.ckpt``, then ``--names /tmp/qm9_joint_cpu.ckpt``; a copy keeps
its shipped file name, which says which conditions it samples with); on files already stored in float16
the round trip changes nothing and every row reads 0. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import torch

import sciffusion
from sciffusion import shipped
from sciffusion.training import for_sampling


def halved_size(model, path) -> tuple[int, int]:
    """(bytes as stored, bytes of the same sampling checkpoint with float16 weights and autoencoder)."""
    weights = model.denoiser.state_dict()
    state = {"step": model.step, "config": model.config, "domain": model.domain.state_dict(),
             "sampling_defaults": model.sampling_defaults,
             "ema": {"decay": 0.0, "num_updates": 0, "module": weights}}
    slim = for_sampling(state, half=True)
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    return path.stat().st_size, buffer.tell()


@torch.no_grad()
def round_trip(module: torch.nn.Module) -> None:
    """Every float32 parameter and buffer rounded to float16 and back, in place."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.dtype == torch.float32:
            tensor.copy_(tensor.to(torch.float16).float())


def free_cond(name: str) -> dict:
    """What ``name`` (a shipped name, or a checkpoint file named as a shipped one: a float32 copy) needs to
    sample with no input (``Shipped.free_cond``: forecasters draw free clips here)."""
    entry = shipped.lookup(name) or next((e for e in shipped.SHIPPED.values() if Path(name).name == e.file), None)
    return entry.free_cond if entry is not None else {}


def parts(x) -> dict[str, torch.Tensor]:
    return dict(x) if isinstance(x, dict) else {"x": x}


def compare(name: str, samples: int) -> dict:
    exact, rounded = sciffusion.load(name), sciffusion.load(name)
    before, after = halved_size(exact, Path(exact.source))
    round_trip(rounded.denoiser)
    autoencoder = getattr(rounded.domain, "autoencoder", None)
    if isinstance(autoencoder, torch.nn.Module):  # a latent model decodes with it
        round_trip(autoencoder)
    settings = exact.settings()
    out = []
    for model in (exact, rounded):
        torch.manual_seed(0)
        out.append(model.draw(samples, settings, cond=free_cond(name), seed=0, batch_size=samples, progress=False))
    num = den = 0.0
    flipped = total = 0
    for a, b in zip(*out):
        pa, pb = parts(a.x), parts(b.x)
        for key in pa:
            if pa[key].is_floating_point():
                num += float((pa[key].double() - pb[key].double()).pow(2).sum())
                den += float(pa[key].double().pow(2).sum())
            else:
                flipped += int((pa[key] != pb[key]).sum())
                total += pa[key].numel()
    return {"before": before, "after": after, "relative": (num / den) ** 0.5 if den else float("nan"),
            "flipped": flipped / total if total else None, "settings": f"{settings.sampler} {settings.steps}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--names", nargs="*", help="shipped names or checkpoint files (default: every shipped model present)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.names or [n for n in sorted(shipped.SHIPPED) if shipped.SHIPPED[n].path() is not None]
    print(f"{args.samples} samples a model, seed 0, the checkpoint's default settings\n")
    print("| model | file (MB) | float16 (MB) | relative change of the samples | categorical entries flipped | sampler, steps | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        tick = time.time()
        result = compare(name, args.samples)
        before, after = result["before"], result["after"]
        flipped = "-" if result["flipped"] is None else f"{result['flipped']:.4f}"
        print(f"| {name} | {before / 1e6:.2f} | {after / 1e6:.2f} | {result['relative']:.2e} | {flipped} | "
              f"{result['settings']} | {time.time() - tick:.0f} |", flush=True)


if __name__ == "__main__":
    main()
