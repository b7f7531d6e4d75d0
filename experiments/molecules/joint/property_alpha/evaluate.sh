#!/usr/bin/env bash
# EDM's property-conditioning table for the joint model (experiment=qm9_joint_alpha_cpu), with the
# same evaluation predictor phi (trained on half a), the same requested values (seed 0, drawn from half
# b) and the same sampler as the EGNN table of experiments/molecules/README.md, so the rows compare.
# Run from the repository root after the qm9_joint_alpha_cpu training run.
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/molecules/joint/property_alpha}
PHI=${PHI:-domains/molecules/weights/qm9_alpha_phi_a.pt}
CKPT=${CKPT:-domains/molecules/weights/qm9_joint_alpha_cpu.ckpt}
N=${N:-200}
SAMPLING="--num-samples $N --batch-size 100 --sampler ddpm --steps 100 --seed 0"
prop() { $PY -m sciffusion_domains.molecules.property "$@"; }
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 1 --out "$OUT/cfg1.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 0 --out "$OUT/dropped.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 2 --out "$OUT/cfg2.json"
# the baselines (U-bound, #Atoms, L-bound) are phi's, shared with the EGNN table
prop table experiments/molecules/property_alpha/baselines.json "$OUT"/dropped.json "$OUT"/cfg1.json \
    "$OUT"/cfg2.json | tee "$OUT/table.md"
