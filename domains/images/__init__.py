"""The images domain: dense ``[B, C, H, W]`` samples (digits, photographs, and any gridded field).

Its networks (``sciffusion_domains.images.networks``: ``UNet``, ``DiT``) are shared by the audio
(spectrograms) and weather (lat-lon grids) domains.
"""
