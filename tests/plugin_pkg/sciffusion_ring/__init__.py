"""An example domain plugin: 2-D points on a noisy ring of radius ``radius``."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from sciffusion.domain import Batch, Domain
from sciffusion.space import DenseSpace


class RingNet(nn.Module):
    """net(x [B, 2], t [B], space, cond) -> [B, 2]."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x, t, space, cond):
        return self.mlp(torch.cat([x, t.to(x.dtype)[:, None]], dim=1))


class RingDomain(Domain):
    name = "ring"

    def __init__(self, *, radius: float = 2.0, width: float = 0.1, size: int = 1024):
        self.radius, self.width, self.size = radius, width, size

    def dataset(self, split: str) -> TensorDataset:
        g = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        angle = 2 * torch.pi * torch.rand(self.size, generator=g)
        r = self.radius + self.width * torch.randn(self.size, generator=g)
        return TensorDataset(torch.stack([r * angle.cos(), r * angle.sin()], dim=1))

    def collate(self, items) -> Batch:
        return Batch(torch.stack([item[0] for item in items]), DenseSpace())

    def network(self, **options) -> RingNet:
        return RingNet(**options)

    def template(self, num_samples: int, *, generator=None, cond=None):
        return torch.zeros(num_samples, 2), DenseSpace()

    def decode(self, x: Tensor, space, cond=None) -> list[list[float]]:
        return x.tolist()

    def save(self, objects, out_dir: Path) -> list[Path]:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        path = Path(out_dir) / "points.json"
        path.write_text(json.dumps(objects))
        return [path]

    def figure(self, objects, path: Path) -> Path:
        Path(path).write_text(f"{len(objects)} points\n")  # a real plugin would draw here
        return Path(path)

    def metrics(self, samples, reference) -> dict[str, float]:
        radii = torch.tensor(samples).norm(dim=1)
        return {"radius_error": float((radii.mean() - self.radius).abs())}
