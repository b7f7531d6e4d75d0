"""The ``latent`` domain: a dense domain seen through a trained autoencoder (latent diffusion, Rombach
et al. 2022). Samples are scaled latents z = scale_factor * mean(q(z | x)) ``[B, c, h, w]`` in a plain
``DenseSpace``, so every loss, sampler and guidance of the core runs on them unchanged:

    sciffusion-train experiment=mnist_latent_dit domain.autoencoder=runs/mnist_ae/checkpoints/last.ckpt
    sciffusion-sample checkpoint=RUN/checkpoints/last.ckpt cond.label=3 out_dir=DIR   (needs nothing else)

``scale_factor`` is 1 / std of the encoded training latents (Stable Diffusion's scale factor), so that
the latents have unit variance as the processes assume. ``decode`` maps z / scale_factor through the
decoder and then the base domain's ``decode``: the samples are the base domain's native objects, and
``save``, ``figure``, ``metrics`` and ``reference`` are the base domain's. The checkpoint's domain
state embeds the autoencoder (options and weights), the base domain's state and the scale factor, so
sampling reads neither the data nor the autoencoder file.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from sciffusion.domain import Batch, Domain, check_condition_request
from sciffusion.latent import (DecodedObservation, KLAutoencoder, autoencoder_from_state, autoencoder_state,
                               latent_posterior_guidance, load_autoencoder)
from sciffusion.latent.guidance import estimate_gram
from sciffusion.parameterization import Cond
from sciffusion.registry import make_domain
from sciffusion.space import DenseSpace, Space

STATE_KEYS = {"base", "autoencoder", "scale_factor"}


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    one, other = a.state_dict(), b.state_dict()
    return one.keys() == other.keys() and all(torch.equal(one[k].cpu(), other[k].cpu()) for k in one)


class LatentDataset(Dataset):
    """Encoded items: ``(z [c, h, w], cond {name: value})``, the conditions as the base domain collated them."""

    def __init__(self, latents: Tensor, cond: Cond):
        self.latents, self.cond = latents, cond

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.latents[i], {k: v[i] for k, v in self.cond.items()}


class LatentDomain(Domain):
    """``base``: the dense domain's config (``{name: images, dataset: mnist5k, conditional: true}``);
    ``autoencoder``: the checkpoint of an autoencoder run on that data (read when training starts; a
    checkpoint of this domain embeds it); ``scale_factor``: None to compute 1 / std from the encoded
    training data, or a number; ``encode_batch``: how many items are encoded at once."""

    name = "latent"

    def __init__(self, *, base: dict[str, Any], autoencoder: str | None = None, scale_factor: float | None = None,
                 encode_batch: int = 500):
        base = dict(base or {})
        if "name" not in base:
            raise ValueError("domain.base must name the dense domain to encode, e.g. {name: images, dataset: mnist5k}")
        if base["name"] == self.name:
            raise ValueError("domain.base cannot itself be a latent domain")
        if scale_factor is not None and not scale_factor > 0:
            raise ValueError(f"domain.scale_factor must be > 0 or null (computed from the data), got {scale_factor}")
        self.base_config = base
        self.base: Domain = make_domain(base.pop("name"), **base)
        self.autoencoder_path, self.encode_batch = autoencoder, int(encode_batch)
        self._scale_factor = None if scale_factor is None else float(scale_factor)
        self._autoencoder: KLAutoencoder | None = None
        self._splits: dict[str, LatentDataset] = {}

    # -- the autoencoder and the scale -------------------------------------------------------------
    @property
    def autoencoder(self) -> KLAutoencoder:
        """The frozen autoencoder: the checkpoint's embedded one, else read from ``domain.autoencoder``."""
        if self._autoencoder is None:
            if self.autoencoder_path is None:
                raise ValueError("the latent domain needs domain.autoencoder=PATH, the last.ckpt of an autoencoder run "
                                 "(sciffusion-train experiment=mnist_latent_autoencoder)")
            self._autoencoder = self._checked(load_autoencoder(self.autoencoder_path), str(self.autoencoder_path))
        return self._autoencoder

    def _checked(self, autoencoder: KLAutoencoder, source: str) -> KLAutoencoder:
        try:
            autoencoder.check_data(self.base_shape)
        except ValueError as err:
            raise ValueError(f"the autoencoder {source} does not fit domain.base ({self.base_config}): {err}") from None
        return autoencoder

    @property
    def base_shape(self) -> tuple[int, ...]:
        """One sample's shape in the base domain, from its template."""
        x, _ = self.base.template(1, generator=torch.Generator().manual_seed(0), cond=self.base.condition(1))
        return tuple(x.shape[1:])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(c, h, w)`` of one latent."""
        return self.autoencoder.latent_shape(self.base_shape)

    @property
    def scale_factor(self) -> float:
        if self._scale_factor is None:
            self.dataset("train")
        return self._scale_factor

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Unscaled posterior means ``[B, c, h, w]`` of base-domain samples ``x``."""
        autoencoder = self.autoencoder
        device = next(autoencoder.parameters()).device
        return torch.cat([autoencoder.encode(x[i:i + self.encode_batch].to(device))[0].cpu()
                          for i in range(0, len(x), self.encode_batch)])

    # -- data --------------------------------------------------------------------------------------
    def dataset(self, split: str) -> LatentDataset:
        """The base split encoded once (posterior means); the train split sets the scale factor if unset."""
        if split not in self._splits:
            data = self.base.dataset(split)
            latents, conds = [], []
            for start in range(0, len(data), self.encode_batch):
                batch = self.base.collate([data[i] for i in range(start, min(start + self.encode_batch, len(data)))])
                if not isinstance(batch.space, DenseSpace) or batch.space.mask is not None:
                    raise ValueError(f"the latent domain encodes unmasked dense batches; domain.base "
                                     f"{self.base_config.get('name')!r} gives a {type(batch.space).__name__}"
                                     f"{' with a mask' if isinstance(batch.space, DenseSpace) else ''}")
                latents.append(self.encode(batch.x))
                conds.append(batch.cond)
            z = torch.cat(latents)
            if split == "train" and self._scale_factor is None:
                self._scale_factor = float(1 / z.float().std())  # Rombach et al. 2022, sec. 4.3.2 / App. G
            cond = {k: torch.cat([c[k] for c in conds]) for k in conds[0]} if conds else {}
            self._splits[split] = LatentDataset(z * self.scale_factor, cond)
        return self._splits[split]

    def collate(self, items: Sequence[tuple[Tensor, dict[str, Tensor]]]) -> Batch:
        z = torch.stack([latent for latent, _ in items])
        cond = {k: torch.stack([c[k] for _, c in items]) for k in (items[0][1] if items else {})}
        return Batch(z, DenseSpace(), cond)

    # -- checkpoint state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base domain's state, the scale factor and the autoencoder (options and weights)."""
        return {"base": self.base.state_dict(), "scale_factor": self.scale_factor,
                "autoencoder": autoencoder_state(self.autoencoder)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing, unknown = STATE_KEYS - set(state), set(state) - STATE_KEYS
        if missing or unknown:
            raise ValueError(f"a latent domain's state holds {sorted(STATE_KEYS)}; this one lacks {sorted(missing)} "
                             f"and has {sorted(unknown)} besides: it was not written by the latent domain")
        embedded = autoencoder_from_state(state["autoencoder"])
        if self._autoencoder is not None and not _same_weights(self._autoencoder, embedded):
            raise ValueError(f"the autoencoder {self.autoencoder_path} differs from the one embedded in the "
                             "checkpoint, which its latents were trained with; resume with domain.autoencoder= that "
                             "file, or start a new run (train.resume=null)")
        self.base.load_state_dict(state["base"])
        self._scale_factor = float(state["scale_factor"])
        self._autoencoder = self._checked(embedded, "embedded in the checkpoint")

    # -- model -----------------------------------------------------------------------------------
    def network(self, *, kind: str = "dit", unet: dict[str, Any] | None = None,
                dit: dict[str, Any] | None = None) -> nn.Module:
        """``UNet(**unet)`` or ``DiT(**dit)`` on the latents, with a class embedding when the base domain
        is conditional (``num_classes`` classes)."""
        from sciffusion_domains.dense.networks import unet_or_dit

        return unet_or_dit(kind, unet, dit, in_channels=self.shape[0], num_classes=self.num_classes, what="latent",
                           set_by="the latent channels and domain.base.conditional")

    @property
    def conditional(self) -> bool:
        """Whether the base domain is (what the apps' guidance checks read)."""
        return bool(getattr(self.base, "conditional", False))

    @property
    def num_classes(self) -> int:
        """The base domain's class count when it is conditional, else 0."""
        return int(getattr(self.base, "num_classes", 0)) if self.conditional else 0

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None, **request: Any) -> Cond:
        """The base domain's conditions (``cond.label=3``...)."""
        check_condition_request(self.base, request)
        return self.base.condition(num_samples, generator=generator, **request)

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        return torch.zeros(num_samples, *self.shape), DenseSpace()

    # -- outputs ---------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_latents(self, z: Tensor) -> Tensor:
        """Base-domain samples ``[B, C, H, W]`` of scaled latents ``z``: decoder(z / scale_factor)."""
        autoencoder = self.autoencoder
        device = next(autoencoder.parameters()).device
        return autoencoder.decode(z.to(device) / self.scale_factor, size=self.base_shape[1:]).to(z.device)

    def decoder(self) -> Callable[[Tensor], Tensor]:
        """The differentiable map of unscaled latents ``[B, c, h, w]`` to base-domain data ``[B, C, H, W]``
        (on the latents' device), for guidance through the decoder."""
        autoencoder, size = self.autoencoder, self.base_shape[1:]
        return lambda u: autoencoder.to(u.device).decode(u, size=size)

    def posterior_guidance(self, denoiser, process, *, observe: Callable[[Tensor], Tensor], y: Tensor,
                           gram: float | str = "auto", **options: Any):
        """Posterior guidance of a latent model for a data-space observation y = observe(x0) + noise
        (inpainting, super-resolution...; ``sciffusion.latent.latent_posterior_guidance``, whose
        ``options`` it takes). ``gram="auto"`` measures M M^T's mean eigenvalue at 16 prior latents."""
        if gram == "auto":
            operator = DecodedObservation(self.decoder(), observe, scale_factor=self.scale_factor)
            z = torch.randn(16, *self.shape, generator=torch.Generator().manual_seed(0))
            gram = estimate_gram(operator, z, probes=4, generator=torch.Generator().manual_seed(1))
        return latent_posterior_guidance(denoiser, process, decoder=self.decoder(), observe=observe, y=y,
                                         scale_factor=self.scale_factor, gram=gram, **options)

    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list[Any]:
        data = self.decode_latents(x)
        _, base_space = self.base.template(len(data), cond=cond)
        return self.base.decode(data, base_space, cond)

    def save(self, objects: Sequence[Any], out_dir) -> list:
        return self.base.save(objects, out_dir)

    def figure(self, objects: Sequence[Any], path):
        return self.base.figure(objects, path)

    def reference(self, split: str = "test", limit: int | None = None) -> list[Any]:
        """The base domain's real data (not reconstructions): what samples are judged against."""
        return self.base.reference(split, limit)

    def metrics(self, samples: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
        return self.base.metrics(samples, reference)
