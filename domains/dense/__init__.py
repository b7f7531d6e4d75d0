"""Building blocks for dense ``[B, C, H, W]`` domains (images, spectrograms, lat-lon grids) and
third-party plugins: ``networks`` (``UNet``, ``DiT``, their condition and noise embeddings),
``classifier`` (a small CNN judge, its training and its safe file format), ``metrics`` (Frechet
distance, precision/recall, Inception Score in any feature space, or all of them in a classifier's) and
``inverse`` (posterior guidance for an observation y = A(x0) + noise). Not a domain: nothing registers here.
"""
