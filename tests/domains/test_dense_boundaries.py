"""The audio and weather domains build on ``sciffusion_domains.dense`` only: neither imports the
images domain, at module level or inside a function, so a plugin can copy either as a template."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sciffusion_domains

DOMAINS = Path(sciffusion_domains.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, relative imports resolved against its package."""
    package = ["sciffusion_domains", *path.parent.relative_to(DOMAINS).parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("domain", ["audio", "weather"])
def test_domain_sources_never_import_images(domain):
    offending = {f"{path.relative_to(DOMAINS)}: {name}" for path in (DOMAINS / domain).rglob("*.py")
                 for name in _imported_modules(path) if name.startswith("sciffusion_domains.images")}
    assert not offending, sorted(offending)


def test_relative_imports_are_resolved():
    names = _imported_modules(DOMAINS / "images" / "metrics.py")
    assert "sciffusion_domains.images.classifier" in names


def test_loading_and_judging_audio_leaves_images_unimported():
    code = ("import sys\n"
            "import sciffusion_domains.audio.domain as d, sciffusion_domains.audio.classifier\n"
            "import sciffusion_domains.audio.inverse, sciffusion_domains.weather.domain\n"
            "d.AudioDomain().classifier()\n"
            "print(sorted(m for m in sys.modules if m.startswith('sciffusion_domains.images')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
