#!/usr/bin/env bash
# Scores the progressively distilled spoken-digit students (run_spoken_digits.sh) beside their teacher:
# 500 samples a row (random digits) against the 500 held-out test clips, the audio domain's classifier
# features, as experiments/audio/evaluate.sh scores the teacher. Each student samples with the step count
# it was trained for (pd_N: N DDIM steps, uniform_t), without guidance (CFG 2 is distilled in).
# Usage (from the repository root): bash experiments/distillation/spoken_digits_eval.sh [NUM_SAMPLES]
set -euo pipefail
N=${1:-500}
R=experiments/distillation/spoken_pd
OUT=$R/eval
TEACHER=domains/audio/weights/spoken_digits.ckpt
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
run() {  # name, checkpoint, extra overrides
  local name=$1 ckpt=$2; shift 2
  [ -f "$OUT/$name/metrics.json" ] && return 0
  .venv/bin/sciffusion-evaluate checkpoint="$ckpt" num_samples="$N" batch_size=100 reference_split=test \
    out_dir="$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
}
for s in 1 2 4 8; do
  [ -f "$R/pd_$s/done" ] && run "student_$s" "$R/pd_$s/checkpoints/last.ckpt" sampler=ddim grid=uniform_t steps=$s
done
# the teacher with the students' sampler and steps, and with its own (DPM-Solver++(2M), Karras) at few steps
for s in 1 2 4; do run "teacher_ddim_$s" $TEACHER guidance=cfg guidance.scale=2.0 sampler=ddim grid=uniform_t steps=$s; done
for s in 2 4; do run "teacher_dpmpp_2m_$s" $TEACHER guidance=cfg guidance.scale=2.0 sampler=dpmpp_2m grid=karras steps=$s; done
# Its default (25 steps) is experiments/audio/eval/cfg2 (experiments/audio/evaluate.sh: the same command
# at steps=25, the same seed); not rerun here, as it costs 50 network evaluations of batch 100 a chunk.
