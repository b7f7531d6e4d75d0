#!/usr/bin/env bash
# Inverse problems with the shipped checkpoint on held-out test digits (from the repository root):
# inpainting of the central 14x14 box, 4x super-resolution (7x7 -> 28x28) and denoising (sigma 0.5).
set -euo pipefail
CKPT=${1:-domains/images/weights/mnist_unet.ckpt}
OUT=experiments/images/inverse
export OMP_NUM_THREADS=1
S=".venv/bin/sciffusion-sample checkpoint=$CKPT num_samples=8 batch_size=8 sampler=heun steps=32"
$S guidance=inpaint guidance.input=experiments/images/inputs/test_0_label5.png guidance.mask=center out_dir=$OUT/inpaint
$S guidance=superres guidance.input=experiments/images/inputs/test_1_label9.png guidance.factor=4 guidance.noise_std=0.05 \
   out_dir=$OUT/superres
$S guidance=denoise guidance.input=experiments/images/inputs/test_2_label4.png guidance.noise_std=0.5 out_dir=$OUT/denoise
