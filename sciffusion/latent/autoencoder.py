"""A small convolutional KL-regularised autoencoder for dense ``[B, C, H, W]`` data (Rombach et al. 2022,
"High-resolution image synthesis with latent diffusion models", sec. 3 and App. G), trained by the
usual ``Trainer`` under ``AutoencoderLoss`` and read back with ``load_autoencoder``:

    encoder  x [B, C, H, W] -> (mean, logvar) [B, latent_channels, H / f, W / f],  f = 2^(levels - 1)
    sample   z = mean + exp(logvar / 2) * eps
    decoder  z -> x_hat [B, C, H, W]

Inputs whose sides are not multiples of f are padded (edge values) and the decoder's output is
cropped back when given the size. With ``kl_weight = 0`` and ``sample_posterior = False`` in the loss
it is a plain autoencoder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: The ``_target_`` an autoencoder run's ``network`` config names (how ``load_autoencoder`` recognises one).
TARGET = "sciffusion.latent.KLAutoencoder"
LOGVAR_RANGE = (-30.0, 20.0)  # as Rombach et al.'s DiagonalGaussianDistribution: exp() stays finite


def _group_norm(channels: int) -> nn.GroupNorm:
    groups = max(1, min(32, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResBlock(nn.Module):
    """h = conv(SiLU(GN(conv(SiLU(GN(x)))))); out = skip(x) + h.  [B, C_in, H, W] -> [B, C_out, H, W]."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(_group_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  _group_norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


class KLAutoencoder(nn.Module):
    """Encoder to a diagonal Gaussian over latents and a decoder back, both convolutional.

    ``channels[i]`` is the width at level i; every level but the last halves the resolution, so the
    downsampling factor is ``2 ** (len(channels) - 1)``. ``options`` keeps the constructor's arguments
    (what a latent checkpoint embeds beside the weights)."""

    def __init__(self, in_channels: int = 1, *, latent_channels: int = 4, channels: Sequence[int] = (32, 64, 64),
                 num_res_blocks: int = 1):
        super().__init__()
        channels = [int(c) for c in channels]
        if in_channels < 1 or latent_channels < 1 or not channels or min(channels) < 1 or num_res_blocks < 0:
            raise ValueError(f"need in_channels, latent_channels >= 1, a non-empty list of positive channels and "
                             f"num_res_blocks >= 0; got {in_channels}, {latent_channels}, {channels}, {num_res_blocks}")
        self.options = {"in_channels": int(in_channels), "latent_channels": int(latent_channels),
                        "channels": channels, "num_res_blocks": int(num_res_blocks)}
        self.in_channels, self.latent_channels = int(in_channels), int(latent_channels)
        self.factor = 2 ** (len(channels) - 1)

        down: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1)]
        width = channels[0]
        for level, c in enumerate(channels):
            for _ in range(num_res_blocks):
                down.append(ResBlock(width, c))
                width = c
            if level < len(channels) - 1:
                down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        down += [ResBlock(width, width), _group_norm(width), nn.SiLU(),
                 nn.Conv2d(width, 2 * latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*down)

        up: list[nn.Module] = [nn.Conv2d(latent_channels, width, 3, padding=1), ResBlock(width, width)]
        for level, c in reversed(list(enumerate(channels))):
            for _ in range(num_res_blocks):
                up.append(ResBlock(width, c))
                width = c
            if level > 0:
                up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, width, 3, padding=1)]
        up += [_group_norm(width), nn.SiLU(), nn.Conv2d(width, in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*up)

    def latent_shape(self, data_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(latent_channels, ceil(H / f), ceil(W / f))`` of data shaped ``(C, H, W)``."""
        self.check_data(data_shape)
        _, h, w = data_shape
        return self.latent_channels, -(-int(h) // self.factor), -(-int(w) // self.factor)

    def check_data(self, data_shape: Sequence[int]) -> None:
        """Raise naming both shapes unless one sample is ``(in_channels, H, W)``."""
        if len(data_shape) != 3 or int(data_shape[0]) != self.in_channels:
            raise ValueError(f"this autoencoder encodes samples of shape ({self.in_channels}, H, W), got "
                             f"{tuple(data_shape)}; train an autoencoder on this data (its network.in_channels "
                             "is the data's channel count)")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The posterior's ``mean`` and ``logvar``, each ``[B, latent_channels, ceil(H / f), ceil(W / f)]``."""
        self.check_data(x.shape[1:])
        f = self.factor
        if x.shape[-1] % f or x.shape[-2] % f:
            x = F.pad(x, (0, -x.shape[-1] % f, 0, -x.shape[-2] % f), mode="replicate")
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: Tensor, *, size: Sequence[int] | None = None) -> Tensor:
        """``x_hat [B, in_channels, H, W]`` from latents ``z``; ``size = (H, W)`` crops the padding."""
        if z.dim() != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(f"latents must be [B, {self.latent_channels}, h, w], got {tuple(z.shape)}")
        x = self.decoder(z)
        return x if size is None else x[..., :int(size[0]), :int(size[1])]

    def forward(self, x: Tensor, *, generator: torch.Generator | None = None,
                sample_posterior: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_hat, mean, logvar)``: ``x`` encoded, a latent drawn from the posterior with ``generator``
        (its mean when ``sample_posterior`` is False) and decoded to ``x``'s size."""
        mean, logvar = self.encode(x)
        z = mean
        if sample_posterior:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + torch.exp(0.5 * logvar) * eps
        return self.decode(z, size=x.shape[-2:]), mean, logvar


def kl_divergence(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample ``[B]``, summed over the latent entries."""
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def autoencoder_task(network: nn.Module, process: Any = None) -> KLAutoencoder:
    """The ``parameterization`` of an autoencoder run: the network itself, which is not a denoiser
    (``process`` is ignored; the apps pass every parameterization one)."""
    if not isinstance(network, KLAutoencoder):
        raise TypeError(f"parameterization=autoencoder trains a KLAutoencoder, got a {type(network).__name__}; set "
                        f"network._target_={TARGET} (see experiment=mnist_latent_autoencoder)")
    return network


def autoencoder_state(model: KLAutoencoder) -> dict[str, Any]:
    """``{"options", "weights"}``: plain values and tensors, what a latent checkpoint embeds (the layout
    ``training.checkpoint.is_embedded_network`` recognises, so that shipped files store it in float16)."""
    return {"options": dict(model.options), "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def autoencoder_from_state(state: dict[str, Any]) -> KLAutoencoder:
    """The frozen autoencoder (eval mode, no gradients) that ``autoencoder_state`` described."""
    model = KLAutoencoder(**state["options"])
    model.load_state_dict(state["weights"])
    return model.eval().requires_grad_(False)


def load_autoencoder(path: str | Path, *, use_ema: bool = True) -> KLAutoencoder:
    """The frozen autoencoder of a checkpoint written by an autoencoder run (``sciffusion-train
    experiment=mnist_latent_autoencoder``; EMA weights unless ``use_ema=False``), or the one embedded
    in a latent model's checkpoint (a latent run's, or a shipped latent model by name:
    ``digits_latent``), so new latent models can train on the latents of a shipped one."""
    from .. import shipped
    from ..training import CheckpointError, load_checkpoint

    if not Path(path).is_file() and shipped.lookup(str(path)) is not None:
        path = shipped.resolve(str(path))
    state = load_checkpoint(path)
    config = state.get("config") or {}
    if (config.get("domain") or {}).get("name") == "latent" and "autoencoder" in (state.get("domain") or {}):
        return autoencoder_from_state(state["domain"]["autoencoder"])
    network = dict(config.get("network") or {})
    if network.pop("_target_", None) != TARGET:
        raise CheckpointError(f"{path} is not an autoencoder checkpoint (its network is "
                              f"{config.get('network', {}).get('_target_', 'a domain network')}); "
                              "pass the last.ckpt of a run trained with experiment=mnist_latent_autoencoder "
                              f"(network._target_={TARGET}), a latent model's checkpoint or a shipped latent model "
                              "(digits_latent)")
    model = KLAutoencoder(**network)
    model.load_state_dict(state["ema"]["module"] if use_ema else state["model"])
    return model.eval().requires_grad_(False)
