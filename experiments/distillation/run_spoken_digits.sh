#!/usr/bin/env bash
# Progressive distillation of the shipped spoken-digits model (experiment=spoken_digits_distill_progressive),
# 32 -> 16 -> 8 -> 4 -> 2 -> 1 DDIM steps, one run a round, each student the next round's teacher and
# initial weights. The first round distils classifier-free guidance 2 in; later teachers are already
# guided students (loss.teacher_guidance=null). From the repository root, one CPU thread:
#   nohup bash experiments/distillation/run_spoken_digits.sh > experiments/distillation/spoken_pd.log 2>&1 &
# Runs go to experiments/distillation/spoken_pd/ (not committed); a finished round is skipped on rerun.
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
R=experiments/distillation/spoken_pd
STEPS=${STEPS:-300}  # 500 planned; 300 a round fits a CPU session (0.3 steps/s)
prev=domains/audio/weights/spoken_digits.ckpt
guidance=2.0
for n in 32 16 8 4 2; do
  out=$R/pd_$((n / 2))
  if [ ! -f "$out/done" ]; then  # an interrupted round resumes from its last.ckpt (train.resume=auto)
    echo "round $n -> $((n / 2)) steps: $(date -u +%H:%M:%S)"
    .venv/bin/sciffusion-train experiment=spoken_digits_distill_progressive train.tensorboard=false \
      loss.teacher=$prev train.init_from=$prev loss.teacher_guidance=$guidance loss.teacher_steps=$n \
      sampling.steps=$((n / 2)) train.steps=$STEPS hydra.run.dir=$out
    touch "$out/done"
  fi
  prev=$out/checkpoints/last.ckpt
  guidance=null
done
echo "done: $(date -u +%H:%M:%S)"
