"""``%load_ext greenroom``: the ``%greenroom`` magic.

``%greenroom`` prints the connection and the loaded server functions (name,
signature, first docstring line, notebook; never source).  Sub-commands:
``functions``, ``status``, ``reload``, ``connect URL [--token T]``.
"""

from __future__ import annotations

import json
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import importer
from .api import connect, server
from .connection import Connection
from .errors import GreenroomError

__all__ = ["GreenroomMagics", "load", "unload"]

_COMMANDS = ("functions", "status", "reload", "connect")


def _functions_table(functions: list[dict[str, Any]]) -> str:
    if not functions:
        return "no server functions are loaded"
    lines = []
    for function in functions:
        line = f"  {function['name']}{function['signature']}"
        if function.get("doc"):
            line += f"  - {function['doc']}"
        lines.append(f"{line}  [{function['notebook']}]")
    return "server functions:\n" + "\n".join(lines)


def _describe_error(error: dict[str, Any]) -> str:
    where = f"cell {error.get('cell')}, line {error.get('line')}" if error.get("cell") else "reading the file"
    return f"{error.get('type')} in {where}: {error.get('message')}"


def _health(status: dict[str, Any]) -> str:
    """Which notebooks do not serve their saved version, and why, in plain words."""
    serving = status.get("serving") or {}
    older = set(serving.get("older_versions", []))
    lines = []
    for error in serving.get("load_errors", []):
        notebook = error.get("notebook")
        if notebook in older:
            state = "serves its last good version; the saved version fails"
        else:
            state = "serves nothing: it never loaded"
        lines.append(f"  {notebook} {state}: {_describe_error(error)}")
    for error in status.get("rejected_reload_errors", []):
        lines.append(f"  the last reload failed as a whole, the previous version serves: {_describe_error(error)}")
    if not lines:
        return "server notebooks: every one serves its saved version"
    return "server notebooks that need attention:\n" + "\n".join(lines)


def _status_text(status: dict[str, Any]) -> str:
    serving = status.get("serving") or {}
    workers = f"{serving.get('busy_workers', 0)} busy, {serving.get('idle_workers', 0)} idle"
    summary = (
        f"mode: {status.get('mode')}; {len(serving.get('notebooks', []))} notebook(s), "
        f"{len(serving.get('functions', []))} function(s); workers: {workers}; "
        f"calls in flight: {status.get('calls_in_flight', 0)}; sessions: {status.get('sessions', 0)}"
    )
    return f"{summary}\n{_health(status)}"


def _connection_line() -> str:
    transport = server._transport
    if isinstance(transport, Connection):
        return f"connected to {transport.endpoint.url} ({transport.endpoint.source})"
    return "not connected yet (the first call finds the host)"


@magics_class
class GreenroomMagics(Magics):
    """The ``%greenroom`` line magic."""

    @magic_arguments()
    @argument("command", nargs="?", default="", help="functions, status, reload or connect (empty: overview)")
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
                print(_connection_line())
            elif command == "status":
                status = server.request("status")
                print(json.dumps(status, indent=2) if args.json else _status_text(status))
            elif command == "reload":
                status = server.request("reload")
                serving = status.get("serving") or {}
                print(
                    f"reloaded: generation {serving.get('generation')}, {len(serving.get('functions', []))} function(s)"
                )
                print(_health(status))
            elif command == "functions":
                print(_functions_table(server.request("functions")))
            else:
                functions = server.request("functions")
                print(_connection_line())
                print(_functions_table(functions))
                print(_health(server.request("status")))
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
