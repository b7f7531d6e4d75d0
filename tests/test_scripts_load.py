"""Experiment and helper scripts that sample or evaluate a checkpoint load it with ``sciffusion.load``
(domain state, EMA weights, process, config in one call), not with a copy of that code. Only scripts
that rewrite checkpoints (shipping, adding sampling defaults) read the raw file."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _called(path: Path) -> set[str]:
    """Names of the functions ``path`` calls (``f(...)`` and ``module.f(...)``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def test_scripts_that_only_read_checkpoints_use_sciffusion_load():
    scripts = [p for folder in ("experiments", "scripts", "benchmarks") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(scripts) > 10
    own_loaders = [str(p.relative_to(ROOT)) for p in scripts
                   if "load_checkpoint" in (calls := _called(p)) and "save_checkpoint" not in calls]
    assert own_loaders == [], "load these checkpoints with sciffusion.load"
