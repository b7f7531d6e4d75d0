#!/usr/bin/env bash
# Choosing the predictor-guidance settings on other samples (seed 1, 100 molecules) than the table's
# (seed 0, 200 molecules). Run from the repository root.
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-.venv/bin/python}
OUT=experiments/molecules/property_alpha/tune
PHI=domains/molecules/weights/qm9_alpha_phi_a.pt
PSI=domains/molecules/weights/qm9_alpha_psi_b.pt
CKPT=${CKPT:-domains/molecules/weights/qm9_alpha_cpu.ckpt}  # a copy of the run's checkpoints/last.ckpt
S="--num-samples 100 --batch-size 100 --sampler ddpm --steps 100 --seed 1"
ev() { local name=$1; shift; $PY -m sciffusion_domains.molecules.property evaluate --predictor $PHI --checkpoint $CKPT $S "$@" --out $OUT/$name.json > /dev/null; }
ev cfg1 --cfg-scale 1
ev dropped --cfg-scale 0
ev drop_s2_t08 --cfg-scale 0 --guidance-predictor $PSI --guidance-std 2 --guidance-t-max 0.8
ev drop_s2_t05 --cfg-scale 0 --guidance-predictor $PSI --guidance-std 2 --guidance-t-max 0.5
ev drop_s5_t1 --cfg-scale 0 --guidance-predictor $PSI --guidance-std 5
ev cond_s2_t08 --cfg-scale 1 --guidance-predictor $PSI --guidance-std 2 --guidance-t-max 0.8
