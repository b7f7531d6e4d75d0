#!/usr/bin/env bash
# One short GPU session (the device tool's H200, 15 minutes in all): the GPU tests, then the qm9_joint
# run continued from its latest checkpoint for TRAIN_SECONDS, then molecules sampled from the new and the
# shipped checkpoints at 20-500 steps for scoring on the CPU machine (score_file.py: RDKit lives there).
#
# Prepared on the CPU machine by gpu_prepare.sh in .gpu/ (git-ignored, carried):
#   bundle.tar.xz  cache/qm9/{qm9_v1.pt, qm9_v1_smiles.txt, qm9_bonds_v1.pt} and last.ckpt (the run's
#                  resumable checkpoint). To fit the 64 MiB transfer, the QM9 file keeps real atoms and
#                  counts for all molecules but real positions only for the 100,000 training molecules,
#                  and no property targets or SMILES: training reads nothing else (no sampling during
#                  training, no conditioning). Bonds are the full cached set.
#   pydeps.tar.xz  hydra-core, omegaconf and antlr4 (pure Python; the GPU image lacks them).
# Run there from the repository root (python3 3.11+ with torch, torch-geometric, e3nn):  bash experiments/molecules/joint/gpu_session.sh
set -u
export PYTHONUNBUFFERED=1
REPO=$(pwd)
OUT=${OUT:-/tmp/gpu_out}
TRAIN_SECONDS=${TRAIN_SECONDS:-420}
RUN=$REPO/experiments/molecules/qm9_joint_cpu
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }

mkdir -p "$OUT" /tmp/site /tmp/data
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } > "$OUT/gpu_info.txt" 2>&1
tar xJf .gpu/pydeps.tar.xz -C /tmp/site && tar xJf .gpu/bundle.tar.xz -C /tmp/data || exit 1
bash experiments/gpu_site.sh /tmp/site || exit 1  # the package as its wheel installs it
export PYTHONPATH=/tmp/site SCIFFUSION_CACHE=/tmp/data/cache
cd /tmp  # import the installed package (with its Hydra configs), not the source folder
python3 -c "import torch, sciffusion; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/gpu_info.txt" 2>&1
stamp "installed"

# 1. The GPU tests (bf16 + compile training, sampler agreement with the CPU, equivariance, shipped models)
timeout 240 python3 -m pytest -q -m gpu "$REPO/tests/test_gpu.py" -p no:cacheprovider > "$OUT/gpu_tests.log" 2>&1
tail -3 "$OUT/gpu_tests.log"
stamp "tests done"

# 2. The qm9_joint run, resumed exactly in its own folder (same config; the device is train.device=auto)
mkdir -p "$RUN/checkpoints" && cp /tmp/data/last.ckpt "$RUN/checkpoints/last.ckpt"
OMP_NUM_THREADS=4 timeout -s TERM "$TRAIN_SECONDS" python3 -m sciffusion.cli.train experiment=qm9_joint_cpu \
    hydra.run.dir="$RUN" train.num_workers=6 > "$OUT/train.log" 2>&1
stamp "training stopped (rc $?)"; grep -E "resuming|Error" "$OUT/train.log" | head -3; tail -2 "$RUN/metrics.jsonl"
cp "$RUN/checkpoints/last.ckpt" "$OUT/last.ckpt"; cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"

# 3. Molecules for the quality-vs-steps table: the continued run and the shipped step-21,500 checkpoint
timeout 100 python3 "$REPO/experiments/molecules/joint/sample_to_file.py" "$RUN/checkpoints/last.ckpt" "$OUT/samples_new.pt" ${SAMPLE_ARGS:-}
timeout 100 python3 "$REPO/experiments/molecules/joint/sample_to_file.py" "$REPO/domains/molecules/weights/qm9_joint_cpu.ckpt" \
    "$OUT/samples_shipped.pt" ${SAMPLE_ARGS:-}
stamp "all done"
