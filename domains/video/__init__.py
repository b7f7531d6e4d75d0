"""The video domain: clips ``[B, C, T, H, W]`` (Moving MNIST, the user's frame stacks and Zarr stores),
a space-time UNet, and forecasting / interpolation by inpainting on the time axis."""
