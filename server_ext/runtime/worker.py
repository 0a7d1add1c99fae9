"""A worker: a child forked from the template that runs calls.

Fresh-state workers run one call and exit; persistent workers loop.  Prints go
to a bounded buffer that is sent back for the host's log, never to the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import os
import random
import resource
import signal
import threading
import traceback
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

from greenroom.api import CallContext, server
from greenroom.codec import decode_arguments, decode_json, encode_json
from greenroom.errors import NoServerFunctionError, WireError
from greenroom.registry import ServerFunction, functions
from greenroom.remote_errors import error_to_data
from greenroom.wire import Parts, Route

from .channel import Channel, die_with_parent
from .loader import locate_frame

__all__ = ["BoundedOutput", "run_worker", "warm_up"]

MAX_OUTPUT = 65536


class BoundedOutput(io.TextIOBase):
    """A text sink that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int = MAX_OUTPUT) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self) -> str:
        joined = "".join(self.parts)
        return joined + (f"\n... {self.dropped} more characters dropped" if self.dropped else "")


class WorkerTransport:
    """Server-to-server calls: through the worker's own channel to the host."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.lock = threading.Lock()
        self.next_id = 0

    def request(self, route: Route, payload: bytes = b"", buffers: Parts | None = None) -> tuple[Route, Parts]:
        with self.lock:
            self.next_id += 1
            route["id"] = self.next_id
            self.channel.send(route, payload, *(buffers or []))
            while True:
                reply, parts = self.channel.receive()
                if reply.get("kind") == "reply" and reply.get("id") == self.next_id:
                    return reply, parts

    async def request_async(self, route: Route, payload: bytes = b"", buffers: Parts | None = None) -> tuple[Route, Parts]:
        return await asyncio.to_thread(self.request, route, payload, buffers)


def _limit_memory(limit: int) -> None:
    if limit <= 0:
        return
    with open("/proc/self/statm", encoding="ascii") as handle:
        used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + limit, used + limit))


def _run(route: Route, parts: Parts, entry: ServerFunction | None = None) -> tuple[Route, list[Any]]:
    name = str(route.get("name"))
    entry = entry or functions.by_name.get(name)
    nbuf = int(route.get("nbuf", 0))
    output = BoundedOutput()
    session_in = bytes(parts[2])
    reply: Route = {"kind": "result", "cid": route.get("cid"), "ok": True}
    try:
        if entry is None:
            raise NoServerFunctionError(f"no server function named {name!r}")
        args, kwargs = decode_arguments(parts[1], parts[3 : 3 + nbuf])
        session = decode_json(session_in, parts[3 + nbuf :])
        if not isinstance(session, dict):
            raise WireError("session must be a dict")
        client_type, client_id = route.get("caller", ["none", ""])
        context = CallContext(str(client_type), str(client_id), name, str(route.get("cid")))
        with redirect_stdout(output), redirect_stderr(output), server.running_call(session, context):
            result = entry.function(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        payload, buffers = encode_json(result, "return value")
        session_out, session_buffers = encode_json(session, "session")
        changed = session_out != session_in or bool(session_buffers)
        reply.update(nbuf=len(buffers), session=changed)
        out = [payload, session_out if changed else b"", *buffers, *(session_buffers if changed else [])]
    except Exception as error:  # noqa: BLE001 - every failure of server code goes back to the caller
        reply.update(ok=False, nbuf=0, session=False)
        out = [json.dumps(error_to_data(error, locate_frame)).encode(), b""]
    if output.size or output.dropped:
        reply["output"] = output.text()
    return reply, out


def warm_up() -> None:
    """Run one trivial call through the whole call path, so its lazy first-use work is done once in the
    template, before any fork, instead of in every fresh worker."""
    route = {"kind": "call", "cid": 0, "name": "(warm-up)", "nbuf": 0, "caller": ["none", ""]}
    _run(route, [b"", b"[[1,2],{}]", b"{}"], ServerFunction("(warm-up)", lambda a, b: a + b))


def run_worker(channel_path: str, generation: int, persistent: bool, memory_limit: int, limit: int) -> None:
    """Body of a forked worker; never returns."""
    code = 0
    try:
        die_with_parent()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        random.seed()
        _limit_memory(memory_limit)
        channel = Channel(channel_path, limit)
        server.set_transport(WorkerTransport(channel))
        channel.hello("worker", generation)
        while True:
            route, parts = channel.receive()
            if route.get("kind") != "call":
                continue
            reply, out = _run(route, parts)
            channel.send(reply, *out)
            if not persistent:
                break
    except (EOFError, ConnectionError):
        code = 0
    except BaseException:  # noqa: BLE001 - a worker must never fall back into the template's loop
        traceback.print_exc()  # reaches the server's log through the inherited stderr
        code = 1
    finally:
        os._exit(code)
