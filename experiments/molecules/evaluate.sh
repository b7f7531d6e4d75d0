#!/usr/bin/env bash
# Sample and score the shipped QM9 checkpoint at several step counts (the numbers in README.md).
# Run from the repository root: bash experiments/molecules/evaluate.sh
set -euo pipefail
CKPT=${CKPT:-domains/molecules/weights/qm9_cpu.ckpt}
N=${N:-300}
OUT=${OUT:-experiments/molecules/eval}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=PASSIVE
run() {  # name, then sampler options
  local name=$1; shift
  "${PYTHON:-python}" -m sciffusion.cli.evaluate checkpoint="$CKPT" num_samples="$N" batch_size=100 seed=0 grid=uniform_t \
    reference_split=test reference_limit=2000 out_dir="$OUT/$name" "$@"
}
run ddim_50 sampler=ddim steps=50
run ddim_100 sampler=ddim steps=100 save_samples=true
run ddim_250 sampler=ddim steps=250
run ddpm_250 sampler=ddpm steps=250
