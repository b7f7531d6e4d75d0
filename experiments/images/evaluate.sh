#!/usr/bin/env bash
# Scores the shipped checkpoint for three samplers at 10, 20 and 50 steps: class-conditional samples
# (labels 0-9 in turn) with classifier-free guidance (scale 2), against the 500 held-out test digits.
# save_samples=true also writes the PNGs and figure.png of each run (only metrics.json and one figure are committed).
# Usage (from the repository root): bash experiments/images/evaluate.sh [NUM_SAMPLES] [CHECKPOINT]
set -euo pipefail
N=${1:-100}
CKPT=${2:-domains/images/weights/mnist_unet.ckpt}
OUT=experiments/images/eval
export OMP_NUM_THREADS=1
run() {  # sampler steps
  .venv/bin/sciffusion-evaluate checkpoint="$CKPT" num_samples="$N" batch_size="$N" sampler="$1" steps="$2" \
    guidance=cfg guidance.scale=2.0 reference_split=test save_samples=true out_dir="$OUT/$1_$2" > "$OUT/$1_$2.log" 2>&1
}
mkdir -p "$OUT"
# two streams, one CPU thread each
(for s in 10 20 50; do run heun "$s"; done; run euler 50) &
(for s in 10 20; do run euler "$s"; done; for s in 10 20 50; do run dpmpp_2m "$s"; done) &
wait
