"""The toy domain: samples of ``sciffusion.testing.gaussian_mixture_2d``, whose exact density makes
every metric an exact comparison with the target rather than with a finite reference set."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sciffusion.domain import Batch, Domain
from sciffusion.parameterization import Cond
from sciffusion.plotting import save_figure
from sciffusion.categorical import CategoricalProcess
from sciffusion.joint import JointProcess
from sciffusion.space import DenseSpace, Space
from sciffusion.state import PartsSpace
from sciffusion.testing import gaussian_mixture_2d, moment_errors, mode_weights

from .network import ToyJointMLP, ToyMLP

SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


class PointSet(Dataset):
    """Points [N, 2] and their mixture components [N]; items are (point [2], label [])."""

    def __init__(self, points: Tensor, labels: Tensor):
        self.points, self.labels = points, labels

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.points[i], self.labels[i]

    def __getitems__(self, indices: list[int]) -> "PointSet":
        # The DataLoader fetches a whole batch through this when present: one gather instead of one
        # Python call per item, and the result is itself a sequence of items that collate() accepts.
        idx = torch.as_tensor(indices)
        return PointSet(self.points[idx], self.labels[idx])


class ToyDomain(Domain):
    """Three unequally weighted 2-D Gaussian modes (``separation`` apart, width ``std``).

    ``conditional`` makes the mixture component a class label (``cond["label"]``), which exercises
    condition dropout and classifier-free guidance on a target whose conditionals are exact too.
    ``joint`` generates the component as a categorical part of the state, {"point", "label"}, jointly
    with the point (a mixed continuous + categorical example; ``experiment=toy_joint``).
    """

    name = "toy"

    def __init__(self, *, separation: float = 4.0, std: float = 0.5, train_size: int = 8192,
                 test_size: int = 2048, seed: int = 0, conditional: bool = False, joint: bool = False):
        if joint and conditional:
            raise ValueError("joint=true generates the label with the point; it cannot also be a condition "
                             "(set conditional=false)")
        self.target = gaussian_mixture_2d(separation=separation, std=std)
        self.sizes = {"train": train_size, "val": test_size, "test": test_size}
        self.seed, self.conditional, self.joint = seed, conditional, joint

    @property
    def num_classes(self) -> int:
        return len(self.target.weights)

    def dataset(self, split: str) -> PointSet:
        if split not in self.sizes:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(self.sizes)}")
        g = torch.Generator().manual_seed(1000 * self.seed + SPLIT_OFFSET[split])
        points, labels = self.target.sample(self.sizes[split], generator=g)
        return PointSet(points.float(), labels)

    def collate(self, items: Sequence[tuple[Tensor, Tensor]]) -> Batch:
        if isinstance(items, PointSet):
            points, labels = items.points, items.labels
        else:
            points, labels = (torch.stack(column) for column in zip(*items))
        if self.joint:
            return Batch({"point": points, "label": labels}, self._joint_space())
        return Batch(points, DenseSpace(), {"label": labels} if self.conditional else {})

    @staticmethod
    def _joint_space() -> PartsSpace:
        return PartsSpace({"point": DenseSpace(), "label": DenseSpace()})

    def network(self, **options: Any) -> ToyMLP | ToyJointMLP:
        if self.joint:
            return ToyJointMLP(2, num_classes=self.num_classes, **options)
        return ToyMLP(2, num_classes=self.num_classes if self.conditional else 0, **options)

    def prepare_process(self, process: Any) -> None:
        """A marginal prior on the label uses the mixture's exact weights."""
        if self.joint and isinstance(process, JointProcess):
            label = process["label"]
            if isinstance(label, CategoricalProcess) and label.prior == "marginal":
                label.set_marginals(self.target.weights)

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None,
                  label: int | None = None) -> Cond:
        if not self.conditional:
            return super().condition(num_samples, generator=generator, **({} if label is None else {"label": label}))
        if label is None:
            labels = torch.multinomial(self.target.weights, num_samples, replacement=True, generator=generator)
        elif 0 <= label < self.num_classes:
            labels = torch.full((num_samples,), label, dtype=torch.long)
        else:
            raise ValueError(f"label must be a mixture component in 0..{self.num_classes - 1}, got {label}")
        return {"label": labels}

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        if self.joint:
            return {"point": torch.zeros(num_samples, 2), "label": torch.zeros(num_samples, dtype=torch.long)}, \
                self._joint_space()
        return torch.zeros(num_samples, 2), DenseSpace()

    def decode(self, x: Tensor | dict[str, Tensor], space: Space, cond: Cond | None = None) -> list[np.ndarray]:
        """Points [2] (and, for a joint state, [3]: x, y, label)."""
        if isinstance(x, dict):
            x = torch.cat([x["point"].double(), x["label"].double()[:, None]], dim=1)
        return list(x.detach().to("cpu", torch.float64).numpy())

    def save(self, objects: Sequence[np.ndarray], out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        points = np.stack(objects) if len(objects) else np.zeros((0, 3 if self.joint else 2))
        npy, csv = out_dir / "samples.npy", out_dir / "samples.csv"
        np.save(npy, points)
        np.savetxt(csv, points, delimiter=",", header="x,y,label" if points.shape[1] == 3 else "x,y", comments="")
        return [npy, csv]

    def figure(self, objects: Sequence[np.ndarray], path: Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        points = np.stack(objects)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        # Contours of the exact target density, to judge the samples against
        lim = float(self.target.means.abs().max()) + 4 * float(self.target.eigvals.max().sqrt())
        grid = torch.linspace(-lim, lim, 150, dtype=torch.float64)
        gx, gy = torch.meshgrid(grid, grid, indexing="xy")
        log_p = self.target.log_prob(torch.stack([gx.flatten(), gy.flatten()], dim=1)).reshape(gx.shape)
        ax.contour(gx.numpy(), gy.numpy(), log_p.numpy(), levels=np.linspace(-12, float(log_p.max()), 6),
                   colors="grey", linewidths=0.6, linestyles="solid")
        colours = points[:, 2] if points.shape[1] == 3 else None  # a joint sample's generated label
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, c=colours, cmap="viridis" if colours is not None else None,
                   label=f"{len(points)} samples" + (", coloured by generated label" if colours is not None else ""))
        means = self.target.means.numpy()
        ax.scatter(means[:, 0], means[:, 1], marker="x", c="k", s=60, label="mode centres")
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title("toy: samples over the exact density")
        fig.tight_layout()
        return save_figure(fig, path, dpi=100)

    def metrics(self, samples: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict[str, float]:
        """Moment errors and mode weights against the exact mixture; the reference set's own moment
        errors show the floor that finite sampling alone reaches."""
        x = torch.as_tensor(np.stack(samples))
        extra = {}
        if x.shape[1] == 3:  # joint samples: is each generated label the component its point sits in?
            labels, x = x[:, 2].long(), x[:, :2]
            nearest = torch.cdist(x, self.target.means).argmin(1)
            freq = torch.bincount(labels, minlength=self.num_classes).double() / len(labels)
            extra = {"label_consistency": float((nearest == labels).double().mean()),
                     "label_weight_gap": float((freq - self.target.weights).abs().max())}
            reference = [r[:2] for r in reference]
        mean_err, cov_err = moment_errors(x, self.target)
        weights = mode_weights(x, self.target)
        out = {"mean_error": mean_err, "cov_error": cov_err,
               "mode_weight_gap": float((weights - self.target.weights).abs().max()),
               "target_log_density": float(self.target.log_prob(x).mean())}
        out.update({f"mode_weight_{k}": float(w) for k, w in enumerate(weights)}, **extra)
        if len(reference):
            ref_mean, ref_cov = moment_errors(torch.as_tensor(np.stack(reference)), self.target)
            out.update(reference_mean_error=ref_mean, reference_cov_error=ref_cov)
        return out
