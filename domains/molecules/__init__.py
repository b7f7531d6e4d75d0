"""Molecules: 3D point clouds of typed atoms, generated jointly in positions and atom types.

A batch is one tensor ``x[N_atoms, 3 + F]`` (positions, then atom-type features) with a
``sciffusion.space.GraphSpace(batch, num_molecules, zero_mean=(0, 1, 2))`` that keeps each
molecule's centre of mass at zero (Hoogeboom et al. 2022). The E(3)-equivariant networks and the
neighbour search live in ``sciffusion_domains.molecules.networks``.
"""
