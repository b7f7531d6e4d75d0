"""Clip statistics that need no trained judge: how far samples are from reference clips in their
per-channel moments and in their motion (frame-to-frame change), and for physical fields (source=
turbulence) in their energy spectrum, enstrophy, divergence and temporal autocorrelation (``physics``).
Classifier-based scores (per-frame Frechet distance, digit identity across frames) are left for #17."""
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


def field_metrics(samples: np.ndarray, reference: np.ndarray, *, field: str) -> dict[str, float]:
    """Physical statistics of turbulence clips ``[N, C, T, H, W]`` (``field`` vorticity, C = 1, or staggered
    velocity, C = 2), samples against reference, pooled over clips and frames:

        spectrum_log_error   mean over shells 1 <= K <= H/2 of |log10 E_samples(K) / E_reference(K)|
        enstrophy_ratio      total enstrophy 1/2 mean(omega^2), samples over reference (1 is right)
        autocorrelation_error  mean over lags 1..T-1 of |rho_samples - rho_reference| (physics.temporal_autocorrelation)
        divergence_rms       root-mean-square discrete divergence of the samples (velocity only; 0 is right)
    """
    from . import physics

    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"samples {samples.shape[1:]} and reference {reference.shape[1:]} clips differ in shape")
    omega = {name: clips[:, 0] if field == "vorticity" else physics.vorticity(clips.transpose(0, 2, 1, 3, 4))
             for name, clips in (("samples", samples), ("reference", reference))}
    half = samples.shape[-1] // 2
    spectra = {name: mean_energy_spectrum(w) for name, w in omega.items()}
    log_ratio = physics.spectrum_log_ratio(spectra["samples"], spectra["reference"])[1:half + 1]
    rho = {name: physics.temporal_autocorrelation(clips) for name, clips in (("samples", samples), ("reference", reference))}
    scores = {"spectrum_log_error": float(np.abs(log_ratio).mean()),
              "enstrophy_ratio": float((omega["samples"] ** 2).mean() / max((omega["reference"] ** 2).mean(), 1e-30)),
              "autocorrelation_error": float(np.abs(rho["samples"][1:] - rho["reference"][1:]).mean())
              if samples.shape[2] > 1 else 0.0}
    if field == "velocity":
        scores["divergence_rms"] = float(np.sqrt((physics.divergence(samples.transpose(0, 2, 1, 3, 4)) ** 2).mean()))
    return scores


def mean_energy_spectrum(omega: np.ndarray) -> np.ndarray:
    """The energy spectrum ``[S]`` (``physics.energy_spectrum``) averaged over every leading index of a
    vorticity ``[..., H, W]``."""
    from . import physics

    spectrum = physics.energy_spectrum(omega)[1]
    return spectrum.reshape(-1, spectrum.shape[-1]).mean(axis=0)
