"""Real-data reference values for the README: the metrics of held-out real digits (the val split)
against the test split, at the sample counts used for the model, and bits/dim of test digits
through the probability-flow ODE (``sciffusion.likelihood``) under a checkpoint.

    python experiments/images/reference.py --num 100 [--checkpoint domains/images/weights/mnist_unet.ckpt --bpd 64]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch

import sciffusion
from sciffusion.guidance import DropCondition
from sciffusion.likelihood import log_likelihood
from sciffusion.space import DenseSpace
from sciffusion_domains.images.domain import ImagesDomain


def real_vs_real(num: int) -> dict[str, float]:
    domain = ImagesDomain(conditional=True)
    samples = domain.reference("val", limit=num)
    return domain.metrics(samples, domain.reference("test"))


def bits_per_dim(checkpoint: str, num: int, rtol: float) -> dict[str, float]:
    parts = sciffusion.load(checkpoint)  # EMA weights
    model = DropCondition(parts.denoiser)  # the unconditional model (null class)
    x, _ = parts.domain.dataset("test").tensors(num)
    start = time.time()
    result = log_likelihood(model, x, process=parts.process, rtol=rtol, atol=rtol, data_var=0.5 ** 2,
                            generator=torch.Generator().manual_seed(0), space=DenseSpace())
    bpd = result.bits_per_dim
    # x in [-1, 1] holds 8-bit pixels: a bin is 2/256 wide, so the discrete code length is the
    # continuous one plus log2(256 / 2) = 7 bits a dimension (uniform dequantisation bound not applied)
    return {"num": num, "bits_per_dim_continuous": bpd.mean().item(),
            "bits_per_dim_continuous_sem": (bpd.std() / math.sqrt(num)).item(),
            "bits_per_dim_8bit": bpd.mean().item() + 7.0, "nfe": result.nfe, "rtol": rtol,
            "seconds": time.time() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num", type=int, default=100)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--bpd", type=int, default=0, help="number of test digits for bits/dim (0: skip)")
    parser.add_argument("--rtol", type=float, default=1e-3)
    args = parser.parse_args()
    out = {"real_val_vs_test": real_vs_real(args.num)}
    if args.checkpoint and args.bpd:
        out["likelihood"] = bits_per_dim(args.checkpoint, args.bpd, args.rtol)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
