#!/usr/bin/env bash
# One short GPU session for the Moving-MNIST forecaster (#17): the CPU runs (16 channels, batch 8, 1-2
# steps/s) lose the given digits within a few frames, and the field trains such models for 10^5 steps and
# more. Here the best CPU recipe (8-frame windows, 4 given and held, Stable Video Diffusion's training
# noise levels; domains/video/README.md) at 4x the width (64 channels, ~5M parameters) and 4x the batch
# (32), bf16 autocast, for TRAIN_SECONDS; then the GPU tests, and the judge's scores of what it learnt.
# Brings back (under $OUT): forecaster.ckpt (EMA weights and config, for sampling; full Adam state would
# not fit the transfer), metrics.jsonl, train.log, scores.json / scores.md / frames.png (forecasts from pure
# noise) and scores_warm/ (forecasts started from the last frame, start_sigma 0.5), gpu_tests.log.
#
# Prepare here:  bash experiments/video/gpu/prepare.sh
# Run there:     device tool: run "bash experiments/video/gpu/session.sh" carrying .gpu   (about 10 min)
# On the CPU (a smoke test of the script itself): DEVICE=cpu TRAIN_SECONDS=60 TRAIN_STEPS=20 CHANNELS=16 HEAD_CHANNELS=16 \
#                BATCH=4 SAMPLES=4 OUT=/tmp/gpu_out bash experiments/video/gpu/session.sh
set -u
export PYTHONUNBUFFERED=1
REPO=$(pwd)
OUT=${OUT:-/tmp/gpu_out}
DEVICE=${DEVICE:-cuda}
TRAIN_SECONDS=${TRAIN_SECONDS:-360}  # so that the tests and both judges are expected within one 600 s call (their
                                     # timeouts sum to more: a cut call loses the warm-start scores, which come last)
TRAIN_STEPS=${TRAIN_STEPS:-8000}   # the cosine schedule's length; the timeout may stop the run before it
CHANNELS=${CHANNELS:-64}
HEAD_CHANNELS=${HEAD_CHANNELS:-32}
BATCH=${BATCH:-32}
SAMPLES=${SAMPLES:-64}
RUN=/tmp/md8_gpu
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

mkdir -p "$OUT" /tmp/site
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } > "$OUT/gpu_info.txt" 2>&1
tar xJf .gpu/video_pydeps.tar.xz -C /tmp/site || exit 1
bash experiments/gpu_site.sh /tmp/site || exit 1  # the package as its wheel installs it
export PYTHONPATH=/tmp/site
cd /tmp  # import the installed package (with its Hydra configs), not the source folder
python3 -c "import torch, sciffusion; print('torch', torch.__version__, torch.cuda.is_available())" >> "$OUT/gpu_info.txt" 2>&1
stamp "installed"

# 1. Training: the CPU recipe, wider and with a larger batch (precision bf16 on the GPU)
PRECISION=$([ "$DEVICE" = cuda ] && echo bf16 || echo fp32)
rm -rf "$RUN"
OMP_NUM_THREADS=4 timeout -s TERM "$TRAIN_SECONDS" python3 -m sciffusion.cli.train experiment=moving_digits_cpu \
    domain.frames=8 domain.given_frames=4 loss.cond_dropout=0.1 network.unet.context_fill=hold \
    network.unet.context_frames=4 'network.unet.temporal_levels=[0,1,2]' "+loss.time_options={p_mean:1.0,p_std:1.6}" \
    network.unet.channels="$CHANNELS" network.unet.head_channels="$HEAD_CHANNELS" train.batch_size="$BATCH" \
    train.precision="$PRECISION" train.device="$DEVICE" train.steps="$TRAIN_STEPS" train.save_every=250 \
    train.keep_every=0 train.num_workers=4 hydra.run.dir="$RUN" > "$OUT/train.log" 2>&1
stamp "training stopped (rc $?)"; grep -E "Error|error" "$OUT/train.log" | head -3; tail -n 1 "$RUN/metrics.jsonl"
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
python3 - "$RUN/checkpoints/last.ckpt" "$OUT/forecaster.ckpt" <<'PY'
import sys
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint
state = load_checkpoint(sys.argv[1])
save_checkpoint(for_sampling(state, half=False), sys.argv[2])
print("exported step", state["step"])
PY
stamp "exported"

# 2. The GPU tests (bf16 + compile training, sampler agreement with the CPU, equivariance, shipped models)
if [ "$DEVICE" = cuda ]; then
    timeout 150 python3 -m pytest -q -m gpu "$REPO/tests/test_gpu.py" -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
    tail -n 3 "$OUT/gpu_tests.log"; stamp "tests done"
fi

# 3. The judge's scores (the model samples on the device; 64 clips a row, Heun 20, 16 frames)
timeout 240 python3 "$REPO/experiments/video/evaluate_moving_digits.py" --checkpoint "$OUT/forecaster.ckpt" \
    --device "$DEVICE" --out "$OUT/scores" --samples "$SAMPLES" --reference 256 --steps 20 --frames 16 \
    > "$OUT/evaluate.log" 2>&1
stamp "evaluated (rc $?)"; tail -n 8 "$OUT/evaluate.log"

# 4. Forecasts started from the last frame at noise 0.5, one new frame a window (the best CPU setting)
timeout 120 python3 "$REPO/experiments/video/evaluate_moving_digits.py" --checkpoint "$OUT/forecaster.ckpt" \
    --device "$DEVICE" --out "$OUT/scores_warm" --samples "$SAMPLES" --reference 256 --steps 20 --frames 16 \
    --forecast-only --new-frames 1 --start-sigma 0.5 > "$OUT/evaluate_warm.log" 2>&1
stamp "evaluated warm starts (rc $?)"; tail -n 2 "$OUT/evaluate_warm.log"
