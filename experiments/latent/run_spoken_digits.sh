#!/usr/bin/env bash
# AudioLDM-style latent diffusion on the spoken digits (issue #16), end to end on one CPU thread:
#   1. the KL autoencoder of the spectrograms (experiment=spoken_digits_latent_autoencoder),
#   2. its reconstructions scored on the 500 test clips (held-out voices): PSNR of the log-mel dB
#      spectrograms and the shipped spoken-digit classifier's accuracy on reconstructions vs real clips,
#   3. the latent U-Net with the shipped pixel model's recipe (experiment=spoken_digits_latent_unet),
#   4. 500 samples scored as the pixel model was (experiments/audio/evaluate.sh): DPM-Solver++(2M),
#      25 steps on the Karras grid (the shipped spoken_digits defaults), random digits, against the 500
#      test clips; CFG 2 (the shipped default) and no guidance (scale 1).
# From the repository root:
#   nohup bash experiments/latent/run_spoken_digits.sh > experiments/latent/run_spoken_digits.log 2>&1 &
# Runs go to experiments/latent/runs/ (not committed); JSON results next to the log in experiments/latent/.
# A finished stage is skipped on rerun; an interrupted training resumes from its last.ckpt
# (train.resume=auto). AE_STEPS / LATENT_STEPS override the experiments' step counts.
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
E=experiments/latent
AE=$E/runs/spoken_ae
LATENT=$E/runs/spoken_latent_unet
steps() { [ -n "${1:-}" ] && echo "train.steps=$1" || true; }

if [ ! -f "$AE/done" ]; then
  echo "autoencoder: $(date -u +%H:%M:%S)"
  .venv/bin/sciffusion-train experiment=spoken_digits_latent_autoencoder train.tensorboard=false \
    $(steps "${AE_STEPS:-}") hydra.run.dir=$AE
  touch "$AE/done"
fi
cp "$AE/metrics.jsonl" "$E/spoken_autoencoder_metrics.jsonl"

if [ ! -f "$E/spoken_autoencoder_test.json" ]; then
  echo "autoencoder reconstructions: $(date -u +%H:%M:%S)"
  .venv/bin/python -m sciffusion_domains.latent.evaluate "$AE/checkpoints/last.ckpt" --split test \
    > "$E/spoken_autoencoder_test.json.part"
  mv "$E/spoken_autoencoder_test.json.part" "$E/spoken_autoencoder_test.json"
fi

if [ ! -f "$LATENT/done" ]; then
  echo "latent U-Net: $(date -u +%H:%M:%S)"
  .venv/bin/sciffusion-train experiment=spoken_digits_latent_unet domain.autoencoder="$AE/checkpoints/last.ckpt" \
    train.tensorboard=false $(steps "${LATENT_STEPS:-}") hydra.run.dir=$LATENT
  touch "$LATENT/done"
fi
cp "$LATENT/metrics.jsonl" "$E/spoken_latent_unet_metrics.jsonl"

score() {  # name, extra overrides: 500 samples as experiments/audio/evaluate.sh scored the pixel model
  local name=$1; shift
  if [ ! -f "$E/spoken_latent_unet_$name.json" ]; then
    echo "evaluate $name: $(date -u +%H:%M:%S)"
    .venv/bin/sciffusion-evaluate checkpoint="$LATENT/checkpoints/last.ckpt" num_samples=500 batch_size=100 \
      sampler=dpmpp_2m steps=25 grid=karras reference_split=test out_dir="$E/eval500/spoken_$name" "$@"
    cp "$E/eval500/spoken_$name/metrics.json" "$E/spoken_latent_unet_$name.json"
  fi
}
score cfg2 guidance=cfg guidance.scale=2.0
score cfg1 guidance=none
echo "done: $(date -u +%H:%M:%S)"
