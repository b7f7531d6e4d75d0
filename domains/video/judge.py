"""A judge for Moving-MNIST clips: two small classifiers trained here on real clips, whose features and
predictions score generated clips ``[N, 1, T, H, W]`` in [-1, 1] (``judge_metrics``).

    frame classifier  one frame ``[1, H, W]`` -> which of the 10 digits it shows (multi-label: two digits,
                      one label when both are the same digit); its penultimate features (128) give the
                      per-frame Frechet distance ``frame_fd``
    clip classifier   a whole clip ``[1, T, H, W]`` -> the same digit set, and whether the clip is real,
                      temporally shuffled or frozen; its pooled features (128) give ``video_fd`` (an FVD
                      on a classifier trained here: no I3D weights can be downloaded)

Why the clip classifier also learns real / shuffled / frozen: the digit set can be read from any single
frame, so a clip classifier trained on digits alone may pool per-frame evidence and ignore time; its
features, and so ``video_fd``, would then barely tell a moving clip from its frames in any order. Making
it tell a real clip from the same frames shuffled (too much change between frames, the failure of an
untrained video model) or frozen (no change) forces motion into the pooled features. Real clips are
also shown time-reversed, which is still real motion (bouncing at constant speed is reversible), so the
judge does not learn an arrow of time that Moving MNIST does not have.

Both are trained on frames and clips of the training split of ``data.MovingDigits`` (seeded, generated
on the fly) by ``experiments/video/train_judge.py``, which writes ``weights/moving_digits_judge_<size>px.pt``
(``torch.load(..., weights_only=True)``-safe: configs, state dicts and a ``meta`` dict of plain values).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_DIGITS = 10
TEMPORAL_KINDS = ("real", "shuffled", "frozen")  # the clip classifier's second head
THRESHOLD = 0.5  # a digit is "present" in a frame when its sigmoid probability exceeds this
WEIGHTS_DIR = Path(__file__).parent / "weights"
TRAIN_COMMAND = "python experiments/video/train_judge.py --size {size}"


def weights_path(size: int) -> Path:
    """The shipped judge for ``size`` x ``size`` frames."""
    return WEIGHTS_DIR / f"moving_digits_judge_{size}px.pt"


# -- the networks ------------------------------------------------------------------------------------
def _conv2d(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]


def _stem(width: int) -> nn.Sequential:
    """Per frame ``[B, 1, H, W]`` -> ``[B, 2 width, H/4, W/4]``: a conv at full resolution (a 14-px digit's
    strokes are 1-2 px wide), a 2x max pool, a conv, a 2x max pool. Max pools keep a stroke wherever it
    falls. Shared in layout by both classifiers, so the clip classifier can start from the frame one's."""
    return nn.Sequential(*_conv2d(1, width), nn.MaxPool2d(2, ceil_mode=True), *_conv2d(width, 2 * width),
                         nn.MaxPool2d(2, ceil_mode=True))


class GlobalMaxMean(nn.Module):
    """``[B, C, ...]`` -> ``[B, 2C]``: the maximum and the mean over every position. The maximum answers
    "is this digit anywhere" (two digits at any place, the multi-instance question), the mean how much."""

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(2)
        return torch.cat([flat.amax(-1), flat.mean(-1)], dim=1)


class FrameClassifier(nn.Module):
    """``[B, 1, H, W]`` in [-1, 1] -> digit logits ``[B, 10]`` (multi-label, BCE): ``_stem``, a conv at a
    quarter resolution (receptive field ~18 px, a whole 14-px digit), global max and mean pooling and
    ``feature_dim`` features (SiLU), the per-frame FD's feature space. Any frame size."""

    def __init__(self, *, width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.config = {"width": width, "feature_dim": feature_dim}
        self.stem = _stem(width)
        self.body = nn.Sequential(*_conv2d(2 * width, 4 * width), GlobalMaxMean(),
                                  nn.Linear(8 * width, feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, NUM_DIGITS)

    def features(self, frames: Tensor) -> Tensor:
        """Penultimate features ``[B, feature_dim]`` of ``frames [B, 1, H, W]``."""
        return self.body(self.stem(frames))

    def forward(self, frames: Tensor) -> Tensor:
        return self.head(self.features(frames))


class ClipClassifier(nn.Module):
    """``[B, 1, T, H, W]`` in [-1, 1] -> (digit logits ``[B, 10]``, real/shuffled/frozen logits ``[B, 3]``).

    ``_stem`` on every frame, then a (2+1)-D block at a quarter resolution: a 3x3 spatial conv and a
    3-frame temporal conv (each output sees three consecutive frames, so the frame-to-frame
    displacement, ~0.5 px a frame at 32 px, and its absence or randomness, are visible), global max and
    mean pooling over (T, H, W) and ``feature_dim`` features (SiLU) that both heads read and ``video_fd``
    compares. Any T >= 1 and frame size."""

    def __init__(self, *, width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.config = {"width": width, "feature_dim": feature_dim}
        self.stem = _stem(width)
        c = 4 * width
        self.spatial = nn.Sequential(*_conv2d(2 * width, c))
        self.temporal = nn.Sequential(nn.Conv3d(c, c, (3, 1, 1), padding=(1, 0, 0)), nn.GroupNorm(8, c), nn.SiLU())
        nn.init.zeros_(self.temporal[1].weight)  # the residual starts at zero: a time-pooled frame classifier
        self.pool = nn.Sequential(GlobalMaxMean(), nn.Linear(2 * c, feature_dim), nn.SiLU())
        self.digit_head = nn.Linear(feature_dim, NUM_DIGITS)
        self.temporal_head = nn.Linear(feature_dim, len(TEMPORAL_KINDS))

    def features(self, clips: Tensor) -> Tensor:
        """Pooled features ``[B, feature_dim]`` of ``clips [B, 1, T, H, W]``."""
        b, c, t, h, w = clips.shape
        y = self.spatial(self.stem(clips.transpose(1, 2).reshape(b * t, c, h, w)))
        y = y.reshape(b, t, *y.shape[1:]).transpose(1, 2)
        return self.pool(y + self.temporal(y))  # residual: the spatial (digit) evidence passes unchanged

    def forward(self, clips: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(clips)
        return self.digit_head(f), self.temporal_head(f)


@dataclass
class Judge:
    """The two classifiers and their provenance (``meta``: frame size, accuracies, the command)."""

    frame: FrameClassifier
    clip: ClipClassifier
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"frame": {"config": dict(self.frame.config), "state_dict": self.frame.state_dict()},
                    "clip": {"config": dict(self.clip.config), "state_dict": self.clip.state_dict()},
                    "meta": dict(self.meta)}, path)
        return path


def load_judge(size_or_path: int | str | Path = 32) -> Judge:
    """The judge for ``size``-pixel frames (``weights/moving_digits_judge_<size>px.pt``) or from a file,
    in eval mode. A missing file names the command that trains it."""
    from sciffusion.training.checkpoint import safe_load

    if isinstance(size_or_path, int):
        path, command = weights_path(size_or_path), TRAIN_COMMAND.format(size=size_or_path)
    else:
        path, command = Path(size_or_path), TRAIN_COMMAND.format(size="<frame size>")
    fix = f"train it with `{command}` (a few CPU minutes), or pass the path of a judge file"
    if not path.is_file():
        raise FileNotFoundError(f"no Moving-MNIST judge at {path}; {fix}")
    state = safe_load(path, what="Moving-MNIST judge", fix=fix)
    frame, clip = FrameClassifier(**state["frame"]["config"]), ClipClassifier(**state["clip"]["config"])
    frame.load_state_dict(state["frame"]["state_dict"])
    clip.load_state_dict(state["clip"]["state_dict"])
    return Judge(frame.eval(), clip.eval(), dict(state.get("meta", {})))


# -- targets, corruptions and the training data -------------------------------------------------------
def digit_targets(digit_sets: Sequence[Sequence[int]]) -> Tensor:
    """Multi-hot ``[N, 10]`` float targets: 1 for each digit a clip holds (a pair of equal digits is one)."""
    target = torch.zeros(len(digit_sets), NUM_DIGITS)
    for i, digits in enumerate(digit_sets):
        target[i, list(digits)] = 1.0
    return target


def corrupt_time(clips: Tensor, kinds: Tensor, generator: torch.Generator) -> Tensor:
    """``clips [B, C, T, H, W]`` made ``TEMPORAL_KINDS[kinds[b]]``: real clips reversed in time with
    probability 1/2, shuffled ones with their frames in a random order, frozen ones one random frame
    repeated."""
    out = clips.clone()
    t = clips.shape[2]
    for b, kind in enumerate(kinds.tolist()):
        if TEMPORAL_KINDS[kind] == "real":
            if torch.rand((), generator=generator) < 0.5:
                out[b] = clips[b].flip(1)
        elif TEMPORAL_KINDS[kind] == "shuffled":
            out[b] = clips[b][:, torch.randperm(t, generator=generator)]
        else:
            out[b] = clips[b][:, int(torch.randint(0, t, (), generator=generator))][:, None].expand_as(clips[b])
    return out


def real_clips(split: str, count: int, *, size: int, frames: int = 16, seed: int = 0,
               start: int = 0) -> tuple[Tensor, list[tuple[int, ...]]]:
    """``count`` Moving-MNIST clips ``[N, 1, T, H, W]`` in [-1, 1] of ``split`` (clips ``start`` .. ``start +
    count - 1`` of ``data.MovingDigits(split, seed=seed)``, two digits) and their digit classes."""
    from .data import MovingDigits, to_symmetric

    data = MovingDigits(split, size=size, frames=frames, num_clips=start + count, seed=seed)
    pixels, digits = zip(*(data.pixels(i) for i in range(start, start + count)))
    return to_symmetric(torch.from_numpy(np.stack(pixels)))[:, None], list(digits)


def _optimiser(model: nn.Module, steps: int, lr: float) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW with a linear warm-up over the first 5% of the steps, then a cosine decay to zero."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    factor = lambda step: min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(step / max(steps, 1), 1.0))))
    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def train_frame_classifier(clips: Tensor, digits: Sequence[Sequence[int]], *, steps: int = 2400,
                           batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                           progress: bool = True, **config) -> FrameClassifier:
    """A ``FrameClassifier`` trained with BCE on random frames of ``clips [N, 1, T, H, W]`` (targets: each
    clip's digits), seeded end to end."""
    from tqdm.auto import tqdm

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = FrameClassifier(**config)
    generator = torch.Generator().manual_seed(seed)
    targets = digit_targets(digits)
    n, _, t = clips.shape[:3]
    optimiser, schedule = _optimiser(model, steps, lr)
    model.train()
    for _ in tqdm(range(steps), desc="frame classifier", disable=not progress, mininterval=10):
        which, when = torch.randint(0, n, (batch_size,), generator=generator), torch.randint(0, t, (batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(model(clips[which, :, when]), targets[which])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return model.eval()


def train_clip_classifier(clips: Tensor, digits: Sequence[Sequence[int]], *, steps: int = 300, batch_size: int = 16,
                          lr: float = 3e-3, seed: int = 0, init: FrameClassifier | None = None, progress: bool = True,
                          **config) -> ClipClassifier:
    """A ``ClipClassifier`` trained on ``clips [N, 1, T, H, W]``: BCE on the digits plus cross-entropy on
    real / shuffled / frozen (half the batch real, a quarter each corrupted; see ``corrupt_time``).
    ``init``: a trained frame classifier of the same width and feature_dim whose every layer it starts
    from (with the temporal residual at zero it is then that classifier pooled over all frames, the
    digits of a clip being those of its frames), so that its steps go to learning motion."""
    from tqdm.auto import tqdm

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ClipClassifier(**config)
    if init is not None:
        model.stem.load_state_dict(init.stem.state_dict())
        model.spatial.load_state_dict(init.body[:3].state_dict())
        model.pool[1].load_state_dict(init.body[4].state_dict())
        model.digit_head.load_state_dict(init.head.state_dict())
    generator = torch.Generator().manual_seed(seed)
    targets = digit_targets(digits)
    optimiser, schedule = _optimiser(model, steps, lr)
    kinds = torch.tensor([0, 0, 1, 2]).repeat(-(-batch_size // 4))[:batch_size]
    model.train()
    for _ in tqdm(range(steps), desc="clip classifier", disable=not progress, mininterval=10):
        which = torch.randint(0, len(clips), (batch_size,), generator=generator)
        digit_logits, temporal_logits = model(corrupt_time(clips[which], kinds, generator))
        loss = F.binary_cross_entropy_with_logits(digit_logits, targets[which]) + F.cross_entropy(temporal_logits, kinds)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return model.eval()


# -- predictions and metrics --------------------------------------------------------------------------
def check_clips(name: str, clips: np.ndarray | Tensor, size: int | None = None) -> Tensor:
    """``clips`` as a float32 tensor ``[N, 1, T, H, W]``, or a ValueError naming what is wrong."""
    x = torch.as_tensor(np.asarray(clips) if not isinstance(clips, Tensor) else clips).float()
    if x.ndim != 5 or x.shape[1] != 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must be Moving-MNIST clips [N, 1, T, H, W] (one channel, values in [-1, 1]), got "
                         f"shape {tuple(x.shape)}")
    if size is not None and x.shape[-2:] != (size, size):
        raise ValueError(f"{name} have {x.shape[-2]}x{x.shape[-1]} frames but the judge was trained on {size}x{size}; "
                         f"load the judge for their size (load_judge({x.shape[-1]}), trained by "
                         f"`{TRAIN_COMMAND.format(size=x.shape[-1])}`)")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} hold NaN or infinite values")
    return x


@torch.no_grad()
def _batched(fn, x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def frames_of(clips: Tensor) -> Tensor:
    """``[N, 1, T, H, W]`` -> ``[N * T, 1, H, W]`` (clip-major)."""
    n, c, t, h, w = clips.shape
    return clips.transpose(1, 2).reshape(n * t, c, h, w)


def frame_digit_sets(judge: Judge, clips: Tensor, *, batch_size: int = 512) -> Tensor:
    """Bool ``[N, T, 10]``: the digits the frame classifier finds in each frame (probability > 0.5)."""
    logits = _batched(judge.frame, frames_of(clips), batch_size)
    return (logits.sigmoid() > THRESHOLD).reshape(clips.shape[0], clips.shape[2], NUM_DIGITS)


def identity_kept(sets: Tensor) -> float:
    """Digit identity across frames, from predicted digit sets ``[N, T, 10]`` (bool).

    A clip's identity is the non-empty digit set its frames show most often (ties: the one seen first);
    the score is the fraction of frames, averaged over clips, whose set equals their clip's identity.
    A frame where the classifier finds no digit never counts as kept, and a clip with no digit in any
    frame scores 0, so blank or noise clips cannot keep an identity. A majority rather than the first
    frame: one ambiguous frame (two digits overlapping) must not decide for the whole clip. Real clips
    score a little under 1 (overlaps and the classifier's errors; see the calibration rows)."""
    scores = []
    for clip in sets.numpy():
        keys = [tuple(np.flatnonzero(frame)) for frame in clip]
        counts = Counter(k for k in keys if k)
        if not counts:
            scores.append(0.0)
            continue
        best = max(counts.values())
        identity = next(k for k in keys if k and counts[k] == best)
        scores.append(sum(k == identity for k in keys) / len(keys))
    return float(np.mean(scores))


def as_digit_sets(given_digits: Sequence, count: int) -> list[frozenset[int]]:
    """Digit sets of ``count`` clips from pair labels (37, or 7 for a 0 and a 7) or digits ((3, 7), {3, 7})."""
    if len(given_digits) != count:
        raise ValueError(f"given_digits must name the digits of each of the {count} clips, got {len(given_digits)}")
    sets = []
    for item in given_digits:
        if not isinstance(item, (set, frozenset)) and np.ndim(item) == 0:
            from .data import label_digits

            if not 0 <= int(item) < 100:
                raise ValueError(f"a digit-pair label is a number in 0..99 (37: a 3 and a 7), got {item}")
            sets.append(frozenset(label_digits(int(item), 2)))
        else:
            digits = [int(d) for d in item]
            if not digits or min(digits) < 0 or max(digits) > 9:
                raise ValueError(f"digits must be in 0..9, got {tuple(item)}")
            sets.append(frozenset(digits))
    return sets


def digits_recognised(sets: Tensor, digit_sets: Sequence[frozenset[int]]) -> float:
    """Fraction of frames ``sets [N, T, 10]`` whose predicted digit set is exactly their clip's true one."""
    truth = digit_targets([sorted(s) for s in digit_sets]).bool()
    return (sets == truth[:, None]).all(dim=-1).double().mean().item()


@torch.no_grad()
def judge_metrics(samples: np.ndarray | Tensor, reference: np.ndarray | Tensor, *, given_digits: Sequence | None = None,
                  given_frames: int = 0, judge: Judge | None = None, batch_size: int = 256) -> dict[str, float]:
    """Classifier scores of Moving-MNIST ``samples`` against real ``reference`` clips (``[N, 1, T, H, W]`` in
    [-1, 1]; N may differ; T and the frame size must agree). ``judge`` defaults to the shipped one for
    the frame size.

        frame_fd           Frechet distance of the frame classifier's features, frames of all clips pooled
        video_fd           Frechet distance of the clip classifier's pooled features, whole clips
        identity_kept      digit identity across frames (``identity_kept``): 1 when every frame shows the
                           clip's majority digit set
        digits_per_frame   mean number of digits found per frame (real two-digit clips: ~1.9)
        judged_real        fraction of clips the clip classifier calls real (not shuffled or frozen)
        digits_recognised  with ``given_digits`` (each clip's true digits: pair labels 37 or tuples): the
                           fraction of frames whose predicted set is exactly that pair (a forecast that
                           continues the given digits)

    ``given_frames = k``: the first k frames of each sample were given (forecasts), not generated; they
    are left out of every per-frame score (frame_fd, identity_kept, digits_per_frame, digits_recognised).
    ``video_fd`` and ``judged_real`` always see whole clips. Both FDs are biased upwards at small N:
    compare with real clips scored at the same N (``experiments/video/evaluate_moving_digits.py``).
    """
    from sciffusion_domains.dense.metrics import frechet_distance_features

    size = check_clips("samples", samples).shape[-1]
    judge = judge if judge is not None else load_judge(size)
    x, ref = check_clips("samples", samples, judge.size), check_clips("reference", reference, judge.size)
    if x.shape[2] != ref.shape[2]:
        raise ValueError(f"samples have {x.shape[2]} frames and reference clips {ref.shape[2]}; video_fd compares "
                         "clips of the same length")
    if len(x) < 2 or len(ref) < 2:
        raise ValueError(f"Frechet distances need at least 2 clips each, got {len(x)} samples and {len(ref)} references")
    if not 0 <= given_frames < x.shape[2]:
        raise ValueError(f"given_frames must be in 0..{x.shape[2] - 1}, got {given_frames}")
    generated = x[:, :, given_frames:]
    frame_features = lambda clips: _batched(judge.frame.features, frames_of(clips), batch_size)
    clip_features = _batched(judge.clip.features, x, batch_size)
    ref_clip_features = _batched(judge.clip.features, ref, batch_size)
    sets = frame_digit_sets(judge, generated, batch_size=batch_size)
    scores = {"frame_fd": frechet_distance_features(frame_features(ref), frame_features(generated)),
              "video_fd": frechet_distance_features(ref_clip_features, clip_features),
              "identity_kept": identity_kept(sets),
              "digits_per_frame": sets.sum(-1).double().mean().item(),
              "judged_real": (judge.clip.temporal_head(clip_features).argmax(-1) == 0).double().mean().item()}
    if given_digits is not None:
        scores["digits_recognised"] = digits_recognised(sets, as_digit_sets(given_digits, len(x)))
    return scores


@torch.no_grad()
def judge_accuracy(judge: Judge, clips: Tensor, digits: Sequence[Sequence[int]], *, seed: int = 0) -> dict[str, float]:
    """Test accuracies of both classifiers on real ``clips [N, 1, T, H, W]`` with their ``digits``:
    ``frame_set_accuracy`` (every frame's predicted set is exactly its clip's), ``frame_digit_accuracy``
    (per digit and frame, of the 10 present/absent decisions), ``clip_set_accuracy`` (real clips) and
    ``temporal_accuracy`` (real / shuffled / frozen, each clip once as each kind)."""
    sets = frame_digit_sets(judge, clips)
    truth = digit_targets(digits).bool()
    generator = torch.Generator().manual_seed(seed)
    correct_kind, clip_correct = [], []
    for kind in range(len(TEMPORAL_KINDS)):
        kinds = torch.full((len(clips),), kind)
        digit_logits, temporal_logits = _batched(lambda c: torch.cat(judge.clip(c), dim=1),
                                                 corrupt_time(clips, kinds, generator), 256).split([NUM_DIGITS, 3], 1)
        correct_kind.append(temporal_logits.argmax(-1) == kind)
        if kind == 0:
            clip_correct = ((digit_logits.sigmoid() > THRESHOLD) == truth).all(-1)
    return {"frame_set_accuracy": (sets == truth[:, None]).all(-1).double().mean().item(),
            "frame_digit_accuracy": (sets == truth[:, None]).double().mean().item(),
            "clip_set_accuracy": clip_correct.double().mean().item(),
            "temporal_accuracy": torch.cat(correct_kind).double().mean().item(),
            **{f"temporal_accuracy_{name}": c.double().mean().item() for name, c in zip(TEMPORAL_KINDS, correct_kind)}}
