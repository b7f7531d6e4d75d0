"""sciffusion: diffusion and flow-matching models for scientific data.

The core imports torch and numpy only; domain plugins import their own libraries lazily.
"""
from . import losses, parameterization, processes, space, timesteps
from .losses import DiffusionLoss, flow_matching_loss, score_matching_loss
from .parameterization import EDMPrecond, ModelDenoiser
from .processes import make_process
from .space import DenseSpace, GraphSpace

__version__ = "0.1.0"
