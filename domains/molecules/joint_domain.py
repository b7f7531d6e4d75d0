"""QM9 as a joint state: positions, atom types, formal charges and bond orders generated together.

A batch of M molecules is the ``dict`` state

    pos [N, 3]      Angstrom, each molecule's centre of mass at zero   GraphSpace(batch, M, zero_mean=(0, 1, 2))
    atoms [N]       index into ``atom_types`` (H C N O F, or C N O F)   GraphSpace(batch, M)
    charges [N]     index into ``CHARGES`` (-1, 0, +1)                  GraphSpace(batch, M)
    bonds [E]       index into ``chemistry.BOND_TYPES`` (none, single,  EdgeSpace: every atom pair of a
                    double, triple, aromatic) for every atom pair        molecule, stored once (i < j)

with bonds and charges from ``chemistry.qm9_bonds`` (RDKit's perception of the DFT geometry, checked
against the dataset's SMILES). The domain is registered as ``qm9_joint``; ``experiment=qm9_joint_cpu``
trains it. Samples decode to PyG ``Data(pos, z, charge, edge_index, bond_order)`` with the generated
bonds, which ``save`` writes as SDF (bonds and charges as generated) and XYZ.

Property conditioning follows EDM's protocol, as the ``qm9`` domain does: ``condition="alpha"`` (any
QM9 target) adds ``cond["properties"] [B, 1]``, the property normalised with the training split's
mean and std; ``half="a"``/``"b"`` trains on one of the two fixed halves of the training split (the
evaluation predictor learns on the other); new molecules take their size from p(N | c).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from sciffusion.domain import Batch, Domain
from sciffusion.parameterization import Cond
from sciffusion.space import GraphSpace, Space
from sciffusion.state import EdgeSpace, PartsSpace

CHARGES = (-1, 0, 1)
NUM_ATOMS = "num_atoms"
PROPERTIES = "properties"  # as the qm9 domain's cond key, which JointMoleculeNet reads


class JointMoleculeDataset(Dataset):
    """Molecule i as (pos [n, 3], atoms [n], charges [n], bond matrix [n, n] of bond-type indices),
    followed by its normalised properties [P] when ``properties`` [M, P] is given."""

    def __init__(self, molecules, bonds, atom_index: Tensor, properties: Tensor | None = None):
        self.molecules, self.bonds, self.atom_index, self.properties = molecules, bonds, atom_index, properties

    def __len__(self) -> int:
        return len(self.molecules)

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        a, b = int(self.molecules.ptr[i]), int(self.molecules.ptr[i + 1])
        edges, order, charge = self.bonds.molecule(i)
        n = b - a
        matrix = torch.zeros(n, n, dtype=torch.long)
        matrix[edges[:, 0], edges[:, 1]] = order
        atoms = self.atom_index[self.molecules.z[a:b].long()]
        charges = charge.long() - CHARGES[0]
        item = (self.molecules.pos[a:b].float(), atoms, charges, matrix)
        return item if self.properties is None else (*item, self.properties[i])


def collate_joint(items: Sequence[tuple[Tensor, ...]]) -> Batch:
    """A joint batch (see the module docstring) from dataset items; positions are centred here. Items
    with a fifth entry (properties) give ``cond["properties"] [B, P]``."""
    counts = torch.tensor([len(item[1]) for item in items])
    batch = torch.repeat_interleave(torch.arange(len(items)), counts)
    pos_space = GraphSpace(batch, len(items), zero_mean=(0, 1, 2))
    edges = EdgeSpace.fully_connected(batch, len(items))
    bonds = [item[3][tuple(torch.triu_indices(len(item[3]), len(item[3]), offset=1))] for item in items]
    x = {"pos": pos_space.project(torch.cat([item[0] for item in items])),
         "atoms": torch.cat([item[1] for item in items]), "charges": torch.cat([item[2] for item in items]),
         "bonds": torch.cat(bonds) if bonds else torch.zeros(0, dtype=torch.long)}
    space = PartsSpace({"pos": pos_space, "atoms": GraphSpace(batch, len(items)),
                        "charges": GraphSpace(batch, len(items)), "bonds": edges})
    with_properties = [len(item) > 4 for item in items]
    if any(with_properties) != all(with_properties):
        raise ValueError("a batch mixes molecules with and without properties")
    cond = {PROPERTIES: torch.stack([item[4] for item in items])} if items and all(with_properties) else {}
    return Batch(x, space, cond)


class QM9JointDomain(Domain):
    """QM9 (EDM's split) with bonds and formal charges, for joint generation of all four parts.

    ``remove_h`` drops hydrogens (and their bonds); ``limit`` keeps the first molecules of the whole
    set before splitting (for tests); ``kekulize`` uses Kekule bond orders (no aromatic type).
    ``condition`` (a QM9 target, e.g. "alpha"), ``half`` and ``half_seed``: property conditioning, as
    the ``qm9`` domain's options of the same names (the halves are the same molecules)."""

    name = "qm9_joint"
    extra = "molecules"

    def __init__(self, *, remove_h: bool = False, limit: int | None = None, root: str | None = None,
                 kekulize: bool = False, condition: str | None = None, half: str | None = None,
                 half_seed: int = 42):
        from .data import QM9_TARGETS
        from .domain import HALVES

        if half is not None and half not in HALVES:
            raise ValueError(f"half must be None, 'a' or 'b', got {half!r}")
        if condition is not None and condition not in QM9_TARGETS:
            raise ValueError(f"condition must be a QM9 target among {list(QM9_TARGETS)} or None, got {condition!r}")
        self.remove_h, self.limit, self.root, self.kekulize = remove_h, limit, root, kekulize
        self.condition_name, self.half, self.half_seed = condition, half, half_seed
        self.atom_types = ("C", "N", "O", "F") if remove_h else ("H", "C", "N", "O", "F")
        self._data: dict[str, Any] = {}
        self._state: dict[str, Any] | None = None
        self._process = None
        self._smiles: set[str] | None = None

    # -- data --------------------------------------------------------------------------------
    def _atom_index(self) -> Tensor:
        from .data import ATOMIC_NUMBERS

        index = torch.full((10,), -1, dtype=torch.long)
        for k, symbol in enumerate(self.atom_types):
            index[ATOMIC_NUMBERS[symbol]] = k
        return index

    def _split(self, split: str):
        if split not in self._data:
            from .bond_set import qm9_bonds  # plain tensors: no RDKit needed to train
            from .data import load_qm9, qm9_split

            if self.limit is None:
                molecules = load_qm9(split, remove_h=self.remove_h, root=self.root)
                bonds = qm9_bonds(self.remove_h, split=split, kekulize=self.kekulize, root=self.root)
            else:  # the first `limit` molecules, split in proportion (tests)
                molecules = load_qm9(remove_h=self.remove_h, limit=self.limit, root=self.root)
                bonds = qm9_bonds(self.remove_h, limit=self.limit, kekulize=self.kekulize, root=self.root,
                                  workers=1, progress=False)  # a few molecules: no worker processes to start
                rows = qm9_split(len(molecules))[split] if len(molecules) > 10 else torch.arange(len(molecules))
                rows = rows[rows < len(molecules)]
                molecules, bonds = molecules.select(rows), bonds.select(rows)
            if not torch.equal(molecules.z.long(), bonds.z.long()):
                raise RuntimeError("QM9 molecules and their bonds are out of step; delete the qm9 cache and rerun")
            if split == "train" and self.half is not None:
                from .domain import training_halves

                rows = training_halves(len(molecules), self.half_seed)[self.half]
                molecules, bonds = molecules.select(rows), bonds.select(rows)
            self._data[split] = (molecules, bonds)
        return self._data[split]

    def dataset(self, split: str) -> JointMoleculeDataset:
        molecules, bonds = self._split(split)
        properties = self.normalise(self._property_values(molecules))[:, None] if self.conditional else None
        return JointMoleculeDataset(molecules, bonds, self._atom_index(), properties)

    # -- the conditioning property -------------------------------------------------------------
    @property
    def conditional(self) -> bool:
        return self.condition_name is not None

    def _property_values(self, molecules) -> Tensor:
        from .data import QM9_TARGETS

        return molecules.y[:, list(QM9_TARGETS).index(self.condition_name)].double()

    def normalise(self, values: Tensor) -> Tensor:
        state = self.state_dict()
        return ((values.double() - state["property_mean"]) / state["property_std"]).float()

    def denormalise(self, values: Tensor) -> Tensor:
        state = self.state_dict()
        return (values.double() * state["property_std"] + state["property_mean"]).float()

    def collate(self, items) -> Batch:
        return collate_joint(items)

    # -- what sampling needs, kept in checkpoints ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Atom-count histogram and the class frequencies of atoms, charges and bonds (marginal priors)."""
        if self._state is None:
            molecules, bonds = self._split("train")
            atoms = self._atom_index()[molecules.z.long()]
            pairs = int((molecules.counts * (molecules.counts - 1) // 2).sum())
            bond_freq = torch.bincount(bonds.order.long(), minlength=5).double()
            bond_freq[0] = pairs - bond_freq[1:].sum()
            self._state = {
                "atom_types": list(self.atom_types), "remove_h": self.remove_h,
                "histogram": torch.bincount(molecules.counts.long()).double(),
                "atoms": torch.bincount(atoms, minlength=len(self.atom_types)).double(),
                "charges": torch.bincount(bonds.charge.long() - CHARGES[0], minlength=len(CHARGES)).double(),
                "bonds": bond_freq,
            }
            if self.conditional:
                from .domain import count_histograms_given_property

                y = self._property_values(molecules)
                mean, std = y.mean().reshape(1), y.std().clamp(min=1e-12).reshape(1)
                values = ((y - mean) / std).float()
                self._state.update(property=self.condition_name, property_mean=mean, property_std=std,
                                   properties=values, **count_histograms_given_property(values, molecules.counts))
        return dict(self._state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state.get("atom_types", [])) != list(self.atom_types):
            raise ValueError(f"the checkpoint's atom types {state.get('atom_types')} differ from this domain's "
                             f"{list(self.atom_types)}; set domain.remove_h={state.get('remove_h')}")
        if state.get("property") != self.condition_name:
            raise ValueError(f"the checkpoint is conditioned on {state.get('property')!r}, this domain on "
                             f"{self.condition_name!r}; set domain.condition={state.get('property') or 'null'}")
        self._state = dict(state)

    def prepare_process(self, process: Any) -> None:
        """Marginal priors get the training set's class frequencies; the network sizes its inputs by
        each part's number of states (a masked process adds one)."""
        from sciffusion.categorical import CategoricalProcess

        state = self.state_dict()
        for part in ("atoms", "charges", "bonds"):
            p = process[part]
            if not isinstance(p, CategoricalProcess):
                raise ValueError(f"part {part!r} of qm9_joint must be categorical, got {p!r}")
            if p.num_classes != len(state[part]):
                raise ValueError(f"part {part!r} has {len(state[part])} classes here, the process says {p.num_classes}")
            if p.prior == "marginal":
                p.set_marginals(state[part])
        self._process = process

    def network(self, **options: Any) -> nn.Module:
        from .networks.joint import JointMoleculeNet

        states = {}
        if self._process is not None:  # a masked process adds a mask state to its part's inputs
            states = {option: self._process[part].num_states
                      for option, part in (("atom_states", "atoms"), ("charge_states", "charges"),
                                           ("bond_states", "bonds"))}
        if self.conditional:
            options = {"cond_dim": 1, **options}
        return JointMoleculeNet(num_atom_types=len(self.atom_types), num_charges=len(CHARGES), num_bond_types=5,
                                **states, **options)

    # -- new molecules -----------------------------------------------------------------------
    def condition(self, num_samples: int, *, generator: torch.Generator | None = None, **request: Any) -> Cond:
        """``cond.num_atoms=N`` fixes the size of new molecules; a conditional domain takes its property
        by name (``cond.alpha=80``, in the data's unit), else draws it from the training split, as EDM does."""
        cond: Cond = {}
        num_atoms = request.pop(NUM_ATOMS, None)
        if num_atoms is not None:
            largest = len(self.state_dict()["histogram"]) - 1
            if not 1 <= int(num_atoms) <= largest:
                raise ValueError(f"num_atoms must lie in 1..{largest} (the largest molecule in the data), got {num_atoms}")
            cond[NUM_ATOMS] = torch.full((num_samples,), int(num_atoms), dtype=torch.long)
        value = request.pop(self.condition_name, None) if self.conditional else None
        if request:
            takes = [NUM_ATOMS] + ([self.condition_name] if self.conditional else [])
            hint = "" if self.conditional else " (train with domain.condition=<property> to condition on one)"
            raise ValueError(f"qm9_joint takes only {takes} as conditions; remove {sorted(request)}{hint}")
        if self.conditional:
            if value is None:
                train = self.state_dict()["properties"][:, None]
                cond[PROPERTIES] = train[torch.randint(len(train), (num_samples,), generator=generator)]
            else:
                cond[PROPERTIES] = self.normalise(torch.full((num_samples,), float(value)))[:, None]
        return cond

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[dict[str, Tensor], Space]:
        from .data import sample_atom_counts
        from .domain import counts_given_property

        cond = cond or {}
        if NUM_ATOMS in cond:
            counts = cond[NUM_ATOMS].long().cpu()
        elif PROPERTIES in cond:
            counts = counts_given_property(self.state_dict(), cond[PROPERTIES].cpu(), generator)
        else:
            counts = sample_atom_counts(self.state_dict()["histogram"], num_samples, generator=generator)
        items = [(torch.zeros(n, 3), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long),
                  torch.zeros(n, n, dtype=torch.long)) for n in counts.tolist()]
        batch = collate_joint(items)
        return batch.x, batch.space

    # -- outputs -----------------------------------------------------------------------------
    def decode(self, x: dict[str, Tensor], space: PartsSpace, cond: Cond | None = None) -> list:
        """One PyG ``Data(pos, z, charge, edge_index [2, E_i], bond_order [E_i])`` a molecule, with the
        generated bonds (type 4 = aromatic) and formal charges."""
        from torch_geometric.data import Data

        from .data import ATOMIC_NUMBERS

        z_of = torch.tensor([ATOMIC_NUMBERS[s] for s in self.atom_types])
        node_batch, edges = space["atoms"].batch.cpu(), space["bonds"]
        starts = torch.cumsum(space["atoms"].counts.cpu(), 0) - space["atoms"].counts.cpu()
        out = []
        for m in range(space["atoms"].num_samples):
            rows = node_batch == m
            mine = (edges.batch.cpu() == m) & (x["bonds"].cpu() > 0)
            out.append(Data(pos=x["pos"][rows].detach().cpu().float(), z=z_of[x["atoms"][rows].cpu()],
                            charge=x["charges"][rows].cpu() + CHARGES[0],
                            edge_index=edges.index.cpu()[:, mine] - starts[m], bond_order=x["bonds"].cpu()[mine]))
        return out

    def save(self, objects: Sequence[Any], out_dir: Path) -> list[Path]:
        """samples.sdf (generated bonds and charges, every hydrogen explicit, none implicit) and samples.xyz."""
        from .joint_metrics import to_mol, write_xyz
        from rdkit import Chem

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        sdf = out_dir / "samples.sdf"
        with Chem.SDWriter(str(sdf)) as writer:
            for i, data in enumerate(objects):
                mol = Chem.RWMol(to_mol(data, sanitize=False))
                mol.SetProp("_Name", f"sample_{i}")
                try:  # Kekule bond blocks, which every reader understands
                    Chem.Kekulize(mol, clearAromaticFlags=True)
                    kekule = True
                except Exception:  # aromatic bonds with no Kekule form: written as aromatic (type 4)
                    kekule = False
                writer.SetKekulize(False)
                mol.SetProp("kekulized", str(kekule))
                writer.write(mol)
        return [sdf, write_xyz(objects, out_dir / "samples.xyz")]

    def figure(self, objects: Sequence[Any], path: Path) -> Path:
        from .figures import plot_molecules_3d

        return plot_molecules_3d(list(objects)[:16], path)

    def metrics(self, samples: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
        from .joint_metrics import evaluate_joint

        return evaluate_joint(samples, reference, training_smiles=self.training_smiles(),
                              explicit_hydrogens=not self.remove_h)

    def training_smiles(self) -> set[str] | None:
        """Canonical SMILES (no stereo, hydrogens implicit) of the training split's molecules, from the
        dataset's own SMILES, which their bonds were checked against: the novelty reference. None when
        the data are not here (sampling from a checkpoint alone)."""
        if self._smiles is not None:
            return self._smiles
        try:
            molecules, _ = self._split("train")
        except (FileNotFoundError, OSError, ImportError):
            return None
        if molecules.smiles is None:
            return None
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        smiles = set()
        for text in molecules.smiles:
            mol = Chem.MolFromSmiles(text)
            if mol is not None:
                Chem.RemoveStereochemistry(mol)
                smiles.add(Chem.MolToSmiles(mol))
        self._smiles = smiles
        return smiles
