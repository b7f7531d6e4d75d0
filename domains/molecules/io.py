"""Reading a user's SDF and XYZ files into a ``MoleculeSet``, and writing molecules back out.

Readers never drop a record silently: every record that cannot be parsed, has no 3D coordinates
or holds an element outside ``elements`` is listed by index and reason in a ``ReadReport`` (and a
warning), or raises with ``errors="raise"``. SDF files go through RDKit (hydrogens kept, not
sanitised: positions and elements are what a generative model learns). Writers put the bonds
inferred from distances (``bonds``) into the SDF, so RDKit and viewers read back the same graph.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from rdkit import Chem, RDLogger
from torch_geometric.data import Batch, Data

from .bonds import ELEMENTS, SYMBOLS
from .data import MoleculeSet
from .metrics import rdkit_molecules


@dataclass
class ReadReport:
    """What a reader did: ``num_records`` seen, ``num_read`` kept, ``failures`` as (record index
    counted from 0, reason) for every record left out, and ``records[k]``: the record index of
    molecule k of the returned set."""

    source: str
    num_records: int = 0
    num_read: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    records: list[int] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        lines = [f"{self.source}: read {self.num_read} of {self.num_records} records"]
        lines += [f"  record {index}: {reason}" for index, reason in self.failures[:20]]
        if len(self.failures) > 20:
            lines.append(f"  ... and {len(self.failures) - 20} more")
        return "\n".join(lines)


def _check_errors(errors: str) -> None:
    if errors not in ("report", "raise"):
        raise ValueError(f"errors must be 'report' or 'raise', got {errors!r}")


def _finish(molecules: list[Data], report: ReadReport, errors: str) -> tuple[MoleculeSet | None, ReadReport]:
    report.num_read = len(molecules)
    if report.failures:
        if errors == "raise":
            raise ValueError(f"could not read every record; pass errors='report' to skip them\n{report}")
        warnings.warn(f"skipped {len(report.failures)} records\n{report}", stacklevel=3)
    return (MoleculeSet.from_molecules(molecules) if molecules else None), report


def _atomic_number(symbol: str) -> int:
    if symbol.isdigit():
        return int(symbol)
    symbol = symbol.capitalize()
    if symbol in ELEMENTS:
        return ELEMENTS[symbol]
    try:
        return Chem.GetPeriodicTable().GetAtomicNumber(symbol)
    except RuntimeError:  # RDKit's invariant violation for an unknown symbol
        raise ValueError(f"unknown element {symbol!r}") from None


def _unsupported(z: list[int], elements: Sequence[str] | None) -> str | None:
    if elements is None:
        return None
    allowed = {_atomic_number(e) for e in elements}
    others = sorted({Chem.GetPeriodicTable().GetElementSymbol(n) for n in z if n not in allowed})
    return f"elements {others} are not among {list(elements)}" if others else None


def read_sdf(path: str | Path, *, elements: Sequence[str] | None = None,
             errors: str = "report") -> tuple[MoleculeSet | None, ReadReport]:
    """Molecules of an SDF file with their 3D coordinates, formal charges and names.

    ``elements``: the allowed element symbols (e.g. ``QM9_ATOMS``); None allows any.
    ``errors``: "report" skips bad records and lists them, "raise" raises on the first file with any.
    Returns the set (None if no record was read) and the report."""
    _check_errors(errors)
    report, molecules = ReadReport(str(path)), []
    RDLogger.DisableLog("rdApp.*")  # failures are collected in the report instead of printed
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)
        for index, mol in enumerate(supplier):
            report.num_records += 1
            if mol is None:
                report.failures.append((index, "RDKit could not parse the record"))
                continue
            if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
                report.failures.append((index, "no 3D coordinates (2D or missing conformer)"))
                continue
            z = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
            problem = _unsupported(z, elements)
            if problem:
                report.failures.append((index, problem))
                continue
            data = Data(pos=torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32),
                        z=torch.tensor(z), charge=torch.tensor([a.GetFormalCharge() for a in mol.GetAtoms()]))
            data.name = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
            molecules.append(data)
            report.records.append(index)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return _finish(molecules, report, errors)


def _parse_xyz_frame(lines: list[str]) -> Data:
    """One XYZ frame (count line, comment, atom lines) as ``Data``; raises ValueError if malformed."""
    n = int(lines[0].split()[0])
    rows = [line.split() for line in lines[2:2 + n]]
    if len(rows) != n or any(len(row) < 4 for row in rows):
        raise ValueError(f"expected {n} atom lines of 'element x y z'")
    z = [_atomic_number(row[0]) for row in rows]
    pos = torch.tensor([[float(v) for v in row[1:4]] for row in rows], dtype=torch.float32)
    data = Data(pos=pos, z=torch.tensor(z), charge=torch.zeros(n, dtype=torch.long))
    data.name = lines[1].strip()
    return data


def read_xyz(path: str | Path, *, elements: Sequence[str] | None = None,
             errors: str = "report") -> tuple[MoleculeSet | None, ReadReport]:
    """Molecules of an XYZ file (one or several frames, each "count / comment / element x y z").

    Options as for ``read_sdf``. A frame whose count line is unreadable ends the file: the rest is
    reported as one failure, since its frame boundaries are unknown."""
    _check_errors(errors)
    report, molecules = ReadReport(str(path)), []
    lines = Path(path).read_text().splitlines()
    start, index = 0, 0
    RDLogger.DisableLog("rdApp.*")
    try:
        while start < len(lines):
            if not lines[start].strip():
                start += 1
                continue
            report.num_records += 1
            try:
                count = int(lines[start].split()[0])
            except ValueError:
                report.failures.append((index, f"line {start + 1}: atom count expected, got {lines[start]!r}; "
                                               "the rest of the file was not read"))
                break
            try:
                data = _parse_xyz_frame(lines[start:start + 2 + count])
                problem = _unsupported(data.z.tolist(), elements)
                if problem:
                    report.failures.append((index, problem))
                else:
                    molecules.append(data)
                    report.records.append(index)
            except (ValueError, RuntimeError, IndexError) as error:
                report.failures.append((index, f"line {start + 1}: {error}"))
            start, index = start + 2 + count, index + 1
    finally:
        RDLogger.EnableLog("rdApp.*")
    return _finish(molecules, report, errors)


def read_molecules(paths: str | Path | Sequence[str | Path], *, elements: Sequence[str] | None = None,
                   errors: str = "report") -> tuple[MoleculeSet | None, list[ReadReport]]:
    """All ``.sdf``/``.xyz`` files given, or found in given folders, as one set, with one report a file."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files = []
    for p in map(Path, paths):
        files += sorted(f for f in p.iterdir() if f.suffix.lower() in (".sdf", ".xyz")) if p.is_dir() else [p]
    readers = {".sdf": read_sdf, ".xyz": read_xyz}
    parts, reports = [], []
    for f in files:
        if f.suffix.lower() not in readers:
            raise ValueError(f"{f}: unknown molecule format {f.suffix!r}; give .sdf or .xyz files")
        molecules, report = readers[f.suffix.lower()](f, elements=elements, errors=errors)
        reports.append(report)
        parts += molecules.to_data_list() if molecules is not None else []
    return (MoleculeSet.from_molecules(parts) if parts else None), reports


def write_sdf(molecules: MoleculeSet | Batch | Sequence[Data], path: str | Path, *,
              names: Sequence[str] | None = None) -> Path:
    """An SDF file with each molecule's 3D coordinates and its bonds inferred from distances.
    Molecules that fail sanitisation are written too, with the inferred bonds as they are."""
    packed = MoleculeSet.from_molecules(molecules)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Chem.SDWriter(str(path)) as writer:
        writer.SetKekulize(False)  # inferred bonds are never aromatic: nothing to kekulise
        for k, mol in enumerate(rdkit_molecules(packed, with_charges=True)):
            mol.SetProp("_Name", names[k] if names is not None else f"molecule_{k}")
            mol.UpdatePropertyCache(strict=False)
            writer.write(mol)
    return path


def write_xyz(molecules: MoleculeSet | Batch | Sequence[Data], path: str | Path, *,
              names: Sequence[str] | None = None) -> Path:
    """A multi-frame XYZ file (Angstrom), one frame a molecule."""
    packed = MoleculeSet.from_molecules(molecules)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = Chem.GetPeriodicTable()
    lines = []
    for m in range(len(packed)):
        a, b = int(packed.ptr[m]), int(packed.ptr[m + 1])
        lines += [str(b - a), names[m] if names is not None else f"molecule_{m}"]
        lines += [f"{SYMBOLS.get(int(n)) or table.GetElementSymbol(int(n)):<2} {x:14.8f} {y:14.8f} {w:14.8f}"
                  for n, (x, y, w) in zip(packed.z[a:b].tolist(), packed.pos[a:b].tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path
