"""Hydra configs of the sciffusion apps, installed as ``sciffusion.conf`` (see setup.py)."""
