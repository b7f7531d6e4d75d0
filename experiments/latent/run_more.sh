#!/usr/bin/env bash
# The rest of issue #16's table, one chain per argument (run the chains side by side, each on one thread):
#   dit      the MNIST latent DiT with patch size 1 (49 tokens of the 4x7x7 latents) for 3,000 steps (1.46x the
#            pixel UNet's training cost at bench_cost.json's rates), then 500 samples unguided and with CFG 2;
#   dit_equal  the same for 2,050 steps: the pixel UNet's training cost;
#   plain    a plain autoencoder of the MNIST digits (kl_weight 0, posterior mean decoded; otherwise the KL
#            autoencoder's run), its reconstructions, the 1,450-step latent UNet on it, 500 samples each way;
#   fashion_dit  the dit_equal DiT on the Fashion autoencoder, scored as the fashion chain;
#   feature  Fashion-MNIST's autoencoder again with a feature (perceptual) loss from a second Fashion classifier,
#            its floor, and the latent UNet on it, scored as the fashion chain;
#   fashion  Fashion-MNIST: the pixel UNet with the MNIST recipe (1,100 steps) and the 1,450-step latent UNet
#            on runs/fashion_ae, 500 samples each way against 500 test images (the shipped Fashion-MNIST
#            classifier's features); the real / reconstructed rows: reconstruction_metrics.py --dataset fashion_mnist.
# From the repository root:
#   nohup bash experiments/latent/run_more.sh dit > experiments/latent/run_more_dit.log 2>&1 &
# A finished stage is skipped on rerun; an interrupted training resumes from its last.ckpt.
set -euo pipefail
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
E=experiments/latent
R=$E/runs

train() {  # run dir, overrides...
  local dir=$1; shift
  if [ ! -f "$dir/done" ]; then
    echo "train $dir: $(date -u +%H:%M:%S)"
    .venv/bin/sciffusion-train "$@" train.tensorboard=false hydra.run.dir="$dir"
    touch "$dir/done"
  fi
  cp "$dir/metrics.jsonl" "$E/$(basename "$dir")_metrics.jsonl"
}

score() {  # run dir, name, overrides...: 500 samples, Heun 20 steps, as section 2 scored the MNIST models
  local dir=$1 name=$2; shift 2
  if [ ! -f "$E/eval500/$name/metrics.json" ]; then
    echo "evaluate $name: $(date -u +%H:%M:%S)"
    .venv/bin/sciffusion-evaluate checkpoint="$dir/checkpoints/last.ckpt" num_samples=500 batch_size=100 \
      sampler=heun steps=20 out_dir="$E/eval500/$name" "$@"
  fi
}

case "${1:?name a chain: dit, dit_equal, plain, fashion, fashion_dit or feature}" in
  dit)
    train $R/mnist_latent_dit_p1 experiment=mnist_latent_dit network.dit.patch_size=1 train.steps=3000 \
      domain.autoencoder=$R/mnist_ae/checkpoints/last.ckpt
    score $R/mnist_latent_dit_p1 dit_p1_heun20_none guidance=none
    score $R/mnist_latent_dit_p1 dit_p1_heun20_cfg2 guidance=cfg guidance.scale=2.0
    ;;
  dit_equal)  # the same DiT for 2,050 steps: the pixel UNet's 1,100 steps' cost at bench_cost.json's rates
    train $R/mnist_latent_dit_p1_2050 experiment=mnist_latent_dit network.dit.patch_size=1 train.steps=2050 \
      domain.autoencoder=$R/mnist_ae/checkpoints/last.ckpt
    score $R/mnist_latent_dit_p1_2050 dit_p1_2050_heun20_none guidance=none
    score $R/mnist_latent_dit_p1_2050 dit_p1_2050_heun20_cfg2 guidance=cfg guidance.scale=2.0
    ;;
  plain)
    train $R/mnist_plain_ae experiment=mnist_latent_autoencoder loss.kl_weight=0 loss.sample_posterior=false
    [ -f $E/plain_autoencoder_test.json ] || .venv/bin/python -m sciffusion_domains.latent.evaluate \
      $R/mnist_plain_ae/checkpoints/last.ckpt > $E/plain_autoencoder_test.json
    train $R/mnist_plain_latent_unet experiment=mnist_latent_unet train.steps=1450 \
      domain.autoencoder=$R/mnist_plain_ae/checkpoints/last.ckpt
    score $R/mnist_plain_latent_unet plain_unet1450_heun20_none guidance=none
    score $R/mnist_plain_latent_unet plain_unet1450_heun20_cfg2 guidance=cfg guidance.scale=2.0
    ;;
  fashion)
    train $R/fashion_unet experiment=mnist_unet domain.dataset=fashion_mnist
    train $R/fashion_latent_unet experiment=mnist_latent_unet train.steps=1450 domain.base.dataset=fashion_mnist \
      domain.autoencoder=$R/fashion_ae/checkpoints/last.ckpt
    for model in fashion_unet fashion_latent_unet; do
      score $R/$model ${model}_heun20_none guidance=none reference_limit=500
      score $R/$model ${model}_heun20_cfg2 guidance=cfg guidance.scale=2.0 reference_limit=500
    done
    ;;
  fashion_dit)  # the latent DiT (patch 1) on the Fashion autoencoder at the pixel UNet's training cost
    train $R/fashion_latent_dit_p1 experiment=mnist_latent_dit network.dit.patch_size=1 train.steps=2050 \
      domain.base.dataset=fashion_mnist domain.autoencoder=$R/fashion_ae/checkpoints/last.ckpt
    score $R/fashion_latent_dit_p1 fashion_latent_dit_p1_heun20_none guidance=none reference_limit=500
    score $R/fashion_latent_dit_p1 fashion_latent_dit_p1_heun20_cfg2 guidance=cfg guidance.scale=2.0 reference_limit=500
    ;;
  feature)  # Fashion-MNIST autoencoder with a feature loss from a second classifier (seed 1: the metrics judge,
             # seed 0, is never trained against), then the same latent UNet and scores as the fashion chain
    C=$E/fashion_mnist_classifier_seed1.pt
    [ -f $C ] || .venv/bin/python -m sciffusion_domains.images.classifier --dataset fashion_mnist --seed 1 --out $C
    train $R/fashion_ae_feature experiment=mnist_latent_autoencoder domain.dataset=fashion_mnist train.steps=1200 \
      loss.feature_weight=1.0 "loss.features={_target_:sciffusion_domains.latent.features.ClassifierFeatures,source:$C}"
    [ -f $E/fashion_autoencoder_feature_test2000.json ] || .venv/bin/python -m sciffusion_domains.latent.evaluate \
      $R/fashion_ae_feature/checkpoints/last.ckpt --dataset fashion_mnist --limit 2000 \
      > $E/fashion_autoencoder_feature_test2000.json
    [ -f $E/fashion_feature_floor.json ] || .venv/bin/python $E/reconstruction_metrics.py --dataset fashion_mnist \
      --autoencoder $R/fashion_ae_feature/checkpoints/last.ckpt > $E/fashion_feature_floor.json
    train $R/fashion_feature_latent_unet experiment=mnist_latent_unet train.steps=1450 domain.base.dataset=fashion_mnist \
      domain.autoencoder=$R/fashion_ae_feature/checkpoints/last.ckpt
    score $R/fashion_feature_latent_unet fashion_feature_latent_unet_heun20_none guidance=none reference_limit=500
    score $R/fashion_feature_latent_unet fashion_feature_latent_unet_heun20_cfg2 guidance=cfg guidance.scale=2.0 \
      reference_limit=500
    ;;
  *) echo "unknown chain $1: dit, dit_equal, plain, fashion, fashion_dit or feature" >&2; exit 2 ;;
esac
echo "done: $(date -u +%H:%M:%S)"
