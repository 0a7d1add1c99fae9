"""Finding server notebooks under the root and noticing when they change."""

from __future__ import annotations

import fnmatch
import os

from greenroom.importer import code_cells
from greenroom.protocol import LoadError

__all__ = ["CodeCell", "Signature", "find_server_notebooks", "read_notebooks", "signature_of"]

#: A code cell a server notebook runs: its number (1-based, among all cells) and its source.
CodeCell = tuple[int, str]
#: (relative path, mtime_ns, size) of every server notebook: a change means reload.
Signature = tuple[tuple[str, int, int], ...]

_SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", ".ipynb_checkpoints"}


def find_server_notebooks(root: str, patterns: list[str]) -> list[str]:
    """Relative paths of the server notebooks under ``root``, sorted; hidden folders skipped."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".") and d not in _SKIP_DIRS)
        relative_dir = os.path.relpath(directory, root)
        for name in files:
            relative = name if relative_dir == "." else os.path.join(relative_dir, name)
            if name.endswith(".ipynb") and any(
                fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in patterns
            ):
                found.append(relative.replace(os.sep, "/"))
    return sorted(found)


def signature_of(root: str, notebooks: list[str]) -> Signature:
    """Stat each notebook; a missing file simply drops out."""
    entries = []
    for notebook in notebooks:
        try:
            stat = os.stat(os.path.join(root, notebook))
        except OSError:
            continue
        entries.append((notebook, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


def read_notebooks(root: str, notebooks: list[str]) -> list[list[CodeCell] | LoadError]:
    """Each notebook's code cells (as :func:`greenroom.importer.code_cells` picks them), or why it cannot be
    read.  Runs off the event loop: parsing validates."""
    import nbformat  # the host has it loaded already: jupyter_server reads notebooks with it

    read: list[list[CodeCell] | LoadError] = []
    for notebook in notebooks:
        try:
            with open(os.path.join(root, notebook), encoding="utf-8") as handle:
                document = nbformat.read(handle, as_version=4)
            # nbformat only logs what its schema finds wrong: a cell's odd metadata fails here, still reported
            cells = [(number, str(source)) for number, source in code_cells(document)]
        except Exception as error:  # noqa: BLE001 - an unreadable notebook is reported, not fatal
            first_line = str(error).splitlines()[0] if str(error) else repr(error)
            read.append(LoadError.of(notebook, error, message=f"cannot read the notebook: {first_line}"))
            continue
        read.append(cells)
    return read
