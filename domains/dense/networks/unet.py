"""A UNet in the style of ADM (Dhariwal & Nichol 2021) and EDM's DDPM++/ADM (Karras et al. 2022),
for images of any size and any number of channels, optionally periodic in width.

Any size: height (and width, unless ``circular_width``) is zero-padded at the end to a multiple
of 2^(levels - 1) and the output cropped back. With ``circular_width`` the width is never padded
(that would break the period); instead each downsampling halves the width while it is even and
keeps it otherwise, so rolling the input along width by a multiple of the total width reduction
(2^(levels - 1) for widths divisible by it, 1 for odd widths) rolls the output the same way.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciffusion.space import Space

from .embeddings import ConditionEmbedding, with_fields
from .layers import Conv2d, Downsample, ResAttnBlock, Upsample, group_norm, zero_


class UNet(nn.Module):
    """``net(x [B, C_in, H, W], t [B], space, cond) -> [B, C_out, H, W]``.

    Levels run from full resolution (level 0, ``channels * channel_mult[0]`` channels) down to
    1 / 2^(levels - 1); each level has ``num_res_blocks`` residual blocks on the way down and one
    more on the way up, with self-attention after them at ``attention_levels``; the middle is
    ResBlock, attention, ResBlock. Skip connections join the two paths as in ADM.

    Conditioning (see ``embeddings``): the noise level ``t`` (t in [0, 1] or EDM's c_noise; its
    features follow ``noise_embedding`` and ``time_scale``), cond["label"] with ``num_classes``,
    cond["vector"] with ``vector_dim``, all added into one embedding that modulates every ResBlock,
    and cond["fields"] ``[B, field_channels, H, W]`` concatenated to the input. cond["drop"] makes
    a sample unconditional. ``space`` is accepted for the network protocol and not used.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, channels: int = 32,
                 channel_mult: Sequence[int] = (1, 2), num_res_blocks: int = 2,
                 attention_levels: Sequence[int] = (1,), head_channels: int = 32, dropout: float = 0.0,
                 num_classes: int = 0, vector_dim: int = 0, field_channels: int = 0,
                 circular_width: bool = False, noise_embedding: str = "positional",
                 time_scale: float | None = None):
        super().__init__()
        channel_mult, attention_levels = tuple(channel_mult), tuple(attention_levels)
        levels = len(channel_mult)
        if levels < 1 or num_res_blocks < 1 or min(channel_mult) < 1:
            raise ValueError(f"need at least one level and one ResBlock per level, got channel_mult={channel_mult}, "
                             f"num_res_blocks={num_res_blocks}")
        if any(not 0 <= a < levels for a in attention_levels):
            raise ValueError(f"attention_levels {attention_levels} must index levels 0..{levels - 1} of "
                             f"channel_mult {channel_mult}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.field_channels, self.circular_width, self.levels = field_channels, circular_width, levels
        emb_dim = 4 * channels
        self.embedding = ConditionEmbedding(emb_dim, num_features=channels, num_classes=num_classes,
                                            vector_dim=vector_dim, noise_embedding=noise_embedding,
                                            time_scale=time_scale)
        block = dict(emb_dim=emb_dim, head_channels=head_channels, dropout=dropout, circular_width=circular_width)
        resample = dict(circular_width=circular_width)

        input_channels = in_channels + (field_channels + 1 if field_channels else 0)
        ch = channels * channel_mult[0]
        self.conv_in = Conv2d(input_channels, ch, 3, circular_width=circular_width)
        skip_channels = [ch]
        self.encoder, self.downs = nn.ModuleList(), nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResAttnBlock(ch, channels * mult, attention=level in attention_levels, **block))
                ch = channels * mult
                skip_channels.append(ch)
            self.encoder.append(blocks)
            if level < levels - 1:
                self.downs.append(Downsample(ch, **resample))
                skip_channels.append(ch)

        self.middle = nn.ModuleList([ResAttnBlock(ch, ch, attention=True, **block),
                                     ResAttnBlock(ch, ch, attention=False, **block)])

        self.decoder, self.ups = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResAttnBlock(ch + skip_channels.pop(), channels * mult,
                                           attention=level in attention_levels, **block))
                ch = channels * mult
            self.decoder.append(blocks)
            if level > 0:
                self.ups.append(Upsample(ch, **resample))
        self.norm_out = group_norm(ch)
        self.conv_out = zero_(Conv2d(ch, self.out_channels, 3, circular_width=circular_width))

    def _pad(self, h: Tensor) -> tuple[Tensor, list[int]]:
        """Pad to sizes the downsamplings divide; return the padded input and each one's width stride."""
        factor = 2 ** (self.levels - 1)
        height, width = h.shape[-2:]
        if self.circular_width:
            pad_w, strides = 0, []
            for _ in range(self.levels - 1):
                strides.append(2 if width % 2 == 0 else 1)
                width //= strides[-1]
        else:
            pad_w, strides = -width % factor, [2] * (self.levels - 1)
        return F.pad(h, (0, pad_w, 0, -height % factor)), strides

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None,
                cond: dict[str, Tensor] | None = None) -> Tensor:
        cond = cond or {}
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UNet expects x of shape [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        emb = self.embedding(t, cond, x)
        h, strides = self._pad(with_fields(x, cond, self.field_channels))

        h = self.conv_in(h)
        skips = [h]
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < self.levels - 1:
                h = self.downs[level](h, strides[level])
                skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for i, blocks in enumerate(self.decoder):
            level = self.levels - 1 - i
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if level > 0:
                h = self.ups[i](h, strides[level - 1])
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out[..., :height, :width]
