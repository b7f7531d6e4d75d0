"""A diffusion transformer (DiT, Peebles & Xie 2023) for images of any size and channel count.

x (+ aligned fields) is zero-padded to a multiple of the patch size, cut into p x p patches, embedded
linearly, given a fixed 2-D sin-cos position, passed through transformer blocks modulated by
adaLN-Zero on the condition embedding c (noise level + class + vector), projected back to patches
by a final adaLN layer, reassembled and cropped.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sciffusion.space import Space

from .embeddings import ConditionEmbedding, with_fields
from .layers import zero_


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """[N] positions -> [N, dim]: cos / sin of pos * 10000^(-i / (dim / 2)) (Vaswani et al. 2017)."""
    omega = 10000.0 ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.to(torch.float64)[:, None] * omega[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid_height: int, grid_width: int) -> Tensor:
    """[grid_height * grid_width, dim], row-major: half the channels encode the row, half the column."""
    rows = torch.arange(grid_height).repeat_interleave(grid_width)
    cols = torch.arange(grid_width).repeat(grid_height)
    return torch.cat([sincos_1d(dim // 2, rows), sincos_1d(dim // 2, cols)], dim=1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """Pre-norm transformer block with adaLN-Zero (Peebles & Xie 2023, sec. 3.2):

        (shift, scale, gate) x 2 = Linear(SiLU(c)), all zero at initialisation
        x = x + gate1 * Attn(LN(x) * (1 + scale1) + shift1)
        x = x + gate2 * MLP(LN(x) * (1 + scale2) + shift2)

    x [B, N, width], c [B, width] -> [B, N, width].
    """

    def __init__(self, width: int, *, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.heads = num_heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(hidden, width))
        self.modulation = zero_(nn.Linear(width, 6 * width))

    def attention(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, heads, N, d / heads]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c))[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.attention(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiT(nn.Module):
    """``net(x [B, C_in, H, W], t [B], space, cond) -> [B, C_out, H, W]``.

    ``width`` must be divisible by ``num_heads`` and by 4 (the 2-D position code). Conditioning is
    the UNet's (see ``embeddings``): ``t`` through ``noise_embedding`` / ``time_scale``,
    cond["label"] (``num_classes``, null class ``num_classes``), cond["vector"] (``vector_dim``),
    cond["fields"] (``field_channels``, concatenated before patchifying) and cond["drop"].
    ``space`` is accepted for the network protocol and not used.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, *, patch_size: int = 2,
                 width: int = 128, depth: int = 4, num_heads: int = 4, mlp_ratio: float = 4.0,
                 dropout: float = 0.0, num_classes: int = 0, vector_dim: int = 0, field_channels: int = 0,
                 noise_embedding: str = "positional", time_scale: float | None = None,
                 noise_features: int = 256):
        super().__init__()
        if width % num_heads or width % 4:
            raise ValueError(f"width {width} must be divisible by num_heads {num_heads} and by 4")
        if patch_size < 1 or depth < 1:
            raise ValueError(f"need patch_size >= 1 and depth >= 1, got {patch_size}, {depth}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.patch_size, self.width, self.field_channels = patch_size, width, field_channels
        input_channels = in_channels + (field_channels + 1 if field_channels else 0)
        self.patch_embed = nn.Conv2d(input_channels, width, patch_size, stride=patch_size)
        self.embedding = ConditionEmbedding(width, num_features=noise_features, num_classes=num_classes,
                                            vector_dim=vector_dim, noise_embedding=noise_embedding,
                                            time_scale=time_scale)
        self.blocks = nn.ModuleList(DiTBlock(width, num_heads=num_heads, mlp_ratio=mlp_ratio, dropout=dropout)
                                    for _ in range(depth))
        self.norm_out = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation_out = zero_(nn.Linear(width, 2 * width))
        self.linear_out = zero_(nn.Linear(width, patch_size * patch_size * self.out_channels))
        init_dit_weights(self)

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None,
                cond: dict[str, Tensor] | None = None) -> Tensor:
        cond = cond or {}
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DiT expects x of shape [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        b, _, height, width = x.shape
        p = self.patch_size
        c = self.embedding(t, cond, x)
        h = F.pad(with_fields(x, cond, self.field_channels), (0, -width % p, 0, -height % p))
        grid_h, grid_w = h.shape[-2] // p, h.shape[-1] // p
        tokens = self.patch_embed(h).flatten(2).transpose(1, 2)  # [B, N, width], row-major patches
        tokens = tokens + sincos_2d(self.width, grid_h, grid_w).to(tokens)
        for block in self.blocks:
            tokens = block(tokens, c)
        shift, scale = self.modulation_out(F.silu(c))[:, None].chunk(2, dim=-1)
        patches = self.linear_out(modulate(self.norm_out(tokens), shift, scale))  # [B, N, p p C_out]
        out = patches.reshape(b, grid_h, grid_w, p, p, self.out_channels).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(b, self.out_channels, grid_h * p, grid_w * p)[..., :height, :width]


def init_dit_weights(net: nn.Module) -> None:
    """DiT's initialisation (Peebles & Xie 2023) of ``net`` (``blocks``, ``patch_embed``, ``embedding``,
    ``modulation_out``, ``linear_out``, ``width``): Xavier-uniform linears (the patch embedding seen as
    one), N(0, 0.02) condition embeddings; the modulations and the output stay at zero."""
    zero = {id(m) for m in (net.modulation_out, net.linear_out, *(b.modulation for b in net.blocks))}
    for m in net.blocks.modules():
        if isinstance(m, nn.Linear) and id(m) not in zero:
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.xavier_uniform_(net.patch_embed.weight.view(net.width, -1))
    nn.init.zeros_(net.patch_embed.bias)
    for m in net.embedding.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
