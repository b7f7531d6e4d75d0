"""One line from Python: a trained model, ready to sample.

    import sciffusion
    model = sciffusion.load("digits")                # a shipped name, a .ckpt file or a save_pretrained folder
    images = model.sample(16, cond={"label": 3})     # the domain's native objects (here DecodedImage)
    model.save(images, "samples/threes")             # PNGs and figure.png
    model.metrics(images, limit=500)                 # against the test split (needs the data)
    model.save_pretrained("digits_model")            # safetensors weights + readable config.json

Sampling settings not given come from the checkpoint's ``sampling_defaults`` (what measured best),
then its training config, then the library (see ``settings``); ``sample`` prints which it used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .domain import Batch, Domain
from .guidance import SelfConditioning
from .joint import JointProcess
from .processes import NoiseProcess
from .settings import Settings, resolve


class Model:
    """A domain with its state, the denoiser (EMA weights by default), its process and config."""

    def __init__(self, *, config: dict[str, Any], domain: Domain, process: NoiseProcess, denoiser: nn.Module,
                 sampling_defaults: dict[str, Any] | None = None, source: str = "", step: int | None = None,
                 device: torch.device | str = "cpu"):
        self.config, self.domain, self.process = config, domain, process
        self.denoiser = denoiser.to(device).eval()
        self.sampling_defaults = dict(sampling_defaults or {})
        self.source, self.step, self.device = source, step, torch.device(device)

    def __repr__(self) -> str:
        return (f"Model({self.domain.name!r} from {self.source}, step {self.step}, "
                f"{sum(p.numel() for p in self.denoiser.parameters()):,} parameters)")

    def to(self, device: torch.device | str) -> "Model":
        self.denoiser, self.device = self.denoiser.to(device), torch.device(device)
        return self

    # -- sampling -------------------------------------------------------------------------------
    def settings(self, *, sampler: str | None = None, steps: int | None = None, grid: str | None = None,
                 guidance: Any = None, sampler_options: dict | None = None,
                 grid_options: dict | None = None) -> Settings:
        """The settings a ``sample`` call with these arguments uses, and where each came from."""
        given = {"sampler": sampler, "steps": steps, "grid": grid, "guidance": guidance,
                 "sampler_options": sampler_options, "grid_options": grid_options}
        return resolve(given, self.sampling_defaults, self.config)

    def guided(self, guidance: dict[str, Any] | Callable | None) -> nn.Module | Callable:
        """The denoiser wrapped in ``guidance`` (a ``_partial_`` config or a callable), checked first."""
        from .cli import build, checks

        base = self.denoiser
        if (self.config.get("loss") or {}).get("self_condition") and not isinstance(self.process, JointProcess):
            base = SelfConditioning(base)  # one-tensor samplers do not pass estimates along; the joint one does
        if guidance is None:
            return base
        if callable(guidance) and not isinstance(guidance, dict):
            return guidance(base)
        checks.check_sampling({"guidance": guidance}, self.config, self.domain)
        return build.guided(base, guidance, self.process, self.domain)

    def draw(self, num_samples: int, settings: Settings, *, cond: dict[str, Any] | None = None, seed: int = 0,
             batch_size: int = 256, progress: bool = True) -> list[Batch]:
        """The raw chunk batches of ``num_samples`` samples (sharded over ranks under torchrun)."""
        from .progress import SamplingProgress
        from .training import SamplingOptions, generate

        from .cli import checks

        checks.not_a_residual_model(self.config)
        checks.sampler_fits(settings.sampler, self.config)
        denoiser = self.guided(settings.guidance)
        with SamplingProgress(num_samples, batch_size, settings.steps, enabled=progress) as bar:
            options = SamplingOptions(sampler=settings.sampler, steps=settings.steps, grid=settings.grid,
                                      grid_options=settings.grid_options,
                                      options={**settings.sampler_options, **bar.sampler_options()},
                                      batch_size=batch_size, seed=seed)
            return generate(self.domain, denoiser, self.process, num_samples, options=options, device=self.device,
                            cond_request=dict(cond or {}), progress=bar.chunk_done)

    def sample(self, num_samples: int, *, sampler: str | None = None, steps: int | None = None,
               grid: str | None = None, guidance: Any = None, cond: dict[str, Any] | None = None, seed: int = 0,
               generator: torch.Generator | None = None, batch_size: int = 256, sampler_options: dict | None = None,
               grid_options: dict | None = None, progress: bool = True, verbose: bool = True) -> list[Any]:
        """``num_samples`` new samples as the domain's native objects (what ``domain.decode`` gives:
        PyG ``Data`` molecules, ``DecodedImage``, ``AudioSample``, ``xarray.Dataset``...).

        Settings left None come from the checkpoint (see ``settings``); ``guidance="none"`` turns off
        a guidance the checkpoint would use. ``cond`` is the domain's conditions (``{"label": 3}``,
        ``{"num_atoms": 12}``). Sample i depends only on ``seed`` and ``i // batch_size``; a
        ``generator`` given instead draws the seed. ``progress`` shows a bar of sampler steps."""
        from .training import decode_all

        if generator is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        chosen = self.settings(sampler=sampler, steps=steps, grid=grid, guidance=guidance,
                               sampler_options=sampler_options, grid_options=grid_options)
        if verbose:
            print(f"sciffusion: sampling {num_samples} with {chosen.describe()}", flush=True)
        return decode_all(self.domain, self.draw(num_samples, chosen, cond=cond, seed=seed, batch_size=batch_size,
                                                 progress=progress))

    # -- outputs --------------------------------------------------------------------------------
    def save(self, objects: Sequence[Any], out_dir: str | Path, *, figure: bool = True) -> list[Path]:
        """The domain's files of ``objects`` (PNG, WAV, SDF, NetCDF...) and ``figure.png`` in ``out_dir``."""
        out_dir = Path(out_dir)
        files = self.domain.save(list(objects), out_dir)
        if figure:
            files.append(self.domain.figure(list(objects), out_dir / "figure.png"))
        return files

    def metrics(self, objects: Sequence[Any], reference: str | Sequence[Any] = "test", *,
                limit: int | None = None) -> dict[str, float]:
        """The domain's metrics of ``objects`` against a split of its data (at most ``limit`` items) or
        a list of reference objects."""
        if isinstance(reference, str):
            reference = self.domain.reference(reference, limit=limit)
        return self.domain.metrics(list(objects), list(reference))

    def save_pretrained(self, folder: str | Path) -> Path:
        """``folder/model.safetensors`` (the weights sampled with), ``domain.safetensors`` and a readable
        ``config.json`` (config, domain state, sampling defaults); ``sciffusion.load(folder)`` reads it."""
        from .pretrained import save_pretrained

        return save_pretrained(self, folder)


def build_model(config: dict[str, Any], weights: dict[str, torch.Tensor], *, domain_state: dict[str, Any],
                sampling_defaults: dict[str, Any] | None, source: str, step: int | None = None,
                device: torch.device | str = "cpu") -> Model:
    """A ``Model`` from a config, denoiser weights and the domain's state."""
    from .cli import build

    parts = build.build(config, domain_state=domain_state)
    parts.model.load_state_dict(weights)
    return Model(config=config, domain=parts.domain, process=parts.process, denoiser=parts.model,
                 sampling_defaults=sampling_defaults, source=source, step=step, device=device)


def load(path_or_name: str | Path, *, use_ema: bool = True, device: torch.device | str = "cpu") -> Model:
    """A ready ``Model`` from a shipped checkpoint's name (``sciffusion.shipped.names()``: "qm9",
    "digits", "spoken_digits", "hadisst"...), a training checkpoint (``.ckpt``, EMA weights unless
    ``use_ema=False``) or a folder written by ``save_pretrained``."""
    from . import shipped
    from .training import CheckpointError, load_checkpoint

    path = Path(path_or_name)
    if not path.exists() and shipped.lookup(str(path_or_name)) is not None:
        path = shipped.resolve(str(path_or_name))
    if path.is_dir():
        from .pretrained import load_pretrained

        return load_pretrained(path, device=device)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; pass the path of a .ckpt file (e.g. "
                              "RUN_DIR/checkpoints/last.ckpt), a folder written by save_pretrained, or a shipped "
                              f"name: {', '.join(shipped.names())}")
    state = load_checkpoint(path)
    weights = state["ema"]["module"] if use_ema else state["model"]
    return build_model(state["config"], weights, domain_state=state.get("domain", {}),  # absent in old checkpoints
                       sampling_defaults=state.get("sampling_defaults"), source=str(path), step=state.get("step"),
                       device=device)
