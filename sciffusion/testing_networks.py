"""Test helpers for denoising networks (re-exported by ``sciffusion.testing``): signal in every path of a
zero-initialised network, and the adaLN-zero class conditioning check."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def trained_like(net: nn.Module, *, seed: int = 1, std: float = 0.2) -> nn.Module:
    """``net`` in eval mode with its all-zero parameters (adaLN modulations, output layers, residual
    branches that start at zero) drawn from N(0, std^2), so that every path carries signal, as after
    training: tests of what a network mixes then see every input's influence."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.normal_(0.0, std)
    return net.eval()


def assert_adaln_zero_class_conditioning(net: nn.Module, x: Tensor, t: Tensor, labels: Tensor, num_classes: int) -> None:
    """With adaLN-zero the class cannot matter before the zero modulations have moved: after one Adam step
    on ``x`` the output ignores the labels and is non-zero, after the second it depends on them."""
    torch.manual_seed(0)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    gaps = []
    for _ in range(2):
        optimiser.zero_grad()
        ((net(x, t, None, {"label": labels}) - x) ** 2).mean().backward()
        optimiser.step()
        with torch.no_grad():
            out = net(x, t, None, {"label": labels})
            gaps.append(float((out - net(x, t, None, {"label": (labels + num_classes // 2) % num_classes})).abs().max()))
        assert out.abs().max() > 1e-3, "the output stayed at zero after a training step"
    assert gaps[0] == 0, f"the class changed the output before the modulations moved (by {gaps[0]:.3g})"
    assert gaps[1] > 1e-4, f"the class does not change the output after two steps (by {gaps[1]:.3g})"
