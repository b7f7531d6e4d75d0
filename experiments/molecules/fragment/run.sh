#!/usr/bin/env bash
# Fragment-constrained vs unconstrained sampling of the shipped QM9 checkpoint at fixed atom counts
# (the numbers in README.md here). Run from the repository root:
#   PYTHON=.venv/bin/python bash experiments/molecules/fragment/run.sh
set -euo pipefail
CKPT=${CKPT:-domains/molecules/weights/qm9_cpu.ckpt}
N=${N:-100}
HERE=experiments/molecules/fragment
OUT=${OUT:-$HERE/eval}
SAMPLERS=${SAMPLERS:-"ddim:100 ddpm:250"}
SIZES=${SIZES:-"12 15 18"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=PASSIVE
run() {  # name, then overrides
  local name=$1; shift
  [ -f "$OUT/$name/metrics.json" ] && return 0
  "${PYTHON:-python}" -m sciffusion.cli.evaluate checkpoint="$CKPT" num_samples="$N" batch_size=100 seed=0 \
    grid=uniform_t reference_split=test reference_limit=2000 out_dir="$OUT/$name" "$@"
}
for spec in $SAMPLERS; do
  sampler=${spec%%:*}; steps=${spec##*:}
  for n in $SIZES; do
    save=false; [ "$n" = 15 ] && save=true
    run "${sampler}_${steps}/free_$n" sampler="$sampler" steps="$steps" cond.num_atoms="$n" save_samples=$save
    for frag in benzene acetoxy; do
      run "${sampler}_${steps}/${frag}_$n" sampler="$sampler" steps="$steps" cond.num_atoms="$n" \
        guidance=fragment guidance.fragment="$HERE/$frag.xyz" save_samples=$save
    done
  done
done
