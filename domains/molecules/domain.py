"""The molecules domain: 3D molecules of QM9 (or a user's SDF/XYZ files) generated jointly in atom
positions and atom types, as in EDM (Hoogeboom et al. 2022).

A batch is ``x[N, 3 + F]`` (positions, then the scaled one-hot of the atom type and, with
``include_charges``, the scaled atomic number; see ``data.to_state``) with
``GraphSpace(batch, B, zero_mean=(0, 1, 2))``. The number of atoms of a new molecule is drawn from
the training histogram, optionally given the requested property as EDM does (p(N | c)), or set
with ``cond.num_atoms=N``. A conditional domain (``condition=alpha``) adds
``cond["properties"] [B, 1]``: the property normalised with the training split's mean and std.
``half="a"`` or ``"b"`` keeps one of two fixed, disjoint halves of the training split as the training
split (EDM's protocol for property conditioning: the evaluation predictor learns on one half, the
generative model on the other); statistics, histograms and p(N | c) then come from that half.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from sciffusion.domain import Batch, Domain
from sciffusion.parameterization import Cond
from sciffusion.space import GraphSpace, Space

PROPERTIES = "properties"  # as networks.inputs.PROPERTIES, without importing the networks here
NUM_ATOMS = "num_atoms"  # cond[NUM_ATOMS]: [B] atom counts requested for new molecules
SPLIT_FRACTIONS = {"val": 0.1, "test": 0.1}  # of a user's files; the rest is "train"
HALVES = ("a", "b")  # half="a" / "b": the two halves of the training split
COUNT_BINS = 20  # property quantile bins of the conditional atom-count histogram p(N | c)


def training_halves(num_train: int, seed: int = 42) -> dict[str, Tensor]:
    """Positions (sorted) within the training split of its two halves "a" and "b": a seeded numpy
    permutation cut in two ("a" gets the odd molecule). EDM halves its training set with a fixed seed
    too; these are not checked to be EDM's exact halves."""
    import numpy as np

    perm = torch.from_numpy(np.random.RandomState(seed).permutation(num_train))
    cut = num_train - num_train // 2
    return {"a": perm[:cut].sort().values, "b": perm[cut:].sort().values}


def count_histograms_given_property(values: Tensor, counts: Tensor) -> dict[str, Tensor]:
    """p(N | c) as ``count_edges`` (the ``COUNT_BINS`` quantile bins of the normalised property
    ``values`` [M]) and ``count_histograms`` [COUNT_BINS, max N + 1] (the atom counts ``counts`` [M] of
    the molecules in each bin): what a conditional domain keeps in its checkpoint state."""
    edges = torch.quantile(values.float(), torch.linspace(0, 1, COUNT_BINS + 1)[1:-1])
    bins = torch.bucketize(values.float(), edges)
    size = int(counts.max()) + 1
    return {"count_edges": edges,
            "count_histograms": torch.stack([torch.bincount(counts[bins == b].long(), minlength=size)
                                             for b in range(COUNT_BINS)])}


def counts_given_property(state: dict[str, Tensor], properties: Tensor, generator: torch.Generator | None) -> Tensor:
    """Atom counts drawn from p(N | c): the histogram of training molecules in the same property
    quantile bin as each normalised property (EDM draws N jointly with the property from a 2-D
    histogram). ``state`` holds ``count_histograms_given_property``'s entries."""
    edges, histograms = state["count_edges"], state["count_histograms"]
    wanted = torch.bucketize(properties.float().flatten(), edges)
    counts = torch.empty(len(wanted), dtype=torch.long)
    for b in wanted.unique().tolist():
        where = wanted == b
        histogram = histograms[b][:int(torch.nonzero(histograms[b]).max()) + 1]  # as bincount gives it
        counts[where] = torch.multinomial(histogram.double(), int(where.sum()), replacement=True,
                                          generator=generator)
    return counts


class MoleculeDataset(Dataset):
    """Molecules (a ``MoleculeSet``) with optional normalised properties ``[M, P]``.

    ``ds[i]`` is a PyG ``Data`` (``properties`` ``[1, P]`` attached); the DataLoader fetches whole
    batches through ``__getitems__``, one packed gather instead of one Python object a molecule."""

    def __init__(self, molecules, properties: Tensor | None = None):
        self.molecules, self.properties = molecules, properties

    def __len__(self) -> int:
        return len(self.molecules)

    def __getitem__(self, i: int):
        data = self.molecules[i]
        if self.properties is not None:
            data.properties = self.properties[i:i + 1]
        return data

    def __getitems__(self, indices: list[int]) -> "MoleculeDataset":
        index = torch.as_tensor(indices, dtype=torch.long)
        return MoleculeDataset(self.molecules.select(index),
                               None if self.properties is None else self.properties[index])


class QM9Domain(Domain):
    """QM9 (or ``files``), unconditional or conditioned on one property.

    remove_h: drop hydrogens (EDM's "QM9 without H"; atom types C N O F).
    limit: use only the first ``limit`` QM9 rows (tests; nothing is cached).
    condition: a QM9 target name (``data.QM9_TARGETS``, e.g. "alpha", "gap") to condition on.
    include_charges: add EDM's atomic-number column to the state.
    files: SDF/XYZ files or folders used instead of QM9 (records that cannot be read are reported).
    atom_types: the element symbols of the one-hot (default: H C N O F, or the elements of ``files``).
    half: None (the whole training split), "a" or "b": one half of the training split, the halves
        drawn by a permutation seeded with ``half_seed`` (``training_halves``).
    half_seed: seed of the halves, independent of ``seed`` so that they stay put when the split does.
    perceive_bonds: also report validity under RDKit's own bond perception (slower).
    num_figure: molecules drawn in a figure.
    """

    name = "qm9"
    extra = "molecules"

    def __init__(self, *, remove_h: bool = False, limit: int | None = None, condition: str | None = None,
                 include_charges: bool = True, files: str | Sequence[str] | None = None,
                 atom_types: Sequence[str] | None = None, root: str | None = None, seed: int = 0,
                 half: str | None = None, half_seed: int = 42, perceive_bonds: bool = True, num_figure: int = 16):
        from .data import QM9_ATOMS, QM9_TARGETS

        if half is not None and half not in HALVES:
            raise ValueError(f"half must be None, 'a' or 'b', got {half!r}")
        if condition is not None and condition not in QM9_TARGETS:
            raise ValueError(f"condition must be a QM9 target among {list(QM9_TARGETS)} or None, got {condition!r}")
        if condition is not None and files is not None:
            raise ValueError("condition needs QM9's property labels; user files carry none: drop condition or files")
        self.remove_h, self.limit, self.condition_name = remove_h, limit, condition
        self.include_charges, self.root, self.seed = include_charges, root, seed
        self.half, self.half_seed = half, half_seed
        self.files = None if files is None else ([files] if isinstance(files, str) else list(files))
        self.perceive_bonds, self.num_figure = perceive_bonds, num_figure
        if atom_types is None and self.files is None:
            atom_types = [a for a in QM9_ATOMS if not (remove_h and a == "H")]
        self._atom_types = None if atom_types is None else tuple(atom_types)
        self._splits: dict[str, Any] | None = None
        self._stats: tuple[Tensor, Tensor] | None = None
        self._histograms: dict[str, Tensor] | None = None
        self._training_smiles: set[str] | None = None
        self._sampling: dict[str, Any] | None = None  # what sampling needs (state_dict), from the data or a checkpoint
        self.read_reports: list = []

    # -- data --------------------------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return self.condition_name is not None

    @property
    def atom_types(self) -> tuple[str, ...]:
        if self._atom_types is None:
            self._load()
        return self._atom_types

    @property
    def num_features(self) -> int:
        """F: one-hot columns plus the atomic-number column."""
        return len(self.atom_types) + int(self.include_charges)

    def _load(self) -> dict[str, Any]:
        """The molecule sets of every split, loaded once."""
        if self._splits is None:
            splits = self._load_files() if self.files is not None else self._load_qm9()
            if self.half is not None:
                splits = dict(splits, train=splits["train"].select(training_halves(len(splits["train"]),
                                                                                    self.half_seed)[self.half]))
            self._splits = splits
        return self._splits

    def _load_qm9(self) -> dict[str, Any]:
        from .data import load_qm9, qm9_split

        molecules = load_qm9(None, limit=self.limit, root=self.root)
        rows = qm9_split(len(molecules), seed=self.seed)
        splits = {name: molecules.select(index) for name, index in rows.items()}
        if self.remove_h:
            splits = {name: s.without_hydrogens() for name, s in splits.items()}
        return splits

    def _load_files(self) -> dict[str, Any]:
        from .bonds import SYMBOLS
        from .io import read_molecules

        molecules, self.read_reports = read_molecules(self.files, elements=self._atom_types)
        for report in self.read_reports:
            if report.failures:
                warnings.warn(f"molecules: {report}", stacklevel=3)
        if molecules is None:
            raise ValueError(f"no molecule could be read from {self.files}:\n" + "\n".join(map(str, self.read_reports)))
        if self.remove_h:
            molecules = molecules.without_hydrogens()
        if self._atom_types is None:
            self._atom_types = tuple(SYMBOLS[int(n)] for n in torch.unique(molecules.z).tolist())
        n = len(molecules)
        sizes = {name: int(f * n) for name, f in SPLIT_FRACTIONS.items()}
        if min(sizes.values()) == 0:
            # Too few molecules to hold any out: every split is the whole set.
            return {"train": molecules, "val": molecules, "test": molecules}
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val, test = sizes["val"], sizes["test"]
        return {"val": molecules.select(perm[:val].sort().values),
                "test": molecules.select(perm[val:val + test].sort().values),
                "train": molecules.select(perm[val + test:].sort().values)}

    def _split(self, split: str):
        splits = self._load()
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(splits)}")
        return splits[split]

    def _property_column(self) -> int:
        from .data import QM9_TARGETS

        return list(QM9_TARGETS).index(self.condition_name)

    def property_stats(self) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation ``[1]`` of the conditioning property on the training split."""
        if self._stats is None:
            if self._sampling is not None and "property_mean" in self._sampling:
                self._stats = (self._sampling["property_mean"].double(), self._sampling["property_std"].double())
            else:
                y = self._split("train").y[:, self._property_column()].double()
                self._stats = (y.mean().reshape(1), y.std().clamp(min=1e-12).reshape(1))
        return self._stats

    # -- checkpoint state: what sampling needs, so that it never opens the data -------------------
    def state_dict(self) -> dict[str, Any]:
        """Atom types and the training split's atom-count histogram; for a conditional domain also the
        property's mean and std, the normalised training properties (drawn when no value is asked
        for) and p(N | c) as quantile-bin edges with one atom-count histogram a bin."""
        if self._sampling is None:
            train = self._split("train")
            state: dict[str, Any] = {"atom_types": list(self.atom_types), "histogram": self.atom_count_histogram()}
            if self.conditional:
                mean, std = self.property_stats()
                values = self.normalise(train.y[:, self._property_column()])
                state.update(property_mean=mean, property_std=std, properties=values,
                             **count_histograms_given_property(values, train.counts))
            self._sampling = state
        return dict(self._sampling)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``; an empty state (older checkpoints) leaves everything to the data."""
        if not state:
            return
        if self._atom_types is not None and list(state["atom_types"]) != list(self._atom_types):
            raise ValueError(f"the checkpoint's atom types {list(state['atom_types'])} differ from this domain's "
                             f"{list(self._atom_types)}; use the checkpoint's domain options (remove_h, atom_types)")
        if self.conditional != ("properties" in state):
            raise ValueError(f"the checkpoint's domain state is {'conditional' if 'properties' in state else 'unconditional'}"
                             f" but domain.condition={self.condition_name}; use the checkpoint's domain options")
        self._atom_types = tuple(state["atom_types"])
        self._sampling, self._stats, self._histograms = dict(state), None, None

    def normalise(self, values: Tensor) -> Tensor:
        mean, std = self.property_stats()
        return ((values.double() - mean) / std).float()

    def denormalise(self, values: Tensor) -> Tensor:
        mean, std = self.property_stats()
        return (values.double() * std + mean).float()

    def dataset(self, split: str) -> MoleculeDataset:
        molecules = self._split(split)
        properties = None
        if self.conditional:
            properties = self.normalise(molecules.y[:, self._property_column()])[:, None]
        return MoleculeDataset(molecules, properties)

    def collate(self, items) -> Batch:
        from .data import MoleculeSet, to_state

        if isinstance(items, MoleculeDataset):
            molecules, properties = items.molecules, items.properties
        else:
            molecules = MoleculeSet.from_molecules(list(items))
            properties = torch.cat([d.properties for d in items]) if self.conditional else None
        x, space = to_state(molecules, atom_types=self.atom_types, include_charges=self.include_charges)
        return Batch(x, space, {PROPERTIES: properties} if self.conditional else {})

    def reference(self, split: str = "test", limit: int | None = None) -> list[Any]:
        molecules = self._split(split)
        if limit is not None and limit < len(molecules):
            molecules = molecules.select(torch.arange(limit))
        return molecules.to_data_list()

    # -- model -------------------------------------------------------------------------------
    def network(self, *, kind: str = "egnn", egnn: dict[str, Any] | None = None,
                e3nn: dict[str, Any] | None = None) -> nn.Module:
        """EDM's EGNN (``kind="egnn"``) or the e3nn tensor-product network (``kind="e3nn"``), sized
        by the options under its name (see ``networks.EGNN`` and ``networks.TensorProductNet``)."""
        sizes = {"num_properties": 1 if self.conditional else 0}
        if kind == "egnn":
            from .networks import EGNN

            return EGNN(self.num_features, **sizes, **(egnn or {}))
        if kind == "e3nn":
            from .networks import TensorProductNet

            return TensorProductNet(self.num_features, **sizes, **(e3nn or {}))
        raise ValueError(f"unknown network kind {kind!r}; choose 'egnn' or 'e3nn'")

    def atom_count_histogram(self, split: str = "train") -> Tensor:
        """``hist[n]``: training molecules with n atoms."""
        from .data import atom_count_histogram

        if self._histograms is None:
            self._histograms = {}
        if split == "train" and self._sampling is not None:
            return self._sampling["histogram"]
        if split not in self._histograms:
            self._histograms[split] = atom_count_histogram(self._split(split))
        return self._histograms[split]

    def _counts_given_property(self, properties: Tensor, generator: torch.Generator | None) -> Tensor:
        return counts_given_property(self.state_dict(), properties, generator)

    def _check_num_atoms(self, num_atoms: int) -> None:
        """``cond.num_atoms`` between 1 and the largest training molecule (the network never saw more)."""
        largest = int(torch.nonzero(self.atom_count_histogram()).max())
        if not 1 <= num_atoms <= largest:
            raise ValueError(f"cond.num_atoms={num_atoms} is outside the training molecules' sizes; choose "
                             f"cond.num_atoms in 1..{largest}")

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None, **request: Any) -> Cond:
        """``cond.num_atoms=N`` fixes the size of new molecules; a conditional domain takes the
        property by its name (``cond.alpha=80``, in the data's unit), else draws it from the
        training split, as EDM does."""
        cond: Cond = {}
        num_atoms = request.pop(NUM_ATOMS, None)
        if num_atoms is not None:
            self._check_num_atoms(int(num_atoms))
            cond[NUM_ATOMS] = torch.full((num_samples,), int(num_atoms), dtype=torch.long)
        if not self.conditional:
            if request:
                raise ValueError(f"this qm9 domain is unconditional; remove {sorted(request)} "
                                 "(train with domain.condition=<property> to condition on one)")
            return cond
        value = request.pop(self.condition_name, None)
        if request:
            raise ValueError(f"unknown conditions {sorted(request)}; this domain takes {self.condition_name!r} "
                             f"and {NUM_ATOMS!r}")
        if value is None:
            train = self.state_dict()["properties"][:, None]
            pick = torch.randint(len(train), (num_samples,), generator=generator)
            cond[PROPERTIES] = train[pick]
        else:
            cond[PROPERTIES] = self.normalise(torch.full((num_samples,), float(value)))[:, None]
        return cond

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        from .data import sample_atom_counts

        cond = cond or {}
        if NUM_ATOMS in cond:
            counts = cond[NUM_ATOMS].long().cpu()
        elif PROPERTIES in cond:
            counts = self._counts_given_property(cond[PROPERTIES].cpu(), generator)
        else:
            counts = sample_atom_counts(self.atom_count_histogram(), num_samples, generator=generator)
        batch = torch.repeat_interleave(torch.arange(num_samples), counts)
        return torch.zeros(len(batch), 3 + self.num_features), GraphSpace(batch, num_samples, zero_mean=(0, 1, 2))

    # -- outputs -----------------------------------------------------------------------------
    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list:
        """One PyG ``Data(pos, z)`` a molecule (atoms in their input order within the molecule)."""
        from .data import from_state

        return from_state(x, space, atom_types=self.atom_types).to_data_list()

    def save(self, objects: Sequence[Any], out_dir: Path) -> list[Path]:
        """samples.sdf (3D, inferred bonds), samples.xyz and samples.csv (one row a molecule:
        atoms, SMILES of the largest fragment if valid, validity and stability)."""
        from . import bonds
        from .data import MoleculeSet
        from .io import write_sdf, write_xyz
        from .metrics import _quiet_rdkit, largest_fragment_smiles, rdkit_molecules

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        packed = MoleculeSet.from_molecules(list(objects))
        _, stable = bonds.stability(packed.pos, packed.z, packed.counts)
        with _quiet_rdkit():
            smiles = [largest_fragment_smiles(mol) for mol in rdkit_molecules(packed)]
        sdf = write_sdf(packed, out_dir / "samples.sdf")
        xyz = write_xyz(packed, out_dir / "samples.xyz")
        table = out_dir / "samples.csv"
        with open(table, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "num_atoms", "smiles", "valid", "stable"])
            for k in range(len(packed)):
                writer.writerow([k, int(packed.counts[k]), smiles[k] or "", int(smiles[k] is not None),
                                 int(stable[k])])
        return [sdf, xyz, table]

    def figure(self, objects: Sequence[Any], path: Path) -> Path:
        """3D ball-and-stick grid at ``path`` and RDKit 2D depictions beside it (``<stem>_2d.png``)."""
        from .figures import draw_molecules_2d, plot_molecules_3d

        shown = list(objects)[:self.num_figure]
        path = Path(path)
        plot_molecules_3d(shown, path)
        draw_molecules_2d(shown, path.with_name(f"{path.stem}_2d{path.suffix}"))
        return path

    def training_smiles(self) -> set[str]:
        """SMILES of the training molecules under inferred bonds; cached on disk for full QM9."""
        from .data import cache_dir
        from .metrics import reference_smiles

        if self._training_smiles is None:
            cache = None
            if self.files is None and self.limit is None:
                root = Path(self.root) if self.root is not None else cache_dir()
                half = "" if self.half is None else f"_half{self.half}{self.half_seed}"
                cache = root / "qm9" / f"train_smiles_v1{'_noH' if self.remove_h else ''}_seed{self.seed}{half}.txt"
            self._training_smiles = reference_smiles(self._split("train"), cache=cache)
        return self._training_smiles

    def metrics(self, samples: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
        """EDM's metrics of ``samples`` (novelty against the training split), and the atom and
        molecule stability of ``reference`` (real molecules: the ceiling these bond tables allow)."""
        from . import bonds
        from .data import MoleculeSet
        from .metrics import evaluate

        result = evaluate(list(samples), training_smiles=self.training_smiles(),
                          perceive_bonds=self.perceive_bonds).as_dict()
        result["num_molecules"] = float(len(samples))
        if len(reference):
            packed = MoleculeSet.from_molecules(list(reference))
            atom_ok, molecule_ok = bonds.stability(packed.pos, packed.z, packed.counts)
            result["reference_atom_stability"] = atom_ok.float().mean().item()
            result["reference_molecule_stability"] = molecule_ok.float().mean().item()
        return result


MoleculesDomain = QM9Domain
