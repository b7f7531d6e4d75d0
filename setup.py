"""Maps the top-level ``domains/`` folder to the package ``sciffusion_domains`` (never a top-level
``domains`` module in site-packages) and the top-level ``conf/`` folder to ``sciffusion.conf`` so the
Hydra configs ship inside the installed package. Everything else lives in pyproject.toml."""
from setuptools import find_packages, setup

domain_packages = ["sciffusion_domains"] + [f"sciffusion_domains.{p}" for p in find_packages("domains")]
yaml = ["*.yaml", "**/*.yaml"]
shipped = ["**/weights/*.pt", "**/weights/*.ckpt"]  # metric classifiers and trained checkpoints
setup(
    packages=find_packages(include=["sciffusion", "sciffusion.*"]) + domain_packages + ["sciffusion.conf"],
    package_dir={"sciffusion_domains": "domains", "sciffusion.conf": "conf"},
    package_data={"sciffusion.conf": yaml, "sciffusion_domains": yaml + shipped},
    include_package_data=True,
)
