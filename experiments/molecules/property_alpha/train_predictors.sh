#!/usr/bin/env bash
# The two property predictors of the "Property-conditioned generation" section of ../README.md, one
# after the other on one thread (run from the repository root):
#   phi: the evaluation predictor, trained on half a of QM9's training split (clean molecules);
#   psi: the noise-aware guidance predictor, trained on half b on x_t of the vp_cosine process.
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
PY=${PYTHON:-.venv/bin/python}
LOGS=experiments/molecules/property_alpha
$PY -m sciffusion_domains.molecules.property train --property alpha --half a --steps 1000 --max-minutes 14 \
    --batch-size 64 --lr 1e-3 --hidden 64 --layers 4 --out domains/molecules/weights/qm9_alpha_phi_a.pt \
    > $LOGS/train_phi_a.log 2>&1
$PY -m sciffusion_domains.molecules.property train --property alpha --half b --noise-aware --process vp_cosine \
    --steps 800 --max-minutes 12 --batch-size 64 --lr 1e-3 --hidden 64 --layers 4 \
    --out domains/molecules/weights/qm9_alpha_psi_b.pt > $LOGS/train_psi_b.log 2>&1
