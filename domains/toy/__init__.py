"""The toy domain: a 2-D Gaussian mixture with an exact target, and the reference minimal plugin."""
from .domain import ToyDomain
from .network import ToyMLP

__all__ = ["ToyDomain", "ToyMLP"]
