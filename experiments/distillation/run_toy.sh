#!/usr/bin/env bash
# Teachers and students of the toy distillation table (README.md), from the repository root:
#   bash experiments/distillation/run_toy.sh && python experiments/distillation/measure.py
# About 6 minutes on one CPU thread. Runs go to experiments/distillation/runs/ (not committed).
set -euo pipefail
export OMP_NUM_THREADS=1
R=experiments/distillation/runs
Q="train.progress=false train.tensorboard=false"
T="$Q train.steps=4000 train.log_every=500 train.save_every=4000"
# teachers: the default toy config (vp_cosine, v), EDM (toy_edm) and flow matching (toy_flow)
sciffusion-train $T hydra.run.dir=$R/teacher_vp
sciffusion-train experiment=toy_edm $T hydra.run.dir=$R/teacher_edm
sciffusion-train experiment=toy_flow $T hydra.run.dir=$R/teacher_flow
# progressive distillation: 32 -> 16 -> 8 -> 4 -> 2 -> 1 DDIM steps, one run a round
prev=$R/teacher_vp/checkpoints/last.ckpt
for n in 32 16 8 4 2; do
  sciffusion-train experiment=toy_distill_progressive $Q loss.teacher=$prev train.init_from=$prev \
    loss.teacher_steps=$n sampling.steps=$((n / 2)) hydra.run.dir=$R/pd_$((n / 2))
  prev=$R/pd_$((n / 2))/checkpoints/last.ckpt
done
# consistency distillation and easy consistency tuning from the EDM teacher, reflow from the flow teacher
edm=$R/teacher_edm/checkpoints/last.ckpt
flow=$R/teacher_flow/checkpoints/last.ckpt
sciffusion-train experiment=toy_distill_consistency $Q loss.teacher=$edm train.init_from=$edm hydra.run.dir=$R/cd
sciffusion-train experiment=toy_distill_ect $Q train.init_from=$edm hydra.run.dir=$R/ect
sciffusion-train experiment=toy_distill_reflow $Q loss.teacher=$flow train.init_from=$flow hydra.run.dir=$R/reflow
