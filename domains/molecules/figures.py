"""Pictures of molecules: a grid of 3D ball-and-stick views (matplotlib) and a grid of RDKit 2D
depictions. Both draw the bonds inferred from distances, the graph the metrics judge."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch_geometric.data import Batch, Data

from sciffusion.plotting import save_figure

from . import bonds
from .data import MoleculeSet

# CPK-like colours; white hydrogens get a dark edge so they show on a white background.
ELEMENT_COLOURS = {1: "#f2f2f2", 6: "#404040", 7: "#3050f8", 8: "#ff0d0d", 9: "#90e050", 15: "#ff8000",
                   16: "#e6c828", 17: "#1ff01f", 35: "#a62929", 53: "#940094"}
_OTHER_COLOUR = "#ff1493"


def plot_molecules_3d(molecules: MoleculeSet | Batch | Sequence[Data], path: str | Path, *, ncols: int = 4,
                      titles: Sequence[str] | None = None, panel_size: float = 3.0, dpi: int = 100) -> Path:
    """A PNG (or any matplotlib format, by suffix) with one 3D panel a molecule: atoms coloured by
    element, bonds as lines whose width grows with the bond order."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    packed = MoleculeSet.from_molecules(molecules)
    edges, order = bonds.bond_orders(packed.pos, packed.z, packed.counts)
    nrows = math.ceil(len(packed) / ncols)
    fig = plt.figure(figsize=(panel_size * ncols, panel_size * nrows))
    for m in range(len(packed)):
        a, b = int(packed.ptr[m]), int(packed.ptr[m + 1])
        pos, z = packed.pos[a:b].numpy(), packed.z[a:b].tolist()
        ax = fig.add_subplot(nrows, ncols, m + 1, projection="3d")
        mine = (edges[0] >= a) & (edges[0] < b)
        for (i, j), k in zip(edges[:, mine].T.tolist(), order[mine].tolist()):
            ax.plot(*pos[[i - a, j - a]].T, color="#808080", linewidth=1.5 * k, zorder=1)
        colours = [ELEMENT_COLOURS.get(n, _OTHER_COLOUR) for n in z]
        sizes = [60 if n == 1 else 140 for n in z]
        ax.scatter(*pos.T, c=colours, s=sizes, edgecolors="#202020", linewidths=0.5, depthshade=False, zorder=2)
        # Equal axis ranges so bond lengths and angles look right.
        centre, half = pos.mean(0), max(float((pos.max(0) - pos.min(0)).max()) / 2, 1.0)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[m], fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)


def draw_molecules_2d(molecules: MoleculeSet | Batch | Sequence[Data], path: str | Path, *, ncols: int = 4,
                      legends: Sequence[str] | None = None, panel_size: tuple[int, int] = (250, 250)) -> Path:
    """A PNG grid of RDKit 2D depictions (hydrogens hidden) of the inferred molecular graphs;
    molecules that do not sanitise are drawn as their raw graph, and the rare graph RDKit cannot lay
    out (degenerate samples of an undertrained model) as an empty panel marked so."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem, Draw

    from .metrics import rdkit_molecules

    RDLogger.DisableLog("rdApp.*")
    try:
        flat = []
        for mol in rdkit_molecules(molecules):
            mol = Chem.Mol(mol)
            try:
                Chem.SanitizeMol(mol)
                mol = Chem.RemoveHs(mol)
            except Exception:  # invalid sample: depict the graph as inferred
                mol.UpdatePropertyCache(strict=False)
            mol.RemoveAllConformers()
            AllChem.Compute2DCoords(mol)
            flat.append(mol)
        legends = list(legends) if legends is not None else [""] * len(flat)
        for i, mol in enumerate(flat):
            try:
                Draw.MolToImage(mol, size=(60, 60))
            except RuntimeError:  # e.g. "Cannot normalize a zero length vector"
                flat[i], legends[i] = Chem.Mol(), f"{legends[i]} (cannot be drawn)".strip()
        image = Draw.MolsToGridImage(flat, molsPerRow=ncols, subImgSize=tuple(panel_size), legends=legends,
                                     returnPNG=False)
    finally:
        RDLogger.EnableLog("rdApp.*")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
