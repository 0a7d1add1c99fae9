"""A worker: a child forked from the template that runs calls.

Fresh-state workers run one call and exit; persistent workers loop.  Prints go
to a bounded buffer that is sent back for the host's log, never to the caller.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import random
import resource
import signal
import threading
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

from greenroom import forks
from greenroom.api import CallContext, CallSession, User, current_call_session, server
from greenroom.codec import decode_arguments, decode_json, encode_json
from greenroom.errors import (
    AuthenticationFailed,
    NoServerFunctionError,
    PermissionDenied,
    SerializationError,
    WireError,
)
from greenroom.protocol import CallRequest, CallResult, Kind, Reply, Request, Role, error_payload
from greenroom.registry import ServerFunction, functions
from greenroom.wire import Part, parse_route

from .channel import Channel, die_with_parent
from .loader import locate_frame

__all__ = [
    "BoundedOutput",
    "WorkerOptions",
    "WorkerTransport",
    "call_context",
    "call_user",
    "check_size",
    "limit_memory",
    "run_function",
    "run_worker",
    "value_result",
    "warm_up",
]

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
    """Server-to-server calls and the session's first use: through the worker's own channel to the host.

    A server-to-server call made after the running call loaded its session lends it that session, and
    takes back the changes the inner call made: the two calls share one view.
    """

    #: Server code is on the other side of this transport: it may launch and kill tasks.
    runtime = True

    def __init__(self, channel: Channel, max_values: int) -> None:
        self.channel = channel
        self.max_values = max_values
        self.lock = threading.Lock()
        self.next_id = 0
        self.abandoned = False  # in a process this worker forked (see greenroom.forks)
        forks.track(self)

    def abandon(self) -> None:
        """In a process a server function forked: the channel stays the worker's (nothing is closed)."""
        self.abandoned = True

    def _exchange(self, request: Request) -> Reply:
        if self.abandoned:
            raise forks.inherited_error()
        with self.lock:
            self.next_id += 1
            request.request_id = self.next_id
            self.channel.send_parts(request.pack())
            while True:
                route, parts = self.channel.receive()
                if route["kind"] == Kind.REPLY and route.get("id") == self.next_id:
                    return Reply.unpack(route, parts)

    def request(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply:
        state = current_call_session()
        lent = state.value if state is not None else None
        request = Request(kind, 0, name, payload, buffers or [])
        if kind == Kind.CALL and lent is not None:
            request.session = encode_json(lent, "server.session")
        reply = self._exchange(request)
        if lent is not None and reply.session is not None:
            changed = decode_json(*reply.session, from_client=True, max_values=self.max_values, what="session")
            lent.clear()
            lent.update(changed)
        return reply

    def fetch_session(self) -> tuple[dict[str, Any], bytes]:
        """The running call's session, from the host, and its encoded form (to see later if it changed)."""
        reply = self._exchange(Request(Kind.SESSION, 0))
        if not reply.ok:
            reply.result()  # raises the host's error
        session = decode_json(
            reply.payload, reply.buffers, from_client=True, max_values=self.max_values, what="session"
        )
        if not isinstance(session, dict):
            raise WireError("the session must be a dict")
        return session, bytes(reply.payload)

    async def request_async(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply:
        if self.abandoned:
            raise forks.inherited_error()  # before the executor: a forked child's may have no threads
        return await asyncio.to_thread(self.request, kind, name, payload, buffers)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What a forked worker needs to know (the template's command line)."""

    socket: str
    generation: int
    persistent: bool
    memory_limit: int  # bytes beyond the template's size; -1: automatic; 0: none
    max_message_size: int
    max_values: int


#: The automatic memory limit: twice the template's address space, and never less than this.
AUTOMATIC_MEMORY_FLOOR = 1 << 30


def limit_memory(limit: int) -> None:
    if limit == 0:
        return
    with open("/proc/self/statm", encoding="ascii") as handle:
        used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    if limit < 0:
        limit = max(AUTOMATIC_MEMORY_FLOOR, 2 * used)
    resource.setrlimit(resource.RLIMIT_AS, (used + limit, used + limit))


def _check_user(entry: ServerFunction, user: User | None, client_type: str) -> None:
    """Run the function's ``require_user`` check, before its arguments are even decoded."""
    check = entry.policy.require_user
    if not callable(check) or client_type == "server":  # True is the host's to decide; nested calls pass
        return
    if user is None:
        raise AuthenticationFailed(f"{entry.name}() needs an authenticated user, and this caller has none")
    if not check(user):
        raise PermissionDenied(f"{entry.name}() is not open to {user.name!r}")


def check_size(what: str, payload: bytes, buffers: list[Part], limit: int) -> None:
    size = len(payload) + sum(len(buffer) for buffer in buffers)
    if size > limit:
        raise SerializationError(f"{what}: {size} bytes encoded, more than max_message_size ({limit} bytes)")


SessionFetcher = Callable[[], tuple[dict[str, Any], bytes]]


def _call_session(
    request: CallRequest, options: WorkerOptions, fetch: SessionFetcher | None
) -> tuple[CallSession, list[bytes]]:
    """The call's session state: lent with the request, or fetched from the host on first use; and a cell
    that holds its encoded form as it arrived (to tell later whether the call changed it)."""
    arrived: list[bytes] = []
    if request.session is not None:
        lent = decode_json(
            request.session, request.session_buffers, from_client=True, max_values=options.max_values, what="session"
        )
        if not isinstance(lent, dict):
            raise WireError("session must be a dict")
        arrived.append(bytes(request.session))
        return CallSession(lent), arrived

    def load() -> dict[str, Any]:
        if fetch is None:
            return {}
        session, encoded = fetch()
        arrived.append(encoded)
        return session

    return CallSession(load=load), arrived


def call_user(request: CallRequest) -> User | None:
    """The authenticated user a call (or a task) runs for, as the host sent it."""
    return User(request.user[0], frozenset(request.user[1])) if request.user is not None else None


def call_context(request: CallRequest, user: User | None) -> CallContext:
    return CallContext(request.caller[0], request.caller[1], request.name, str(request.call_id), user)


def run_function(function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call server code; a coroutine function runs to its end on a loop of its own."""
    value = function(*args, **kwargs)
    return asyncio.run(value) if inspect.iscoroutine(value) else value


def value_result(call_id: int, value: Any, options: WorkerOptions) -> CallResult:
    """A successful result carrying ``value`` (:class:`SerializationError` if it cannot be sent)."""
    payload, buffers = encode_json(value, "return value")
    check_size("return value", payload, buffers, options.max_message_size)
    return CallResult(call_id, True, payload, buffers)


def _run(
    request: CallRequest, options: WorkerOptions, fetch: SessionFetcher | None, entry: ServerFunction | None = None
) -> CallResult:
    entry = entry or functions.by_name.get(request.name)
    output = BoundedOutput()
    try:
        if entry is None:
            raise NoServerFunctionError(f"no server function named {request.name!r}")
        user = call_user(request)
        _check_user(entry, user, request.caller[0])
        args, kwargs = decode_arguments(request.payload, request.buffers, options.max_values)
        state, arrived = _call_session(request, options, fetch)
        with redirect_stdout(output), redirect_stderr(output), server.running_call(state, call_context(request, user)):
            value = run_function(entry.function, args, kwargs)
        result = value_result(request.call_id, value, options)
        if state.value is not None:  # the call used its session: send it back if it changed
            session_out, session_buffers = encode_json(state.value, "session")
            check_size("server.session", session_out, session_buffers, options.max_message_size)
            if session_buffers or not arrived or session_out != arrived[0]:
                result.session, result.session_buffers = session_out, session_buffers
    except Exception as error:  # noqa: BLE001 - every failure of server code goes back to the caller
        result = CallResult(request.call_id, False, *error_payload(error, locate_frame))
    if output.size or output.dropped:
        result.output = output.text()
    return result


def warm_up() -> None:
    """Run one trivial call through the whole call path, so its lazy first-use work is done once in the
    template, before any fork, instead of in every fresh worker."""
    parts = CallRequest(0, "(warm-up)", ("none", ""), b"[[1,2],{}]", []).pack()
    warm = ServerFunction("(warm-up)", lambda a, b: a + b)
    options = WorkerOptions("", 0, persistent=False, memory_limit=0, max_message_size=1 << 20, max_values=1 << 20)
    _run(CallRequest.unpack(parse_route(parts[0]), parts), options, None, warm).pack()


def run_worker(options: WorkerOptions) -> None:
    """Body of a forked worker; never returns."""
    code = 0
    try:
        die_with_parent()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        random.seed()
        limit_memory(options.memory_limit)
        if not options.persistent:
            warm_up()  # copy-on-write: the pages a call writes are copied now, while idle, not during the call
        channel = Channel(options.socket, options.max_message_size)
        transport = WorkerTransport(channel, options.max_values)
        server.set_transport(transport)
        channel.hello(Role.WORKER, options.generation)
        while True:
            route, parts = channel.receive()
            if route["kind"] != Kind.CALL:
                continue
            try:
                request = CallRequest.unpack(route, parts)
            except WireError as error:  # answered, and the worker (with its state) keeps running
                call_id = route.get("cid")
                channel.send_parts(
                    CallResult(call_id if isinstance(call_id, int) else 0, False, *error_payload(error)).pack()
                )
                continue
            channel.send_parts(_run(request, options, transport.fetch_session).pack())
            if not options.persistent:
                break
    except (EOFError, ConnectionError):
        code = 0
    except BaseException:  # noqa: BLE001 - a worker must never fall back into the template's loop
        traceback.print_exc()  # reaches the server's log through the inherited stderr
        code = 1
    finally:
        os._exit(code)
