"""The host's side of the unix socket its runtime processes connect to.

:class:`RuntimeListener` accepts a connection, checks its hello (the runtime key and
a generation that exists) and hands the :class:`Link` to that generation, which reads
its messages until it ends.  A connection refused or dropped for breaking the protocol
is logged with its role and pid.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from greenroom.errors import WireError
from greenroom.protocol import RUNTIME_MAX_PARTS, CallResult, Kind, Role
from greenroom.wire import Parts, Route, frame_pieces, parse_route, read_message, route_bytes

from .identity import Caller
from .looptasks import LoopTasks

__all__ = ["Link", "LinkOwner", "RuntimeListener"]

#: The hello is small; anything larger is not a runtime process of ours.
MAX_HELLO = 4096
HELLO_TIMEOUT = 30.0


class Link:
    """One connected runtime process (template or worker)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: str, pid: int, generation: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.role = role
        self.pid = pid
        self.generation = generation
        self.closed = False
        #: The answer to the call this worker runs now (None while idle).
        self.reply: asyncio.Future[CallResult] | None = None
        #: Who made that call: server-to-server calls it makes run as the same caller.
        self.caller: Caller | None = None
        #: The queue its call waited in: server-to-server calls it makes wait in a queue one level down.
        self.queue_key = ""
        #: The id of the call it runs, and whether that call holds its session's lock.
        self.call_id = 0
        self.holds_session = False
        self.nested: set[asyncio.Task[None]] = set()
        #: The background task this process runs (a task's link only).
        self.task_id = ""

    def __repr__(self) -> str:
        return f"{self.role} pid {self.pid} of generation {self.generation}"

    def send(self, route: Route) -> None:
        """Queue a control message (a route and an empty payload)."""
        self.send_parts([route_bytes(route), b""])

    def send_parts(self, parts: Parts) -> None:
        """Queue a message a :mod:`greenroom.protocol` class packed (writes are buffered: no await)."""
        if self.closed:
            raise ConnectionResetError("runtime process is gone")
        for piece in frame_pieces(parts):
            self.writer.write(piece)

    async def receive(self, limit: int) -> tuple[Route, Parts]:
        parts = await read_message(self.reader, limit, RUNTIME_MAX_PARTS)
        return parse_route(parts[0], limit), parts  # a runtime process's header may carry its output

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class LinkOwner(Protocol):
    """What a generation offers the listener."""

    async def serve(self, link: Link) -> None:
        """Read ``link``'s messages until it ends."""


class RuntimeListener:
    """The unix socket (0600, in a 0700 folder) that the runtime processes connect to."""

    def __init__(
        self, path: str, key: str, owner_of: Callable[[int], LinkOwner | None], log: logging.Logger, tasks: LoopTasks
    ) -> None:
        self.path = path
        self.key = key
        self.owner_of = owner_of
        self.log = log
        self.tasks = tasks
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._on_connection, self.path, limit=1 << 20)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.track(task)
        try:
            hello = await self._hello(reader, writer)
            if hello is None:
                return
            owner, link = hello
            await owner.serve(link)
        finally:
            writer.close()

    async def _hello(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[LinkOwner, Link] | None:
        route: dict[str, Any] = {}
        try:
            parts = await asyncio.wait_for(read_message(reader, MAX_HELLO), HELLO_TIMEOUT)
            route = parse_route(parts[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        except (TimeoutError, WireError) as error:
            self.log.warning("refused a runtime connection: no valid hello (%s)", error or "timed out")
            return None
        role, pid, number = route.get("role"), route.get("pid"), route.get("generation")
        key = str(route.get("key", ""))
        owner = self.owner_of(number) if isinstance(number, int) else None
        if (
            route["kind"] != Kind.HELLO
            or not hmac.compare_digest(key.encode(), self.key.encode())
            or owner is None
            or role not in Role.ALL
            or not isinstance(pid, int)
        ):
            self.log.warning(
                "refused a runtime connection from %.40r pid %.20r: bad hello (kind %.40r, generation %.20r)",
                role,
                pid,
                route["kind"],
                number,
            )
            return None
        link = Link(reader, writer, str(role), int(pid), int(number))  # type: ignore[arg-type]
        task_id = route.get("task")
        if role == Role.TASK:
            if not isinstance(task_id, str) or not task_id:
                self.log.warning("refused a task's runtime connection from pid %d: it names no task", pid)
                return None
            link.task_id = task_id
        return owner, link
