"""Denoising networks for dense 2-D data of any size and channel count: ``net(x, t, space, cond)``."""
from .dit import DiT
from .embeddings import FIELDS, LABEL, VECTOR, ConditionEmbedding, NoiseEmbedding
from .unet import UNet

__all__ = ["DiT", "UNet", "ConditionEmbedding", "NoiseEmbedding", "FIELDS", "LABEL", "VECTOR"]
