#!/usr/bin/env bash
# Builds .gpu/ (git-ignored) for gpu_session.sh: what the GPU machine needs beside the working tree,
# within the device tool's 64 MiB transfer (the tree itself is ~34 MB). Run on the CPU machine from
# the repository root after the QM9 cache exists (any qm9_joint training builds it) and with the run's
# resumable checkpoint in place. Took ~40 s here.
set -euo pipefail
RUN=${1:-experiments/molecules/qm9_joint_cpu}
CACHE=${SCIFFUSION_CACHE:-$HOME/.cache/sciffusion}
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/cache/qm9
# The QM9 file with real atoms and counts for every molecule but positions only for the training split,
# no property targets and empty SMILES lines (training reads nothing else): 44 MB -> ~20 MB compressed.
.venv/bin/python - "$CACHE" <<'PY'
import sys
import torch
from sciffusion_domains.molecules.data import qm9_split
cache = sys.argv[1]
d = torch.load(f"{cache}/qm9/qm9_v1.pt", weights_only=True)
is_train = torch.zeros(len(d["counts"]), dtype=torch.bool)
is_train[qm9_split(len(d["counts"]))["train"]] = True
molecule = torch.repeat_interleave(torch.arange(len(d["counts"])), d["counts"].long())
pos = d["pos"].clone()
pos[~is_train[molecule]] = 0
torch.save({"pos": pos, "z": d["z"], "counts": d["counts"], "index": d["index"], "y": torch.zeros_like(d["y"])},
           ".gpu/cache/qm9/qm9_v1.pt")
lines = len(open(f"{cache}/qm9/qm9_v1_smiles.txt").read().splitlines())
open(".gpu/cache/qm9/qm9_v1_smiles.txt", "w").write("\n" * lines)
PY
cp "$CACHE/qm9/qm9_bonds_v1.pt" .gpu/cache/qm9/
cp "$RUN/checkpoints/last.ckpt" .gpu/last.ckpt
(cd .venv/lib/python3.11/site-packages && tar cf - --exclude=__pycache__ hydra omegaconf antlr4 hydra_core-*.dist-info \
    omegaconf-*.dist-info antlr4_python3_runtime-*.dist-info) | xz -9 > .gpu/pydeps.tar.xz
(cd .gpu && tar cf - cache last.ckpt | xz -T2 -6 > bundle.tar.xz && rm -rf cache last.ckpt)
ls -la .gpu
echo "tree + .gpu: $(( ( $( (git ls-files; git ls-files --others --exclude-standard) | sort -u | xargs -d '\n' du -cb | tail -1 | cut -f1) \
    + $(du -cb .gpu/* | tail -1 | cut -f1) ) / 1048576 )) MiB (the limit is 64)"
