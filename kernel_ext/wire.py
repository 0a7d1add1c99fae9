"""Message framing shared by every greenroom connection.

A message is a list of parts: ``[route, payload, *buffers]``.  ``route`` is a
small JSON object that says what the message is (``kind``, call ``id``, ...);
``payload`` is JSON made by :mod:`greenroom.codec` and is forwarded by the host
without being parsed; buffers carry Media bytes.

On the wire a message is ``!I`` part count, ``!Q`` length of each part, then
the parts back to back: one WebSocket binary message, or the same bytes on a
stream socket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Generator
from typing import Any, TypeAlias

from .errors import WireError

__all__ = [
    "MAX_PARTS",
    "MAX_ROUTE",
    "Buffer",
    "FrameReader",
    "Part",
    "Parts",
    "Route",
    "check_count",
    "frame_pieces",
    "frame_prefix",
    "pack",
    "parse_route",
    "part_lengths",
    "read_frame",
    "read_message",
    "recv_message",
    "route_bytes",
    "send_message",
    "split",
    "unpack",
]

Route: TypeAlias = dict[str, Any]
#: Bytes as they arrive: whole messages, views into them, or a socket's receive buffer.
Buffer: TypeAlias = bytes | bytearray | memoryview
Part: TypeAlias = bytes | memoryview
Parts: TypeAlias = list[Part]
#: :func:`read_frame`: yields sizes, is sent that many bytes, returns the parts.
FrameReader: TypeAlias = Generator[int, Buffer, Parts]

#: Most parts a message may have (route + payload + buffers).
MAX_PARTS = 1024
#: Largest route header: it is parsed on the host's event loop, so it stays small.
MAX_ROUTE = 65536
_COUNT = struct.Struct("!I")
#: Bodies larger than this are read from an asyncio stream in chunks of this size (see :func:`read_message`).
READ_CHUNK = 1 << 20
#: Messages smaller than this are joined into one piece before they are written (see :func:`frame_pieces`).
JOIN_BELOW = 65536


_route_json = json.JSONEncoder(separators=(",", ":")).encode


def route_bytes(route: Route) -> bytes:
    """Encode a route header."""
    return _route_json(route).encode()


def parse_route(data: Buffer, limit: int = MAX_ROUTE) -> Route:
    """Decode a route header; :class:`WireError` unless it is a JSON object with a str ``kind``, at most
    ``limit`` bytes (headers from clients stay small: they are parsed on the host's event loop)."""
    if len(data) > limit:
        raise WireError(f"message header of {len(data)} bytes is larger than {limit} bytes")
    try:
        route = json.loads(bytes(data))
    except (ValueError, RecursionError) as error:
        raise WireError(f"malformed message header: {error}") from None
    if not isinstance(route, dict) or not isinstance(route.get("kind"), str):
        raise WireError("message header must be a JSON object with a string 'kind'")
    return route


def frame_prefix(parts: Parts) -> bytes:
    """The count and lengths that precede ``parts``."""
    count = len(parts)
    return struct.pack(f"!I{count}Q", count, *(len(part) for part in parts))


def pack(parts: Parts) -> bytes:
    """One bytes object holding the whole message."""
    return b"".join([frame_prefix(parts), *parts])


def check_count(count: int, max_parts: int = MAX_PARTS) -> None:
    """:class:`WireError` unless a message may have ``count`` parts."""
    if not 2 <= count <= max_parts:
        raise WireError(f"a message has 2 to {max_parts} parts, not {count}")


def part_lengths(lengths: Buffer, count: int, limit: int) -> list[int]:
    """Decode the ``!Q`` lengths of ``count`` parts; :class:`WireError` if they add up past ``limit``."""
    parsed = list(struct.unpack(f"!{count}Q", lengths))
    total = sum(parsed)
    if total > limit:
        raise WireError(f"message of {total} bytes is larger than the limit of {limit} bytes")
    return parsed


def split(body: memoryview, lengths: list[int], offset: int = 0) -> Parts:
    """Views of the parts of ``body`` (no copies)."""
    parts: Parts = []
    for length in lengths:
        parts.append(body[offset : offset + length])
        offset += length
    return parts


def read_frame(limit: int, max_parts: int = MAX_PARTS) -> FrameReader:
    """The one reader of the frame layout, free of I/O: it yields how many bytes it needs next and is sent
    them; it returns the parts.  :func:`unpack`, :func:`recv_message` and the host's stream reader drive it."""
    (count,) = _COUNT.unpack((yield _COUNT.size))
    check_count(count, max_parts)
    lengths = part_lengths((yield 8 * count), count, limit)
    body = yield sum(lengths)
    return split(memoryview(body), lengths)


def unpack(data: Buffer, limit: int) -> Parts:
    """Split a packed message into parts (views, no copies)."""
    view = memoryview(data)
    reader = read_frame(limit)
    offset = stage = 0
    try:
        size = next(reader)
        while True:
            if offset + size > len(view):
                raise WireError(_short(stage, size, len(view) - offset))
            chunk = view[offset : offset + size]
            offset += size
            stage += 1
            size = reader.send(chunk)
    except StopIteration as done:
        parts: Parts = done.value
    if offset != len(view):
        body = sum(len(part) for part in parts)
        raise WireError(_short(2, body, len(view) - offset + body))
    return parts


def _short(stage: int, needed: int, left: int) -> str:
    if stage == 0:
        return "truncated message"
    if stage == 1:
        return "truncated or oversized message header"
    return f"message parts add up to {needed} bytes but {left} arrived"


def _recv_exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise EOFError("connection closed")
        received += count
    return buffer


def recv_message(sock: socket.socket, limit: int, max_parts: int = MAX_PARTS) -> Parts:
    """Read one message from a blocking stream socket."""
    reader = read_frame(limit, max_parts)
    try:
        size = next(reader)
        while True:
            size = reader.send(_recv_exactly(sock, size))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def read_message(stream: asyncio.StreamReader, limit: int, max_parts: int = MAX_PARTS) -> Parts:
    """Read one message from an asyncio stream; EOF raises :class:`asyncio.IncompleteReadError`."""
    reader = read_frame(limit, max_parts)
    try:
        size = next(reader)
        while True:
            size = reader.send(await _read_exactly(stream, size))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def _read_exactly(stream: asyncio.StreamReader, size: int) -> Buffer:
    """``size`` bytes from ``stream``.  A large body is read in chunks appended to one buffer: asking the
    stream for all of it at once makes the stream's own buffer grow to the body's size after bytes were
    taken from its front, which copies it over and over (a 100 MB body cost the host about a second)."""
    if size <= READ_CHUNK:
        return await stream.readexactly(size)
    body = bytearray()  # grows as bytes arrive: a header that announces much and sends little costs little
    while len(body) < size:
        chunk = await stream.read(min(size - len(body), READ_CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(bytes(body[:READ_CHUNK]), size)  # gone mid-message
        body += chunk
    return body


def frame_pieces(parts: Parts) -> Parts:
    """What to write, in order, to send one message on a stream: a small message as one piece (one write,
    one system call); a large one as its prefix and its parts as they are, so that no copy of the whole
    message is made to join them."""
    if sum(len(part) for part in parts) < JOIN_BELOW:
        return [pack(parts)]
    return [frame_prefix(parts), *parts]


def send_message(sock: socket.socket, parts: Parts) -> None:
    """Write one message to a blocking stream socket."""
    for piece in frame_pieces(parts):
        sock.sendall(piece)
