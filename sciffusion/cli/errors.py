"""How the apps fail: the library's own errors as one line on stderr (the full traceback with
``HYDRA_FULL_ERROR=1``), and no empty output folder left behind by a failed command."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

from hydra.errors import InstantiationException

from ..training import CheckpointError, NonFiniteLossError

#: Errors that describe a problem with what the user passed (an option, a file, a checkpoint) and name
#: the fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (CheckpointError, NonFiniteLossError, ValueError, FileNotFoundError, NotADirectoryError,
               InstantiationException)

#: When this process started: a folder modified since then and left empty was made by this command.
STARTED = time.time()


def one_line(err: BaseException) -> str:
    """The error's message on one line (Hydra's instantiation errors span several)."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text or type(err).__name__


def remove_if_left_empty(folder: str | Path, *, hydra_subdir: str | None = None) -> None:
    """Remove ``folder`` if this command made it and wrote nothing into it but Hydra's records
    (``hydra_subdir``) and empty log files."""
    folder = Path(folder)
    if not folder.is_dir() or folder.stat().st_mtime < STARTED - 1:
        return
    for item in folder.iterdir():
        is_hydra = hydra_subdir is not None and item.name == hydra_subdir and item.is_dir()
        is_empty_log = item.is_file() and item.suffix == ".log" and item.stat().st_size == 0
        if not (is_hydra or is_empty_log):
            return
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def reported(app: str, *, out_dir: str | Path | None = None, hydra_subdir: str | None = None) -> Iterator[None]:
    """Run the app's work; a user error exits with ``app: message`` (status 1) instead of a traceback,
    and any failure removes ``out_dir`` if it was made by this command and left empty."""
    try:
        yield
    except BaseException as err:
        if out_dir is not None:
            remove_if_left_empty(out_dir, hydra_subdir=hydra_subdir)
        if not isinstance(err, USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{app}: error: {one_line(err)} (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
