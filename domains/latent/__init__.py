"""The ``latent`` domain plugin: any dense domain seen through a trained autoencoder (``domain``)."""
