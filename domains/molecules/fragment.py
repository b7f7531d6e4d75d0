"""Fragment-constrained generation: fix some atoms (a fragment read from an SDF or XYZ file) and
generate the rest of the molecule, through the core's ``Inpainting``.

    sciffusion-sample checkpoint=CKPT guidance=fragment guidance.fragment=frag.xyz cond.num_atoms=15 \
        num_samples=8 out_dir=DIR

Each new molecule has ``cond.num_atoms`` atoms; its first k are the fragment's k atoms, in the
file's order, with the file's elements and exactly the file's coordinates; the other N - k atoms
are generated. The positions are generated in the zero-centre-of-mass subspace, where the fragment
is only a shape: ``Inpainting`` pastes it at the translation that best matches the model's current
estimate of those atoms and re-centres the molecule (a common translation of every atom, which
keeps the fragment's internal geometry exact), and ``FragmentInpainting.restore`` translates each
final molecule so that its fixed atoms land on the file's coordinates. Rotations are not aligned:
the fragment's orientation is that of the file, and, the model being equivariant, rotating the
file rotates the generated molecules with it.

The replacement method conditions the free atoms only through the noisy state (see
``sciffusion.guidance.Inpainting``), not through a likelihood of the fragment.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from sciffusion.guidance import Inpainting, device_of
from sciffusion.parameterization import Denoiser
from sciffusion.space import GraphSpace, Space


class FragmentInpainting(Inpainting):
    """Inpainting of molecules whose first ``k`` atoms (rows, in order within each molecule) are
    the fragment ``known[k, 3 + F]`` (positions in the fragment's frame, then the features of
    ``data.to_state``). Every molecule of a batch must have more than ``k`` atoms."""

    def __init__(self, denoiser: Denoiser, known: Tensor):
        if known.dim() != 2 or known.shape[1] < 4:
            raise ValueError(f"a fragment state is [k, 3 + F], got shape {tuple(known.shape)}")
        super().__init__(denoiser, known, torch.ones(known.shape, dtype=torch.bool))

    @property
    def size(self) -> int:
        return self.known.shape[0]

    def entries(self, x: Tensor, space: Space) -> tuple[Tensor, Tensor]:
        if not isinstance(space, GraphSpace):
            raise TypeError(f"fragment inpainting works on molecules (a GraphSpace), got {type(space).__name__}")
        if x.shape[1] != self.known.shape[1]:
            raise ValueError(f"the fragment has {self.known.shape[1]} columns, the molecules {x.shape[1]}")
        counts = space.counts.to(x.device)
        if (counts <= self.size).any():
            raise ValueError(f"molecules of {int(counts.min())} atoms cannot hold a fragment of {self.size} atoms "
                             f"and generate anything: ask for more (cond.num_atoms > {self.size})")
        batch = space.batch.to(x.device)
        order = torch.argsort(batch, stable=True)  # rows of each molecule in their order
        starts = torch.cumsum(counts, 0) - counts
        within = torch.empty_like(batch)
        within[order] = torch.arange(len(batch), device=x.device) - starts[batch[order]]
        fixed = within < self.size
        known = torch.zeros_like(x)
        known[fixed] = self.known.to(x)[within[fixed]]
        return known, fixed[:, None].expand_as(x)


def pick_record(molecules, report, record: int, path: Path):
    """The molecule at position ``record`` of the file (counting every record, readable or not), as a
    one-molecule ``MoleculeSet``; an error naming the record and why if it is absent or unreadable."""
    readable = f"readable records: {', '.join(map(str, report.records[:10])) or 'none'}"
    if record < 0 or record >= report.num_records:
        last = f"; record {report.failures[-1][0]}: {report.failures[-1][1]}" if report.failures else ""
        raise ValueError(f"guidance.record={record}: {path} holds {report.num_records} records{last}; "
                         f"choose guidance.record from the {readable}")
    if record not in report.records:
        why = dict(report.failures).get(record, "it could not be read")
        raise ValueError(f"guidance.record={record}: record {record} of {path} cannot be used: {why}; "
                         f"fix it or choose guidance.record from the {readable}")
    return molecules.select([report.records.index(record)])


def read_fragment(path: str | Path, *, atom_types: tuple[str, ...] | list[str], record: int = 0):
    """Molecule ``record`` of an SDF or XYZ file (its position in the file, corrupt records counted)
    as a one-molecule ``MoleculeSet``; a clear error if that record cannot be read or holds an
    element outside ``atom_types``."""
    from .bonds import SYMBOLS
    from .io import read_molecules

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"guidance.fragment={str(path)!r} is not a file; give an .sdf or .xyz fragment")
    molecules, (report,) = read_molecules(path)
    fragment = pick_record(molecules, report, int(record), path)
    symbols = [SYMBOLS.get(int(n), str(int(n))) for n in fragment.z.tolist()]
    foreign = sorted(set(symbols) - set(atom_types))
    if foreign:
        raise ValueError(f"the fragment {path} holds elements {foreign} that the model cannot generate; "
                         f"its atom types are {list(atom_types)}")
    return fragment


def fragment_state(fragment, *, atom_types, include_charges: bool) -> Tensor:
    """``[k, 3 + F]``: the fragment's positions as given (not centred) and its atom features."""
    from .data import to_state

    x, _ = to_state(fragment, atom_types=atom_types, include_charges=include_charges)
    x[:, :3] = fragment.pos.to(x)
    return x


def fragment(denoiser: Denoiser, *, domain, process=None, fragment: str, num_atoms: int | None = None, record: int = 0,
             out_dir: str | None = None) -> FragmentInpainting:
    """The guidance of ``guidance=fragment``: molecules of ``num_atoms`` atoms holding molecule
    ``record`` of the file ``fragment`` as their first atoms.

    The sampling loop calls ``FragmentInpainting.restore`` on the final samples, which puts them
    back in the fragment's frame. With ``out_dir`` the fragment is also written there as
    ``fragment.xyz``."""
    from .io import write_xyz

    if getattr(domain, "name", None) == "qm9_joint":  # the joint model also fixes charges and bonds
        from .joint_fragment import joint_fragment

        return joint_fragment(denoiser, domain=domain, fragment=fragment, num_atoms=num_atoms, record=record,
                              out_dir=out_dir)
    frag = read_fragment(fragment, atom_types=tuple(domain.atom_types), record=record)
    k = len(frag.z)
    if num_atoms is None:
        raise ValueError("fragment generation needs the size of the molecules: set cond.num_atoms=N "
                         f"(N > {k}, the fragment's atoms)")
    if int(num_atoms) <= k:
        raise ValueError(f"cond.num_atoms={num_atoms} leaves no atom to generate around a fragment of {k} atoms; "
                         f"ask for more than {k}")
    known = fragment_state(frag, atom_types=domain.atom_types, include_charges=domain.include_charges)
    guide = FragmentInpainting(denoiser, known.to(device_of(denoiser)))
    if out_dir is not None:
        from sciffusion.training import distributed

        if distributed.world()[0] == 0:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            write_xyz(frag, Path(out_dir) / "fragment.xyz")
    return guide
