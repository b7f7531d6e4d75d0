#!/usr/bin/env bash
# experiments/images/inverse.sh on a latent checkpoint, through the decoder (guidance=decoded_*): the same
# three held-out digits, problems and sampler; scored with experiments/images/inverse_scores.py.
#   bash experiments/latent/inverse.sh experiments/latent/runs/mnist_latent_unet/checkpoints/last.ckpt
#   python experiments/images/inverse_scores.py experiments/latent/inverse > experiments/latent/inverse_scores.json
set -euo pipefail
CKPT=${1:?the latent checkpoint}
OUT=experiments/latent/inverse
IN=experiments/images/inputs
export OMP_NUM_THREADS=1
S=".venv/bin/sciffusion-sample checkpoint=$CKPT num_samples=8 batch_size=8 sampler=heun steps=32 progress=false"
$S guidance=decoded_inpaint guidance.input=$IN/test_0_label5.png guidance.mask=center out_dir=$OUT/inpaint
$S guidance=decoded_superres guidance.input=$IN/test_1_label9.png guidance.factor=4 guidance.noise_std=0.05 \
   out_dir=$OUT/superres
$S guidance=decoded_denoise guidance.input=$IN/test_2_label4.png guidance.noise_std=0.5 out_dir=$OUT/denoise
