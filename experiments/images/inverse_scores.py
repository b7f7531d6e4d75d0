"""Consistency of the inverse-problem runs of inverse.sh with their observations (printed as JSON):
inpainting: error on the known pixels; super-resolution: rms of A(sample) - y; denoising: rms of
the samples and of the observation to the clean input. Pixels are read back from the PNGs."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sciffusion_domains.images import data
from sciffusion_domains.images.inverse import center_mask, downsample

root = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/images/inverse")


def load(folder: Path):
    samples = torch.stack([data.read_png(p) for p in sorted(folder.glob("sample_*.png"))])
    return samples, data.read_png(folder / "input.png"), torch.from_numpy(np.load(folder / "observation.npy"))


out = {}
s, x, y = load(root / "inpaint")
known = ~center_mask(28, 28)[0]
out["inpaint"] = {"known_max_abs_error": (s - x)[:, known].abs().max().item(),
                  "missing_rms_to_input": (s - x)[:, ~known].pow(2).mean().sqrt().item()}
s, x, y = load(root / "superres")
out["superres_x4"] = {"rms_A_sample_minus_y": (downsample(s, 4) - y).pow(2).mean().sqrt().item(), "noise_std": 0.05,
                      "rms_to_input": (s - x).pow(2).mean().sqrt().item()}
s, x, y = load(root / "denoise")
out["denoise"] = {"rms_samples_to_input": (s - x).pow(2).mean().sqrt().item(),
                  "rms_observation_to_input": (y - x).pow(2).mean().sqrt().item(), "noise_std": 0.5}
print(json.dumps(out, indent=2))
