"""``%load_ext greenroom``: the ``%greenroom`` magic.

``%greenroom`` shows the connection and identity, the loaded server functions
(name, signature, first docstring line, notebook; never source) and the server
notebooks' health, as tables in a notebook and text in a terminal
(:mod:`greenroom.report`).  Sub-commands: ``functions``, ``status`` (``--json``
for the raw status), ``tasks`` (the background tasks you may see), ``reload``,
``connect URL [--token T]``.
"""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from . import importer
from .api import connect, server
from .connection import Connection
from .errors import GreenroomError
from .localconnection import LocalConnection
from .report import (
    Report,
    Section,
    connection_section,
    functions_section,
    notebooks_section,
    tasks_section,
    workers_section,
)

__all__ = ["GreenroomMagics", "load", "unload"]

_COMMANDS = ("functions", "status", "tasks", "reload", "connect")


def _where() -> str:
    transport = server._transport
    if isinstance(transport, LocalConnection):
        return f"connected to {transport.endpoint.url} over its local socket ({transport.endpoint.source})"
    if isinstance(transport, Connection):
        return f"connected to {transport.endpoint.url} ({transport.endpoint.source})"
    return "not connected yet (the first call finds the host)"


def _show(*sections: Section) -> None:
    display(Report(list(sections)))  # type: ignore[no-untyped-call]  # IPython's display is not annotated


@magics_class
class GreenroomMagics(Magics):
    """The ``%greenroom`` line magic."""

    @magic_arguments()
    @argument("command", nargs="?", default="", help="functions, status, tasks, reload or connect (empty: overview)")
    @argument("url", nargs="?", default=None, help="with connect: the Jupyter server's URL")
    @argument("--token", default=None, help="with connect: the Jupyter server's token")
    @argument("--json", action="store_true", help="with status: the host's raw status as JSON")
    @line_magic
    def greenroom(self, line: str) -> None:
        """Show the greenroom connection and server functions, or run a sub-command."""
        args = parse_argstring(self.greenroom, line)
        command = args.command
        if command and command not in _COMMANDS:
            raise UsageError(f"unknown %greenroom command {command!r}; use one of: {', '.join(_COMMANDS)}")
        if args.url is not None and command != "connect":
            raise UsageError(f"%greenroom {command} takes no URL")
        try:
            if command == "connect":
                if not args.url:
                    raise UsageError("usage: %greenroom connect URL [--token TOKEN]")
                connect(args.url, token=args.token)
                _show(connection_section(_where(), server.request("status")))
            elif command == "status":
                status = server.request("status")
                if args.json:
                    print(json.dumps(status, indent=2))
                else:
                    _show(connection_section(_where(), status), notebooks_section(status), workers_section(status))
            elif command == "reload":
                status = server.request("reload")
                _show(notebooks_section(status), workers_section(status))
            elif command == "tasks":
                _show(tasks_section(server.request("tasks")))
            elif command == "functions":
                _show(functions_section(server.request("functions")))
            else:
                functions = server.request("functions")
                status = server.request("status")
                _show(connection_section(_where(), status), functions_section(functions), notebooks_section(status))
        except GreenroomError as error:
            raise UsageError(f"greenroom: {error}") from None


def load(ipython: Any) -> None:
    """Register the magics and the notebook importer (idempotent)."""
    ipython.register_magics(GreenroomMagics)
    importer.install()


def unload(ipython: Any) -> None:
    """Remove the magics and the importer (idempotent)."""
    line_magics = ipython.magics_manager.magics["line"]
    line_magics.pop("greenroom", None)
    ipython.magics_manager.registry.pop("GreenroomMagics", None)
    importer.uninstall()
