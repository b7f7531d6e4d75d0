"""The images domain: dense ``[B, C, H, W]`` samples (digits, photographs, and any gridded field).

Its networks (``UNet``, ``DiT``) live in ``sciffusion_domains.dense.networks``, shared with the audio
(spectrograms) and weather (lat-lon grids) domains; ``sciffusion_domains.images.networks`` re-exports them.
"""
