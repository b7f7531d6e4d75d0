"""Latent diffusion: an autoencoder trained as a task of the usual ``Trainer`` and apps, and guidance
that lives in data space taken through its decoder. The domain that wraps a dense domain and a trained
autoencoder into latent samples is the ``latent`` plugin (``sciffusion_domains.latent``).

    KLAutoencoder, AutoencoderLoss   the model and its loss (experiment=mnist_latent_autoencoder)
    load_autoencoder                 the frozen autoencoder of such a run, or of a latent model (digits_latent)
    DecodedObservation               A(decoder(z / scale)): a data-space observation seen from latents
    latent_posterior_guidance        reconstruction guidance / DPS through the decoder (latent DPS)
    decoded_classifier_guidance      a clean-data classifier's guidance through the decoder
"""
from .autoencoder import (KLAutoencoder, autoencoder_from_state, autoencoder_state, autoencoder_task, kl_divergence,
                          load_autoencoder)
from .guidance import DecodedObservation, decoded_classifier_guidance, latent_posterior_guidance
from .loss import AutoencoderLoss

__all__ = ["AutoencoderLoss", "DecodedObservation", "KLAutoencoder", "autoencoder_from_state", "autoencoder_state",
           "autoencoder_task", "decoded_classifier_guidance", "kl_divergence", "latent_posterior_guidance",
           "load_autoencoder"]
