"""Print the Markdown table of README.md from eval/<sampler>/<name>/metrics.json (run.sh's output).

    .venv/bin/python experiments/molecules/fragment/summarise.py
"""
import json
from pathlib import Path

HERE = Path(__file__).parent
COLUMNS = [("atom_stability", "atom stab."), ("molecule_stability", "mol. stab."), ("validity", "validity"),
           ("connectivity", "connected"), ("validity_perceived", "RDKit-perceived validity"),
           ("uniqueness", "uniqueness")]
NAMES = {"free": "unconstrained", "benzene": "benzene ring fixed (6 C)", "acetoxy": "C-C(=O)-O fixed (4 atoms)"}

for sampler_dir in sorted((HERE / "eval").iterdir()):
    print(f"\n{sampler_dir.name.replace('_', ', ')} steps\n")
    print("| atoms | constraint | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    runs = sorted(sampler_dir.glob("*/metrics.json"),
                  key=lambda p: (int(p.parent.name.rsplit("_", 1)[1]), list(NAMES).index(p.parent.name.rsplit("_", 1)[0])))
    for path in runs:
        kind, n = path.parent.name.rsplit("_", 1)
        m = json.loads(path.read_text())["metrics"]
        print(f"| {n} | {NAMES[kind]} | " + " | ".join(f"{100 * m[key]:.0f}" for key, _ in COLUMNS) + " |")

# Of the saved runs (15 atoms): valid molecules whose largest fragment contains the fixed pattern.
import csv  # noqa: E402

from rdkit import Chem, RDLogger  # noqa: E402

RDLogger.DisableLog("rdApp.*")
PATTERNS = {"benzene": "[#6]1~[#6]~[#6]~[#6]~[#6]~[#6]~1", "acetoxy": "[#6]~[#6](~[#8])~[#8]"}
print("\nValid molecules (largest fragment) containing a six-carbon ring / a C-C(O)O group, % of all 100:\n")
print("| run | six-carbon ring | C-C(O)O |")
print("|---|---|---|")
for table in sorted((HERE / "eval").glob("*/*/samples.csv")):
    rows = list(csv.DictReader(open(table)))
    mols = [Chem.MolFromSmiles(r["smiles"]) for r in rows if r["valid"] == "1"]
    hits = [sum(m is not None and m.HasSubstructMatch(Chem.MolFromSmarts(p)) for m in mols) for p in PATTERNS.values()]
    print(f"| {table.parent.parent.name} {table.parent.name} | " + " | ".join(f"{100 * h / len(rows):.0f}" for h in hits) + " |")
