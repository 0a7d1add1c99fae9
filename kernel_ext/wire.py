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

import json
import socket
import struct
from typing import Any, TypeAlias

from .errors import WireError

__all__ = [
    "MAX_PARTS",
    "MAX_ROUTE",
    "Parts",
    "check_count",
    "part_lengths",
    "split",
    "Route",
    "frame_prefix",
    "pack",
    "parse_route",
    "recv_message",
    "route_bytes",
    "send_message",
    "unpack",
]

Route: TypeAlias = dict[str, Any]
Parts: TypeAlias = list[bytes | memoryview]

#: Most parts a message may have (route + payload + buffers).
MAX_PARTS = 1024
#: Largest route header: it is parsed on the host's event loop, so it stays small.
MAX_ROUTE = 65536
_COUNT = struct.Struct("!I")


_route_json = json.JSONEncoder(separators=(",", ":")).encode


def route_bytes(route: Route) -> bytes:
    """Encode a route header."""
    return _route_json(route).encode()


def parse_route(data: bytes | memoryview, limit: int = MAX_ROUTE) -> Route:
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


def check_count(count: int) -> None:
    """:class:`WireError` unless a message may have ``count`` parts."""
    if not 2 <= count <= MAX_PARTS:
        raise WireError(f"a message has 2 to {MAX_PARTS} parts, not {count}")


def part_lengths(lengths: bytes | memoryview, count: int, limit: int) -> list[int]:
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


def unpack(data: bytes | memoryview, limit: int) -> Parts:
    """Split a packed message into parts (views, no copies)."""
    view = memoryview(data)
    if len(view) < _COUNT.size:
        raise WireError("truncated message")
    (count,) = _COUNT.unpack_from(view)
    check_count(count)
    head = _COUNT.size + 8 * count
    if len(view) < head:
        raise WireError("truncated or oversized message header")
    lengths = part_lengths(view[_COUNT.size : head], count, limit)
    if sum(lengths) != len(view) - head:
        raise WireError(f"message parts add up to {sum(lengths)} bytes but {len(view) - head} arrived")
    return split(view, lengths, head)


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


def recv_message(sock: socket.socket, limit: int) -> Parts:
    """Read one message from a blocking stream socket."""
    (count,) = _COUNT.unpack(_recv_exactly(sock, _COUNT.size))
    check_count(count)
    lengths = part_lengths(_recv_exactly(sock, 8 * count), count, limit)
    return split(memoryview(_recv_exactly(sock, sum(lengths))), lengths)


def send_message(sock: socket.socket, parts: Parts) -> None:
    """Write one message to a blocking stream socket."""
    prefix = frame_prefix(parts)
    if sum(len(part) for part in parts) < 65536:
        sock.sendall(b"".join([prefix, *parts]))
        return
    sock.sendall(prefix)
    for part in parts:
        sock.sendall(part)
