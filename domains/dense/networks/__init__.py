"""Denoising networks for dense 2-D data of any size and channel count: ``net(x, t, space, cond)``."""
from .dit import DiT
from .embeddings import FIELDS, LABEL, VECTOR, ConditionEmbedding, NoiseEmbedding
from .unet import UNet

NETWORKS = ("unet", "dit")


def unet_or_dit(kind: str, unet: dict | None, dit: dict | None, *, in_channels: int, num_classes: int,
                what: str, set_by: str):
    """``UNet(**unet)`` or ``DiT(**dit)`` (``kind``) on ``in_channels`` channels with ``num_classes``
    classes (0: unconditional): the network choice of every dense domain, whose config holds both option
    sets so that ``network.kind=dit`` switches. ``what`` and ``set_by`` word the errors."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown {what} network kind {kind!r}; choose one of {NETWORKS}")
    options = dict((unet if kind == "unet" else dit) or {})
    for fixed in ("in_channels", "num_classes"):
        if fixed in options:
            raise ValueError(f"network.{kind}.{fixed} is set by the domain ({set_by}); remove it")
    return (UNet if kind == "unet" else DiT)(in_channels, num_classes=num_classes, **options)


__all__ = ["DiT", "UNet", "NETWORKS", "unet_or_dit", "ConditionEmbedding", "NoiseEmbedding", "FIELDS", "LABEL",
           "VECTOR"]
