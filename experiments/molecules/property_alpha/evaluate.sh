#!/usr/bin/env bash
# The MAE table of the "Property-conditioned generation" section of ../README.md (run from the
# repository root after train_predictors.sh and the qm9_alpha_cpu training run).
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-experiments/molecules/property_alpha}
PHI=${PHI:-domains/molecules/weights/qm9_alpha_phi_a.pt}
PSI=${PSI:-domains/molecules/weights/qm9_alpha_psi_b.pt}
CKPT=${CKPT:-domains/molecules/weights/qm9_alpha_cpu.ckpt}  # a copy of the run's checkpoints/last.ckpt
N=${N:-200}
SAMPLING="--num-samples $N --batch-size 100 --sampler ddpm --steps 100 --seed 0"
prop() { $PY -m sciffusion_domains.molecules.property "$@"; }
prop baselines --predictor "$PHI" --limit 10000 --out "$OUT/baselines.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 1 --out "$OUT/cfg1.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 0 --out "$OUT/dropped.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 0 --guidance-predictor "$PSI" \
    --guidance-scale 1 --guidance-std 2 --out "$OUT/psi_dropped.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 2 --out "$OUT/cfg2.json"
# guidance only at t <= 0.8 (chosen in tune.sh on other samples)
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 0 --guidance-predictor "$PSI" \
    --guidance-scale 1 --guidance-std 2 --guidance-t-max 0.8 --out "$OUT/psi_dropped_t08.json"
prop evaluate --predictor "$PHI" --checkpoint "$CKPT" $SAMPLING --cfg-scale 1 --guidance-predictor "$PSI" \
    --guidance-scale 1 --guidance-std 2 --guidance-t-max 0.8 --out "$OUT/psi_cond_t08.json"
prop table "$OUT"/baselines.json "$OUT"/dropped.json "$OUT"/cfg1.json "$OUT"/cfg2.json "$OUT"/psi_dropped.json \
    "$OUT"/psi_dropped_t08.json "$OUT"/psi_cond_t08.json | tee "$OUT/table.md"
