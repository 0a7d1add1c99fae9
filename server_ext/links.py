"""The host's side of its unix-socket links to template and worker processes."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from greenroom.wire import Parts, check_count, frame_prefix, parse_route, part_lengths, route_bytes, split

__all__ = ["Link", "read_message"]

_COUNT = struct.Struct("!I")


async def read_message(reader: asyncio.StreamReader, limit: int) -> Parts:
    """Read one framed message; :class:`WireError` if it breaks the rules, EOF as IncompleteReadError."""
    (count,) = _COUNT.unpack(await reader.readexactly(_COUNT.size))
    check_count(count)
    lengths = part_lengths(await reader.readexactly(8 * count), count, limit)
    return split(memoryview(await reader.readexactly(sum(lengths))), lengths)


class Link:
    """One connected runtime process (template or worker)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, role: str, pid: int, generation: int) -> None:
        self.reader = reader
        self.writer = writer
        self.role = role
        self.pid = pid
        self.generation = generation
        self.closed = False
        self.reply: asyncio.Future[tuple[dict[str, Any], Parts]] | None = None
        self.caller: Any = None
        self.nested: set[asyncio.Task[None]] = set()
        self.calls_served = 0

    def send(self, route: dict[str, Any], *parts: bytes | memoryview) -> None:
        """Queue a message (writes are buffered by the transport; no await needed)."""
        if self.closed:
            raise ConnectionResetError("runtime process is gone")
        message = [route_bytes(route), *parts]
        self.writer.writelines([frame_prefix(message), *message])

    async def receive(self, limit: int) -> tuple[dict[str, Any], Parts]:
        parts = await read_message(self.reader, limit)
        return parse_route(parts[0], limit), parts  # a runtime process's header may carry its output

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()
