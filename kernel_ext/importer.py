"""Import notebooks next to the app as modules; refuse server notebooks in clients.

``import helpers`` finds ``helpers.ipynb`` on ``sys.path`` and runs its code
cells (IPython syntax included) as a module, like a ``.py`` file.  A client
that imports a name whose only match is ``name.server.ipynb`` gets an
ImportError that says why: server notebooks run on the host and are called
with ``server.call``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

__all__ = ["NotebookFinder", "ServerNotebookImportError", "code_cells", "install", "uninstall"]

SKIP_TAG = "greenroom:skip"


def code_cells(document: Any) -> Iterator[tuple[int, str]]:
    """(1-based cell number, source) of the code cells a notebook runs: cells tagged ``greenroom:skip`` are left out."""
    for index, cell in enumerate(document.cells, start=1):
        if cell.cell_type == "code" and SKIP_TAG not in cell.get("metadata", {}).get("tags", []):
            yield index, cell.source


class ServerNotebookImportError(ImportError):
    """A client tried to import a server notebook."""


class NotebookLoader(importlib.abc.Loader):
    """Runs a notebook's code cells in a module's namespace."""

    def __init__(self, path: str) -> None:
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        import nbformat
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        document = nbformat.read(self.path, as_version=4)
        module.__file__ = self.path
        module.__dict__.setdefault("get_ipython", lambda: shell)
        for index, source in code_cells(document):
            code = compile(shell.transform_cell(source), f"<{os.path.basename(self.path)} cell {index}>", "exec")
            exec(code, module.__dict__)  # noqa: S102 - importing the notebook means running it


class NotebookFinder(importlib.abc.MetaPathFinder):
    """Finds ``name.ipynb`` on the path; refuses ``name.server.ipynb``."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        name = fullname.rpartition(".")[2]
        for directory in path or sys.path:
            directory = directory or os.getcwd()
            if not isinstance(directory, str) or not os.path.isdir(directory):
                continue
            candidate = os.path.join(directory, name + ".ipynb")
            if os.path.isfile(candidate):
                return importlib.machinery.ModuleSpec(fullname, NotebookLoader(candidate), origin=candidate)
            if os.path.isfile(os.path.join(directory, name + ".server.ipynb")) and not _in_server_runtime():
                raise ServerNotebookImportError(
                    f"{name}.server.ipynb is a server notebook: its code runs only on the greenroom host. "
                    f"Call its functions with server.call('function_name', ...) instead of importing it."
                )
        return None


def _in_server_runtime() -> bool:
    return "GREENROOM_RUNTIME_KEY" in os.environ


_finder = NotebookFinder()


def install() -> None:
    """Put the notebook finder at the end of ``sys.meta_path`` (idempotent)."""
    if _finder not in sys.meta_path:
        sys.meta_path.append(_finder)


def uninstall() -> None:
    """Remove the notebook finder (idempotent)."""
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
