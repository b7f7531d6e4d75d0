"""sciffusion: diffusion and flow-matching models for scientific data.

The core imports torch and numpy only; domain plugins import their own libraries lazily.

    model = sciffusion.load("digits")   # a shipped name (sciffusion.shipped.names()), a .ckpt or a model folder
    samples = model.sample(16)          # the domain's native objects; model.save(samples, "out")
"""
from . import guidance, likelihood, losses, parameterization, processes, samplers, space, timesteps
from .guidance import ClassifierFreeGuidance, ClassifierGuidance, Inpainting, ReconstructionGuidance
from .api import Model, load
from .likelihood import log_likelihood
from .losses import DiffusionLoss, flow_matching_loss, score_matching_loss
from .parameterization import EDMPrecond, ModelDenoiser
from .processes import make_process
from .samplers import SAMPLERS, prior_sample, sample
from .space import DenseSpace, GraphSpace
from .timesteps import make_grid

__version__ = "0.1.0"
