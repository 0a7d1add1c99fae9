"""Load server notebooks: run their code cells top to bottom, IPython syntax included.

Each cell is compiled under a file name that names the notebook and cell, so
tracebacks map back to (notebook, cell, line, function) without source text.
The host parses the notebooks and sends their code cells: this process never
imports nbformat (a second of CPU and a fifth of its memory, paid again by every
fork).
"""

from __future__ import annotations

import builtins
import io
import os
import re
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from greenroom.protocol import LoadError
from greenroom.registry import functions

__all__ = ["LoadResult", "cell_filename", "load_notebooks", "locate_frame"]

_FILENAME = re.compile(r"^<greenroom (?P<notebook>.+) cell (?P<cell>\d+)>$")
MAX_LOAD_OUTPUT = 65536

LoadResult = dict[str, Any]


def cell_filename(notebook: str, cell: int) -> str:
    """The code file name of ``cell`` (1-based) of ``notebook``."""
    return f"<greenroom {notebook} cell {cell}>"


def locate_frame(filename: str) -> tuple[str, int] | None:
    """(notebook, cell) for frames of server notebook code; None for anything else."""
    match = _FILENAME.match(filename)
    if match is None:
        return None
    return match["notebook"], int(match["cell"])


def _error(notebook: str, cell: int, error: BaseException) -> LoadError:
    line = 0
    message = None
    if isinstance(error, SyntaxError) and error.filename == cell_filename(notebook, cell):
        line, message = error.lineno or 0, error.msg  # the message only: its args hold the source line
    else:
        for frame in traceback.extract_tb(error.__traceback__):
            if locate_frame(frame.filename) == (notebook, cell):
                line = frame.lineno or 0
    return LoadError.of(notebook, error, cell, line, message)


def _load_one(path: str, notebook: str, shell: Any, cells: list[Any]) -> LoadError | None:
    stem = os.path.basename(path)[: -len(".ipynb")].replace(".", "_")
    namespace: dict[str, Any] = {
        "__name__": f"greenroom_server_{stem}",
        "__file__": path,
        "__builtins__": builtins,
        "get_ipython": lambda: shell,
    }
    for index, cell_source in cells:
        try:
            source = shell.transform_cell(cell_source)
            code = compile(source, cell_filename(notebook, index), "exec")
            exec(code, namespace)  # noqa: S102 - running the server notebook is the point
        except BaseException as error:  # noqa: BLE001 - SystemExit at top level is a load error too
            return _error(notebook, index, error)
    return None


def load_notebooks(root: str, sources: list[dict[str, Any]]) -> LoadResult:
    """Load the notebooks the host sent (see ``greenroom.server_ext.generation_parts.NotebookSource``:
    ``notebook``, its path relative to ``root``; ``cells``, the code cells of its current version, or
    ``unreadable``, why there are none; ``fallback``, the cells of its last version that loaded) into this
    process.  A notebook whose current version fails falls back to its last good one; each notebook stands
    alone."""
    notebooks = [str(source["notebook"]) for source in sources]
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from greenroom import importer

    no_history = Config()
    no_history.HistoryManager.enabled = False  # no history thread or sqlite file in a process that forks
    shell = InteractiveShell.instance(config=no_history)
    importer.install()
    for directory in {os.path.dirname(os.path.join(root, nb)) for nb in notebooks} | {root}:
        if directory not in sys.path:
            sys.path.insert(0, directory)
    errors: list[LoadError] = []
    loaded: list[str] = []
    older: list[str] = []
    output = io.StringIO()
    with redirect_stdout(output), redirect_stderr(output):
        for source in sources:
            notebook = str(source["notebook"])
            if source.get("cells") is None:
                failure: LoadError | None = LoadError.from_data(source.get("unreadable"))
            else:
                failure = _load_version(root, notebook, shell, source["cells"])
            if failure is None:
                loaded.append(notebook)
                continue
            errors.append(failure)
            if source.get("fallback") is not None and _load_version(root, notebook, shell, source["fallback"]) is None:
                older.append(notebook)  # its last good version serves until the current one loads
    functions.current_notebook = ""
    return {
        "functions": [function.describe() for function in functions.by_name.values()],
        "tasks": sorted(functions.tasks),
        "errors": [error.to_data() for error in errors],
        "loaded": loaded,
        "older": older,
        "output": output.getvalue()[:MAX_LOAD_OUTPUT],
    }


def _load_version(root: str, notebook: str, shell: Any, cells: list[Any]) -> LoadError | None:
    """Load one version of one notebook; a version that fails contributes no function."""
    before = functions.snapshot()
    functions.current_notebook = notebook
    try:
        failure = _load_one(os.path.join(root, notebook), notebook, shell, cells)
    except ValueError as error:  # a function name defined twice
        failure = LoadError.of(notebook, error)
    if failure is not None:
        functions.restore(before)
    return failure
