"""Maps the top-level ``domains/`` folder to the package ``sciffusion_domains`` (never a top-level
``domains`` module in site-packages). Everything else lives in pyproject.toml."""
from setuptools import find_packages, setup

domain_packages = ["sciffusion_domains"] + [f"sciffusion_domains.{p}" for p in find_packages("domains")]
setup(
    packages=find_packages(include=["sciffusion", "sciffusion.*"]) + domain_packages,
    package_dir={"sciffusion_domains": "domains"},
    include_package_data=True,
)
