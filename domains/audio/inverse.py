"""Filling a gap in a clip and continuing a clip, from the command line, through the core's inpainting.

Both are inpainting in time: the spectrogram frames of ``input`` outside the edited span are known,
the frames inside it are drawn from the model given them. ``task=gap`` regenerates the frames between
``start`` and ``end`` seconds; ``task=continue`` keeps the first ``start`` seconds and generates the
rest. ``method`` picks the core guidance (``sciffusion.guidance``): ``reconstruction`` (the default,
posterior sampling with y = the known frames) or ``replace`` (known frames pasted into every x0
estimate). ``unconditional=false`` with ``cond.label=K`` asks a class-conditional model for digit K in
the edited span; by default the class is dropped and the known frames alone steer the result.

    sciffusion-sample checkpoint=domains/audio/weights/spoken_digits.ckpt guidance=gap \\
        guidance.input=clip.wav guidance.start=0.35 guidance.end=0.6 num_samples=4 out_dir=DIR
    sciffusion-sample checkpoint=... guidance=continue guidance.input=test:7 guidance.start=0.4 out_dir=DIR

``input`` is a WAV/FLAC file (made mono, resampled and centred in the clip length without trimming)
or ``test:K``, the K-th held-out clip (test split) of the domain's data. Into ``out_dir`` go ``input.wav``,
``observation.wav`` (the input with the edited span silenced: what the model is given), ``edit.json``
(the span in seconds and frames) and ``observation.png``; the sample CLI adds the edited clips.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess
from sciffusion_domains.dense.inverse import METHODS, known_values_guidance

from .data import read_clip
from .domain import AudioDomain

TASKS = ("gap", "continue")


def read_input(domain: AudioDomain, input: str) -> np.ndarray:
    """The clip to edit ``[samples]``: a file, or ``test:K`` for the K-th held-out clip."""
    if input.startswith("test:"):
        test, index = domain.waveforms("test")[0], int(input.split(":", 1)[1])
        if not 0 <= index < len(test):
            raise ValueError(f"guidance.input=test:K needs K in 0..{len(test) - 1}, got {index}")
        return test[index].numpy()
    if not Path(input).is_file():
        raise FileNotFoundError(f"guidance.input={input!r} is neither a file nor test:K; give the clip to edit")
    return read_clip(input, sample_rate=domain.spec.sample_rate, seconds=domain.seconds)


def edited_frames(domain: AudioDomain, task: str, start: float, end: float | None) -> Tensor:
    """bool ``[frames]``, True on the frames to generate: those whose centre lies in [start, end)
    seconds (``end`` is the clip's end for ``continue``)."""
    if task not in TASKS:
        raise ValueError(f"unknown guidance.task {task!r}; choose one of {TASKS}")
    if task == "continue":
        if end is not None:
            raise ValueError("task=continue generates everything after start; leave guidance.end unset")
        end = domain.seconds
    elif end is None:
        raise ValueError("task=gap needs guidance.end (seconds), after guidance.start")
    if not 0 <= start < end <= domain.seconds:
        raise ValueError(f"need 0 <= start < end <= {domain.seconds} seconds, got start={start}, end={end}")
    frames = domain.spec.frames(domain.samples)
    centres = torch.arange(frames) * domain.spec.hop_length / domain.spec.sample_rate
    edited = (centres >= start) & (centres < end)
    if not edited.any() or edited.all():
        raise ValueError(f"the span [{start}, {end}) s covers {int(edited.sum())} of {frames} frames; "
                         "it must cover some frames and leave some known")
    return edited


def edit(denoiser: Denoiser, *, process: NoiseProcess, domain: AudioDomain, input: str, task: str = "gap",
         start: float = 0.4, end: float | None = None, method: str = "reconstruction", noise_std: float = 0.0,
         scale: float = 1.0, zeta: float = 1.0, data_var: float = 1.0, unconditional: bool = True,
         out_dir: str | None = None):
    """The guided denoiser that regenerates the edited span of ``input`` (see the module docstring).
    ``data_var`` is 1: spectrograms are standardised per frequency bin."""
    if method not in METHODS:
        raise ValueError(f"unknown guidance.method {method!r}; choose one of {METHODS}")
    edited = edited_frames(domain, task, start, end)
    waveform = read_input(domain, input)
    x = domain.encode(waveform[None])  # [1, 1, bins, frames]
    known = (~edited).expand(x.shape[-2], -1)[None, None]  # [1, 1, bins, frames]
    observed = torch.where(known, x, torch.zeros(()))
    _write(out_dir, domain, waveform, observed, edited, task=task, start=start, end=end, input=input)
    return known_values_guidance(denoiser, process, observed, known, method=method, noise_std=noise_std,
                                 scale=scale, zeta=zeta, data_var=data_var, unconditional=unconditional)


def _write(out_dir: str | None, domain: AudioDomain, waveform: np.ndarray, observed: Tensor, edited: Tensor,
           **span) -> None:
    """Rank 0 writes what the model is given, to listen to and to look at."""
    import soundfile

    from sciffusion.training import distributed

    if out_dir is None or distributed.world()[0] != 0:
        return
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rate, hop = domain.spec.sample_rate, domain.spec.hop_length
    soundfile.write(folder / "input.wav", waveform, rate, subtype="PCM_16")
    silenced = waveform.copy()
    first, last = int(edited.nonzero()[0]), int(edited.nonzero()[-1])
    silenced[max(0, first * hop - hop // 2):min(len(silenced), last * hop + hop // 2)] = 0.0
    soundfile.write(folder / "observation.wav", silenced, rate, subtype="PCM_16")
    (folder / "edit.json").write_text(json.dumps({**span, "frames": [first, last + 1],
                                                  "hop_seconds": hop / rate}, indent=2))
    log_spec = domain.normalizer.decode(observed[:, 0])[0].numpy()
    log_spec[:, edited.numpy()] = np.nan  # shown blank
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2.6))
    ax.imshow(log_spec, origin="lower", aspect="auto", cmap="magma")
    ax.set_title(f"given ({span['task']}: frames {first}-{last} generated)", fontsize=9)
    ax.set_xlabel("frame")
    ax.set_ylabel("mel band")
    fig.tight_layout()
    fig.savefig(folder / "observation.png", dpi=90)
    plt.close(fig)
