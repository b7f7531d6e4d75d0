"""A diffusion transformer on space-time patches for clips ``[B, C, T, H, W]`` (Peebles & Xie 2023;
tubelets as in ViViT, Arnab et al. 2021; factorised blocks as in Latte, Ma et al. 2024, variant 1).

The clip (+ the given frames and their mask) is cut into tubelets of ``frame_patch_size`` frames and
``patch_size`` x ``patch_size`` pixels, embedded linearly, and passed through the image DiT's
adaLN-Zero blocks (``dit.DiTBlock``), which see the tokens ``[B, T', N, width]`` (T' = T / pt tubelets
in time, N = H W / p^2 in space) in one of three ways (``attention``):

    factorised  per stage a spatial block (tokens of one tubelet slice attend to each other, batch
                B T') and then a temporal block (tokens at one spatial position, batch B N):
                O(T' N^2 + N T'^2) per stage, two blocks per stage;
    joint       one block over all T' N tokens: O((T' N)^2) per stage;
    spatial     spatial blocks only: every tubelet slice is denoised on its own (with pt = 1, every
                frame), the per-frame baseline that shows what the temporal blocks add.

Position: the image DiT's fixed 2-D sin-cos code of the patch, plus (joint and factorised) a fixed 1-D
sin-cos code of the tubelet index, so any frame count works without retraining a table. The spatial
mode has no time code: its frames never meet, so their order cannot matter (as the video UNet with
``temporal_attention=False``). A final adaLN layer projects back to tubelets; it starts at zero, so the
untrained network outputs zeros.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciffusion.space import Space

from .dit import DiTBlock, init_dit_weights, modulate, sincos_1d, sincos_2d
from .embeddings import ConditionEmbedding, keep_mask
from .layers import zero_

# The condition keys of given frames, defined here (the dense networks never import a domain) and
# re-exported by sciffusion_domains.video.networks, whose U-Net takes them through with_given_frames too.
FRAMES = "frames"  # cond[FRAMES]: [B, C, T, H, W] given frames (values only where FRAME_MASK is True)
FRAME_MASK = "frame_mask"  # cond[FRAME_MASK]: [B, T] bool, True on the given frames
ATTENTIONS = ("factorised", "joint", "spatial")


CONTEXT_FILLS = ("zero", "hold")  # what the given-frame channels hold at frames that are not given


def held_frames(given: Tensor, mask: Tensor, count: int = 1) -> Tensor:
    """``given [B, C, T, H, W]`` with every frame replaced by the latest known frame at or before it (the
    first known frame before any is known; zeros where a clip has none), ``mask [B, T]`` the known frames.
    ``count > 1`` stacks the ``count`` latest known frames along channels, most recent first
    (``[B, count C, T, H, W]``): where fewer are known, the earliest known one repeats."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    frames = mask.shape[1]
    position = torch.arange(frames, device=mask.device).expand_as(mask)
    latest = torch.where(mask, position, torch.full_like(position, -1)).cummax(dim=1).values
    first = torch.where(mask, position, torch.full_like(position, frames)).min(dim=1, keepdim=True).values
    source = torch.where(latest >= 0, latest, first).clamp(max=frames - 1)  # [B, T]
    stacked = []
    for _ in range(count):
        index = source[:, None, :, None, None].expand(-1, given.shape[1], -1, *given.shape[3:])
        stacked.append(torch.gather(given, 2, index))
        # the known frame before each source: the latest known at or before source - 1, if there is one
        before = torch.gather(latest, 1, (source - 1).clamp(min=0))
        source = torch.where((source > 0) & (before >= 0), before, source)
    held = torch.cat(stacked, dim=1)
    return torch.where(mask.any(dim=1)[:, None, None, None, None], held, torch.zeros((), dtype=given.dtype,
                                                                                     device=given.device))


def context_channels(in_channels: int, context: bool, context_frames: int = 1) -> int:
    """Input channels of a video network: x, then with ``context`` the given frames (``context_frames``
    of them with ``fill="hold"``) and the mask."""
    return in_channels + (in_channels * context_frames + 1 if context else 0)


def check_context(fill: str, context_frames: int, context: bool = True) -> None:
    """Refuse an unknown ``context_fill`` or a ``context_frames`` count it cannot hold, naming the choices,
    and either set away from its default (zero, 1) on a network that takes no given frames (``context``
    False), where it would change nothing."""
    if fill not in CONTEXT_FILLS:
        raise ValueError(f"unknown context_fill {fill!r}; choose one of {CONTEXT_FILLS}")
    if not context and (fill != "zero" or context_frames != 1):
        raise ValueError(f"context_fill={fill} / context_frames={context_frames} shape the given frames a "
                         "forecaster reads, but this network takes none: give it frames (domain.given_frames=k "
                         "or domain.given_tasks) or leave context_fill=zero and context_frames=1")
    if context_frames < 1 or (context_frames > 1 and fill != "hold"):
        raise ValueError(f"context_frames={context_frames}: it counts the latest given frames each frame holds, "
                         "at least 1, and above 1 only with context_fill=hold")


def with_given_frames(x: Tensor, cond: dict[str, Tensor], context: bool, fill: str = "zero",
                      context_frames: int = 1) -> Tensor:
    """x [B, C, T, H, W] -> [B, 2C + 1, T, H, W] with ``context``: x, the given frames, and the mask as a
    channel; x unchanged without ``context``. Frames not given (and every frame of a dropped sample)
    hold zeros with ``fill="zero"``; with ``fill="hold"`` they hold the latest given frame before them
    (``held_frames``), so that continuing a frame is a local operation at every frame rather than one
    that temporal attention must route from the given frames (sharp content such as digit strokes is
    lost on that route at low resolution). ``context_frames=n`` (with ``hold``) holds the n latest given
    frames, ``[B, C + nC + 1, T, H, W]``: with two or more, a frame's own convolutions see how the
    content last moved, so that continuing the motion is local too."""
    check_context(fill, context_frames)
    if not context:
        if FRAMES in cond or FRAME_MASK in cond:
            raise ValueError(f"cond['{FRAMES}'] / cond['{FRAME_MASK}'] given but the network takes no given "
                             "frames; build it with context=True")
        return x
    b, _, frames = x.shape[:3]
    if FRAMES in cond:
        given = cond[FRAMES].to(dtype=x.dtype, device=x.device)
        mask = cond[FRAME_MASK].to(device=x.device, dtype=torch.bool) if FRAME_MASK in cond else None
        if given.shape != x.shape or mask is None or mask.shape != (b, frames):
            raise ValueError(f"cond['{FRAMES}'] must have shape {tuple(x.shape)} and cond['{FRAME_MASK}'] "
                             f"{(b, frames)}, got {tuple(given.shape)} and "
                             f"{None if mask is None else tuple(mask.shape)}")
        mask = mask & keep_mask(cond, b, x.device)[:, None]
    else:
        given, mask = torch.zeros_like(x), torch.zeros(b, frames, dtype=torch.bool, device=x.device)
    if fill == "hold":
        given = held_frames(given, mask, context_frames)
    else:
        given = torch.where(mask[:, None, :, None, None], given, torch.zeros((), dtype=x.dtype, device=x.device))
    channel = mask[:, None, :, None, None].to(x.dtype).expand(b, 1, *x.shape[2:])
    return torch.cat([x, given, channel], dim=1)


class SpaceTimeDiT(nn.Module):
    """``net(x [B, C_in, T, H, W], t [B], space, cond) -> [B, C_out, T, H, W]``, the video UNet's interface.

    T must be divisible by ``frame_patch_size`` and H, W by ``patch_size``. ``width`` must be divisible
    by ``num_heads`` and by 4 (the 2-D position code). ``depth`` counts stages: a factorised stage is two
    DiT blocks (spatial, temporal), a joint or spatial stage one.

    Conditioning as in the video UNet: the noise level ``t`` (``noise_embedding`` / ``time_scale``),
    cond["label"] (``num_classes``, null class ``num_classes``) and cond["vector"] (``vector_dim``,
    physical parameters) form one embedding ``[B, width]`` that modulates every block (adaLN-Zero); with
    ``context=True``, cond["frames"] ``[B, C, T, H, W]`` and cond["frame_mask"] ``[B, T]`` enter as C + 1
    extra input channels (``context_fill``: what frames that are not given hold, see ``with_given_frames``).
    cond["drop"] drops all of them. ``space`` is accepted and not used.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, patch_size: int = 4,
                 frame_patch_size: int = 1, width: int = 128, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, attention: str = "factorised", num_classes: int = 0,
                 vector_dim: int = 0, context: bool = False, noise_embedding: str = "positional",
                 time_scale: float | None = None, noise_features: int = 256, context_fill: str = "zero",
                 context_frames: int = 1):
        super().__init__()
        check_context(context_fill, context_frames, context)
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of {ATTENTIONS}")
        if width % num_heads or width % 4:
            raise ValueError(f"width {width} must be divisible by num_heads {num_heads} and by 4")
        if patch_size < 1 or frame_patch_size < 1 or depth < 1:
            raise ValueError(f"need patch_size, frame_patch_size and depth >= 1, got {patch_size}, "
                             f"{frame_patch_size}, {depth}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.patch_size, self.frame_patch_size, self.width = patch_size, frame_patch_size, width
        self.attention, self.context, self.context_fill = attention, context, context_fill
        self.context_frames = context_frames
        tubelet = (frame_patch_size, patch_size, patch_size)
        self.patch_embed = nn.Conv3d(context_channels(in_channels, context, context_frames), width, tubelet,
                                     stride=tubelet)
        self.embedding = ConditionEmbedding(width, num_features=noise_features, num_classes=num_classes,
                                            vector_dim=vector_dim, noise_embedding=noise_embedding,
                                            time_scale=time_scale)
        per_stage = {"factorised": ("space", "time"), "joint": ("joint",), "spatial": ("space",)}[attention]
        self.axes = per_stage * depth  # what each block attends over, in order
        self.blocks = nn.ModuleList(DiTBlock(width, num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout)
                                    for _ in self.axes)
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation_out = zero_(nn.Linear(width, 2 * width))
        self.linear_out = zero_(nn.Linear(width, frame_patch_size * patch_size * patch_size * self.out_channels))
        init_dit_weights(self)  # the tubelet embedding is seen as one linear, as the image DiT's patches

    def _check(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"SpaceTimeDiT expects x of shape [B, {self.in_channels}, T, H, W], got {tuple(x.shape)}")
        frames, height, width = x.shape[2:]
        if frames % self.frame_patch_size:
            raise ValueError(f"SpaceTimeDiT: {frames} frames are not divisible by frame_patch_size="
                             f"{self.frame_patch_size}; choose a frame_patch_size that divides the clip length")
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"SpaceTimeDiT: frames of {height}x{width} are not divisible by patch_size="
                             f"{self.patch_size}; choose a patch_size that divides both")

    def position(self, grid_t: int, grid_h: int, grid_w: int) -> Tensor:
        """``[grid_t, grid_h grid_w, width]``: the 2-D code of each patch, plus the tubelet index's 1-D
        code unless the frames never meet (``attention="spatial"``)."""
        code = sincos_2d(self.width, grid_h, grid_w)[None].expand(grid_t, -1, -1)
        if self.attention != "spatial":
            code = code + sincos_1d(self.width, torch.arange(grid_t))[:, None]
        return code

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None,
                cond: dict[str, Tensor] | None = None) -> Tensor:
        cond = cond or {}
        self._check(x)
        b, _, frames, height, width = x.shape
        pt, p = self.frame_patch_size, self.patch_size
        gt, gh, gw = frames // pt, height // p, width // p
        n = gh * gw
        c = self.embedding(t, cond, x)  # [B, width]
        h = self.patch_embed(with_given_frames(x, cond, self.context, self.context_fill,
                                                          self.context_frames))  # [B, width, T', H', W']
        tokens = h.flatten(3).permute(0, 2, 3, 1) + self.position(gt, gh, gw).to(h)  # [B, T', N, width]
        per_axis = {"space": c.repeat_interleave(gt, dim=0), "time": c.repeat_interleave(n, dim=0), "joint": c}
        for axis, block in zip(self.axes, self.blocks):
            if axis == "space":  # a sequence per (clip, tubelet slice)
                tokens = block(tokens.reshape(b * gt, n, -1), per_axis[axis]).reshape(b, gt, n, -1)
            elif axis == "time":  # a sequence per (clip, spatial patch)
                seq = tokens.transpose(1, 2).reshape(b * n, gt, -1)
                tokens = block(seq, per_axis[axis]).reshape(b, n, gt, -1).transpose(1, 2)
            else:
                tokens = block(tokens.reshape(b, gt * n, -1), c).reshape(b, gt, n, -1)
        shift, scale = self.modulation_out(F.silu(c))[:, None, None].chunk(2, dim=-1)
        patches = self.linear_out(modulate(self.norm_out(tokens), shift, scale))  # [B, T', N, pt p p C_out]
        out = patches.reshape(b, gt, gh, gw, pt, p, p, self.out_channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return out.reshape(b, self.out_channels, frames, height, width)
