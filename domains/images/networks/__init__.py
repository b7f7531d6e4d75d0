"""The dense networks under their former path: they live in ``sciffusion_domains.dense.networks``
(shared by the images, audio and weather domains); import them from there."""
from sciffusion_domains.dense.networks import DiT, FIELDS, LABEL, VECTOR, ConditionEmbedding, NoiseEmbedding, UNet

__all__ = ["DiT", "UNet", "ConditionEmbedding", "NoiseEmbedding", "FIELDS", "LABEL", "VECTOR"]
