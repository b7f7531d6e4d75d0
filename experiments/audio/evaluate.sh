#!/usr/bin/env bash
# Scores the shipped spoken-digit checkpoint against the 500 held-out test clips (voices never heard
# in training): class-conditional samples (random digits) with classifier-free guidance at scales 1
# (none) and 2, and unconditional samples; DPM-Solver++(2M), 25 steps on the Karras grid.
# Then the real-data reference and the gap-filling / continuation scores.
# Usage (from the repository root): bash experiments/audio/evaluate.sh [NUM_SAMPLES] [CHECKPOINT]
set -euo pipefail
N=${1:-500}
CKPT=${2:-domains/audio/weights/spoken_digits.ckpt}
OUT=experiments/audio/eval
export OMP_NUM_THREADS=1
run() {  # name, extra overrides
  local name=$1; shift
  .venv/bin/sciffusion-evaluate checkpoint="$CKPT" num_samples="$N" batch_size=100 sampler=dpmpp_2m steps=25 \
    grid=karras reference_split=test out_dir="$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
# two streams, one CPU thread each
(run cfg2 guidance=cfg guidance.scale=2.0; run unconditional cond.unconditional=true) &
(run cfg1; .venv/bin/python experiments/audio/reference.py --num "$N" > experiments/audio/reference.json) &
wait
# gap filling and continuation, one stream each
for task in gap continue; do
  .venv/bin/python experiments/audio/edit_scores.py --checkpoint "$CKPT" --clips 50 --tasks "$task" \
    > "experiments/audio/edit_scores_$task.json" 2> "experiments/audio/edit_scores_$task.log" &
done
wait
