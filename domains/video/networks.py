"""A space-time UNet for clips ``[B, C, T, H, W]`` (Ho et al. 2022, "Video Diffusion Models", sec. 3).

Every 2-D layer of the dense UNet (ResBlocks, strided and nearest-neighbour resampling, spatial
self-attention) runs on each frame separately, time folded into the batch: ``[B, C, T, H, W] ->
[B T, C, H, W]``. Frames meet only in ``TemporalAttention``: at each spatial position, self-attention
over the T frames, with a sinusoidal encoding of the frame index (the convolutions carry no time
order). Factorised attention costs O(T (HW)^2 + HW T^2) instead of O((T H W)^2) for joint attention.
With ``temporal_attention=False`` the network is a per-frame image denoiser, which the tests use to
show that the temporal layers are the only path between frames.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciffusion.space import Space
from sciffusion_domains.dense.networks.embeddings import ConditionEmbedding, keep_mask
from sciffusion_domains.dense.networks.layers import (Conv2d, Downsample, ResBlock, SelfAttention, Upsample,
                                                      group_norm, zero_)
# cond[FRAMES]: [B, C, T, H, W] given frames (values only where cond[FRAME_MASK], [B, T] bool, is True): one
# definition, with the given-frame input both space-time networks take (re-exported for the video domain)
from sciffusion_domains.dense.networks.spacetime_dit import (  # noqa: F401
    FRAME_MASK, FRAMES, check_context, context_channels, with_given_frames)

from .extrapolation import BOUNDARIES, extrapolated_context


def frame_encoding(frames: int, channels: int, *, device=None, dtype=None) -> Tensor:
    """``[T, channels]`` sinusoidal features of the frame index (Vaswani et al. 2017)."""
    half = channels // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / max(half, 1))
    angles = torch.arange(frames, dtype=torch.float64)[:, None] * freqs[None]
    enc = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    enc = F.pad(enc, (0, channels - enc.shape[1]))
    return enc.to(device=device, dtype=dtype)


class TemporalAttention(nn.Module):
    """Multi-head self-attention over the T frames at each spatial position, residual, output at zero:

        h [B T, C, H, W] -> [B H W, T, C];  q, k from GN(h) + e(frame);  v from GN(h)

    The frame encoding e enters queries and keys only, so attention weights depend on frame order
    while the values stay the features themselves.
    """

    def __init__(self, channels: int, *, head_channels: int = 32):
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"temporal attention over {channels} channels cannot use heads of "
                             f"head_channels={head_channels}; pass a head_channels that divides every level's channels")
        self.heads = channels // head_channels
        self.norm = group_norm(channels)
        self.qk = nn.Linear(channels, 2 * channels)
        self.v = nn.Linear(channels, channels)
        self.proj = zero_(nn.Linear(channels, channels))

    def _heads(self, z: Tensor) -> Tensor:
        """[N, T, C] -> [N, heads, T, C / heads]."""
        n, frames, c = z.shape
        return z.reshape(n, frames, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, h: Tensor, frames: int) -> Tensor:
        bt, c, height, width = h.shape
        b = bt // frames
        seq = self.norm(h).reshape(b, frames, c, height * width).permute(0, 3, 1, 2).reshape(-1, frames, c)
        q, k = self.qk(seq + frame_encoding(frames, c, device=h.device, dtype=h.dtype)).chunk(2, dim=-1)
        v = self.v(seq)
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v))
        out = out.transpose(1, 2).reshape(-1, frames, c)
        out = self.proj(out).reshape(b, height * width, frames, c).permute(0, 2, 3, 1).reshape(bt, c, height, width)
        return h + out


class SpaceTimeBlock(nn.Module):
    """A per-frame ResBlock, then optionally spatial self-attention (per frame) and temporal attention."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, *, spatial: bool, temporal: bool,
                 head_channels: int, dropout: float):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim, dropout=dropout)
        self.spatial = SelfAttention(out_channels, head_channels=head_channels) if spatial else None
        self.temporal = TemporalAttention(out_channels, head_channels=head_channels) if temporal else None

    def forward(self, h: Tensor, emb: Tensor, frames: int) -> Tensor:
        h = self.res(h, emb)
        if self.spatial is not None:
            h = self.spatial(h)
        if self.temporal is not None:
            h = self.temporal(h, frames)
        return h


class SpaceTimeUNet(nn.Module):
    """``net(x [B, C, T, H, W], t [B], space, cond) -> [B, C, T, H, W]``.

    Levels as in the dense ``UNet`` (``channel_mult``, ``num_res_blocks`` ResBlocks down and one more
    up, ADM skip connections); spatial attention at ``attention_levels`` and in the middle, temporal
    attention at ``temporal_levels`` and in the middle (none at all with ``temporal_attention=False``).
    H and W are zero-padded to a multiple of 2^(levels - 1) and cropped back.

    Conditioning: the noise level ``t``, cond["label"] (``num_classes``) and cond["vector"]
    (``vector_dim``) form one embedding ``[B, 4 channels]`` shared by all frames (see the dense
    ``ConditionEmbedding``); with ``context=True``, cond["frames"] ``[B, C, T, H, W]`` and
    cond["frame_mask"] ``[B, T]`` (True = given) enter as C + 1 extra input channels per frame (the
    given frames, zero elsewhere or with ``context_fill="hold"`` the latest given frame before, and the
    mask; ``context_frames=n`` with ``hold``: the n latest given frames, nC + 1 channels), for
    forecasting and interpolation by conditioning. ``context_extrapolation="edge"`` (a bounded box) or
    ``"wrap"`` (a periodic domain) adds the given frames' optical-flow extrapolation at every frame
    (``extrapolation.extrapolated_context``: the latest given frame carried along the last motion),
    through its own input convolution, zero at initialisation so that a forecaster trained without it
    can be fine-tuned with it (``train.init_new_parameters=true``) from exactly what it was.
    cond["drop"] drops all of them for classifier-free guidance.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, channels: int = 32,
                 channel_mult: Sequence[int] = (1, 2), num_res_blocks: int = 1,
                 attention_levels: Sequence[int] = (1,), temporal_levels: Sequence[int] | None = None,
                 temporal_attention: bool = True, head_channels: int = 32, dropout: float = 0.0,
                 num_classes: int = 0, vector_dim: int = 0, context: bool = False,
                 noise_embedding: str = "positional", time_scale: float | None = None, context_fill: str = "zero",
                 context_frames: int = 1, context_extrapolation: str | None = None):
        super().__init__()
        check_context(context_fill, context_frames, context)
        if context_extrapolation is not None and (not context or context_extrapolation not in BOUNDARIES):
            raise ValueError(f"context_extrapolation={context_extrapolation!r}: give the boundary the flow reads "
                             f"across ({' or '.join(BOUNDARIES)}), on a network that takes given frames, or null")
        channel_mult, attention_levels = tuple(channel_mult), tuple(attention_levels)
        levels = len(channel_mult)
        temporal_levels = tuple(range(levels)) if temporal_levels is None else tuple(temporal_levels)
        if levels < 1 or num_res_blocks < 1 or min(channel_mult) < 1:
            raise ValueError(f"need at least one level and one ResBlock per level, got channel_mult={channel_mult}, "
                             f"num_res_blocks={num_res_blocks}")
        for name, chosen in (("attention_levels", attention_levels), ("temporal_levels", temporal_levels)):
            if any(not 0 <= a < levels for a in chosen):
                raise ValueError(f"{name} {chosen} must index levels 0..{levels - 1} of channel_mult {channel_mult}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.levels, self.context, self.context_fill = levels, context, context_fill
        self.context_frames, self.context_extrapolation = context_frames, context_extrapolation
        emb_dim = 4 * channels
        self.embedding = ConditionEmbedding(emb_dim, num_features=channels, num_classes=num_classes,
                                            vector_dim=vector_dim, noise_embedding=noise_embedding,
                                            time_scale=time_scale)

        def block(cin: int, cout: int, level: int | None) -> SpaceTimeBlock:
            spatial = level is None or level in attention_levels
            temporal = temporal_attention and (level is None or level in temporal_levels)
            return SpaceTimeBlock(cin, cout, emb_dim, spatial=spatial, temporal=temporal,
                                  head_channels=head_channels, dropout=dropout)

        ch = channels * channel_mult[0]
        self.conv_in = Conv2d(context_channels(in_channels, context, context_frames), ch, 3)
        self.conv_extrapolated = zero_(Conv2d(in_channels, ch, 3)) if context_extrapolation else None
        self._last_extrapolation: tuple[Tensor, Tensor, Tensor] | None = None
        skip_channels = [ch]
        self.encoder, self.downs = nn.ModuleList(), nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(block(ch, channels * mult, level))
                ch = channels * mult
                skip_channels.append(ch)
            self.encoder.append(blocks)
            if level < levels - 1:
                self.downs.append(Downsample(ch))
                skip_channels.append(ch)
        plain = SpaceTimeBlock(ch, ch, emb_dim, spatial=False, temporal=False, head_channels=head_channels,
                               dropout=dropout)
        self.middle = nn.ModuleList([block(ch, ch, None), plain])  # ResBlock + attention, then a ResBlock
        self.decoder, self.ups = nn.ModuleList(), nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(block(ch + skip_channels.pop(), channels * mult, level))
                ch = channels * mult
            self.decoder.append(blocks)
            if level > 0:
                self.ups.append(Upsample(ch))
        self.norm_out = group_norm(ch)
        self.conv_out = zero_(Conv2d(ch, self.out_channels, 3))

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None,
                cond: dict[str, Tensor] | None = None) -> Tensor:
        cond = cond or {}
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"SpaceTimeUNet expects x of shape [B, {self.in_channels}, T, H, W], got {tuple(x.shape)}")
        b, _, frames, height, width = x.shape
        emb = self.embedding(t, cond, x).repeat_interleave(frames, dim=0)  # [B T, D], frame-major per clip
        factor = 2 ** (self.levels - 1)

        def per_frame(v: Tensor) -> Tensor:  # [B, C, T, H, W] -> [B T, C, H', W'], padded
            v = v.transpose(1, 2).reshape(b * frames, v.shape[1], height, width)
            return F.pad(v, (0, -width % factor, 0, -height % factor))

        h = self.conv_in(per_frame(with_given_frames(x, cond, self.context, self.context_fill, self.context_frames)))
        if self.conv_extrapolated is not None:
            h = h + self.conv_extrapolated(per_frame(self.extrapolated(x, cond)))
        skips = [h]
        for level, blocks in enumerate(self.encoder):
            for blk in blocks:
                h = blk(h, emb, frames)
                skips.append(h)
            if level < self.levels - 1:
                h = self.downs[level](h)
                skips.append(h)
        for blk in self.middle:
            h = blk(h, emb, frames)
        for i, blocks in enumerate(self.decoder):
            for blk in blocks:
                h = blk(torch.cat([h, skips.pop()], dim=1), emb, frames)
            if self.levels - 1 - i > 0:
                h = self.ups[i](h)
        out = self.conv_out(F.silu(self.norm_out(h)))[..., :height, :width]
        return out.reshape(b, frames, self.out_channels, height, width).transpose(1, 2)

    def extrapolated(self, x: Tensor, cond: dict[str, Tensor]) -> Tensor:
        """The given frames' extrapolation ``[B, C, T, H, W]`` (zeros for a dropped sample or none given)."""
        if FRAMES not in cond:
            return torch.zeros_like(x)
        mask = cond[FRAME_MASK].to(device=x.device, dtype=torch.bool) & keep_mask(cond, x.shape[0], x.device)[:, None]
        given = cond[FRAMES].to(x)
        # a sampler calls the network many times with the same given frames: the flow is estimated once
        cached = self._last_extrapolation
        if cached is not None and cached[0].shape == given.shape and cached[0].device == given.device \
                and torch.equal(cached[0], given) and torch.equal(cached[1], mask):
            return cached[2]
        moved = extrapolated_context(given, mask, boundary=self.context_extrapolation)
        self._last_extrapolation = (given.detach().clone(), mask.clone(), moved)
        return moved
