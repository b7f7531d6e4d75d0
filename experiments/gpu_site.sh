#!/usr/bin/env bash
# Lays out the sciffusion package in SITE (default /tmp/site) as its wheel installs it (setup.py's
# package_dir: sciffusion with its conf/, sciffusion_domains), entry points included, on a machine with
# torch but no build tools and no network: the device tool's GPU machine. Run from the repository root;
# then PYTHONPATH=SITE imports it. Used by the GPU session scripts (experiments/*/gpu*/).
set -eu
SITE=${1:-/tmp/site}
mkdir -p "$SITE"
rm -rf "$SITE/sciffusion" "$SITE/sciffusion_domains"
cp -r sciffusion "$SITE/sciffusion" && cp -r conf "$SITE/sciffusion/conf" && cp -r domains "$SITE/sciffusion_domains"
python3 - "$SITE" <<'PY'
import pathlib, sys, tomllib
project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]
info = pathlib.Path(sys.argv[1]) / f"sciffusion-{project['version']}.dist-info"
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sciffusion\nVersion: {project['version']}\n")
groups = {"console_scripts": project["scripts"], **project["entry-points"]}
(info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                                               for g, eps in groups.items()))
PY
