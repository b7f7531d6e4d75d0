"""The README's results table from experiments/images/eval/*/metrics.json (markdown on stdout)."""
import json
from pathlib import Path

root = Path(__file__).parent / "eval"
nfe = {"heun": lambda k: 2 * k - 1, "euler": lambda k: k, "dpmpp_2m": lambda k: k}
print("| sampler | steps | NFE | guidance | fd | precision | recall | IS | acc |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ("heun", "euler", "dpmpp_2m"):
    for run in sorted(root.glob(f"{name}_*/metrics.json"), key=lambda p: (len(p.parent.name), p.parent.name)):
        r = json.loads(run.read_text())
        if r["sampler"] != name:
            continue
        m = r["metrics"]
        tag = run.parent.name.rsplit("_", 1)[-1]  # S_K (CFG 2), S_K_nocfg, S_K_cfgX
        cfg = "none" if tag == "nocfg" else f"CFG {tag[3:]}" if tag.startswith("cfg") else "CFG 2"
        print(f"| {name} | {r['steps']} | {nfe[name](r['steps'])} | {cfg} | {m['fd']:.2f} | {m['precision']:.2f} | "
              f"{m['recall']:.2f} | {m['inception_score']:.2f} | {m['class_accuracy']:.2f} |")
