"""Clip statistics that need no trained judge: how far samples are from reference clips in their
per-channel moments and in their motion (frame-to-frame change). Classifier-based scores (per-frame
Frechet distance, digit identity across frames) and energy spectra are left for issue #17."""
from __future__ import annotations

import numpy as np


def motion(clips: np.ndarray) -> np.ndarray:
    """Mean absolute frame-to-frame change of each clip ``[N, C, T, H, W] -> [N]``."""
    if clips.shape[2] < 2:
        return np.zeros(len(clips))
    return np.abs(np.diff(clips, axis=2)).mean(axis=(1, 2, 3, 4))


def clip_metrics(samples: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """``samples`` and ``reference`` ``[N, C, T, H, W]`` in data units (shapes must agree but for N):

        mean_error  |mean(samples) - mean(reference)|, averaged over channels
        std_ratio   std(samples) / std(reference), averaged over channels (1 is right)
        motion      mean |x[t+1] - x[t]| of the samples
        motion_ratio  motion(samples) / motion(reference) (1 is right; 0 for frozen clips)
    """
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"samples {samples.shape[1:]} and reference {reference.shape[1:]} clips differ in shape "
                         "[C, T, H, W]")
    axes = (0, 2, 3, 4)
    mean_error = np.abs(samples.mean(axis=axes) - reference.mean(axis=axes)).mean()
    std_ratio = (samples.std(axis=axes) / np.maximum(reference.std(axis=axes), 1e-12)).mean()
    moving, ref_moving = motion(samples).mean(), motion(reference).mean()
    return {"mean_error": float(mean_error), "std_ratio": float(std_ratio), "motion": float(moving),
            "motion_ratio": float(moving / max(ref_moving, 1e-12))}
