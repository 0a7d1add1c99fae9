"""Finding server notebooks under the root and noticing when they change."""

from __future__ import annotations

import fnmatch
import os

__all__ = ["Signature", "find_server_notebooks", "read_texts", "signature_of"]

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


def read_texts(root: str, notebooks: list[str]) -> list[str | None]:
    """The text of each notebook (None where it cannot be read as UTF-8)."""
    texts: list[str | None] = []
    for notebook in notebooks:
        try:
            with open(os.path.join(root, notebook), encoding="utf-8") as handle:
                texts.append(handle.read())
        except (OSError, UnicodeDecodeError):
            texts.append(None)
    return texts
