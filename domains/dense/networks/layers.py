"""Convolutional building blocks of the UNet, periodic in width on request.

With ``circular_width`` every convolution pads the width axis by wrapping around (a global
longitude) and the height axis with zeros, so rolling the input along width by a multiple of the
total downsampling rolls the output by the same amount.
"""
from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


def group_norm(channels: int, *, max_groups: int = 32, min_group_channels: int = 4) -> nn.GroupNorm:
    """GroupNorm with the most groups (at most ``max_groups``) of at least ``min_group_channels``
    channels that divide ``channels`` (EDM uses min(32, C // 4))."""
    groups = max(1, min(max_groups, channels // min_group_channels))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels, eps=1e-6)


def zero_(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters: residual branches and outputs start as identity / zero
    (Dhariwal & Nichol 2021; Peebles & Xie 2023)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class Conv2d(nn.Conv2d):
    """An odd-sized 'same' convolution: zero padding in height, zero or periodic padding in width.

    x [B, C_in, H, W] -> [B, C_out, ceil(H / s_h), ceil(W / s_w)] for stride (s_h, s_w).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, circular_width: bool = False):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, padding=0)
        self.circular_width = circular_width

    def forward(self, x: Tensor, stride: tuple[int, int] = (1, 1)) -> Tensor:
        p = self.kernel_size[0] // 2
        if p:
            x = F.pad(x, (p, p, 0, 0), mode="circular" if self.circular_width else "constant")
            x = F.pad(x, (0, 0, p, p))
        return F.conv2d(x, self.weight, self.bias, stride)


class Downsample(nn.Module):
    """A strided 3x3 convolution (ADM's conv resampling): [B, C, H, W] -> [B, C, H / 2, W / s_w]."""

    def __init__(self, channels: int, *, circular_width: bool = False):
        super().__init__()
        self.conv = Conv2d(channels, channels, 3, circular_width=circular_width)

    def forward(self, x: Tensor, width_stride: int = 2) -> Tensor:
        return self.conv(x, (2, width_stride))


class Upsample(nn.Module):
    """Nearest-neighbour upsampling then a 3x3 convolution: [B, C, H, W] -> [B, C, 2 H, s_w W]."""

    def __init__(self, channels: int, *, circular_width: bool = False):
        super().__init__()
        self.conv = Conv2d(channels, channels, 3, circular_width=circular_width)

    def forward(self, x: Tensor, width_stride: int = 2) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=(2, width_stride), mode="nearest"))


class ResBlock(nn.Module):
    """ADM's residual block with adaptive group norm (Dhariwal & Nichol 2021, sec. 3):

        h = conv(SiLU(GN(x)));   (scale, shift) = Linear(SiLU(emb))
        h = conv(dropout(SiLU(GN(h) * (1 + scale) + shift)));   out = skip(x) + h

    x [B, C_in, H, W], emb [B, emb_dim] -> [B, C_out, H, W]. The last conv starts at zero.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, *, dropout: float = 0.0,
                 circular_width: bool = False):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = Conv2d(in_channels, out_channels, 3, circular_width=circular_width)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_(Conv2d(out_channels, out_channels, 3, circular_width=circular_width))
        self.skip = Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all H * W positions, residual, output projection at zero.

    x [B, C, H, W] -> [B, C, H, W]. It has no positional information of its own (the convolutions
    provide it), so it commutes with any permutation of positions, rolls in width included.
    """

    def __init__(self, channels: int, *, head_channels: int = 32):
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"attention over {channels} channels cannot use heads of head_channels={head_channels}; "
                             "pass a head_channels that divides every attended level's channels")
        self.heads = channels // head_channels
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each [B, heads, H W, C / heads]
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class ResAttnBlock(nn.Module):
    """A ResBlock optionally followed by self-attention: one step of a UNet level."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, *, attention: bool,
                 head_channels: int = 32, dropout: float = 0.0, circular_width: bool = False):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim, dropout=dropout, circular_width=circular_width)
        self.attn = SelfAttention(out_channels, head_channels=head_channels) if attention else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x
