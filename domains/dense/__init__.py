"""Building blocks for dense ``[B, C, H, W]`` domains (images, spectrograms, lat-lon grids) and
third-party plugins: ``sciffusion_domains.dense.networks`` (``UNet``, ``DiT``, their condition and
noise embeddings). Not a domain itself: nothing registers here.
"""
