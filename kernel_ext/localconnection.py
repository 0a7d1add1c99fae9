"""The connection of a kernel on the host's own machine: the host's local call socket, no thread in between.

Same requests and replies as :mod:`.connection`, framed with :func:`greenroom.wire.pack` one after another
on a unix stream socket (see ``greenroom.server_ext.localcalls``).  A synchronous call is sent and read by
the calling thread itself: no event loop thread, no handoff.  When several threads call at once, one of
them reads (the leader) and hands each reply to the thread that waits for it; the leader's own reply ends
its turn and another waiting thread takes over (leader/follower).  Replies that no thread waits for (an
async call's, a watched task's news) are read by a helper thread, started only while there are any.

Invariant: only the leader reads, a whole frame at a time, so the stream never loses its framing: an
interrupt (KeyboardInterrupt) that lands inside a frame is held until the frame is read.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
import socket
import threading
from dataclasses import dataclass, field

from . import forks
from .connection import CLIENT_MAX_MESSAGE, CONNECT_TIMEOUT, Endpoint
from .errors import ConnectionError, WireError
from .logs import log
from .protocol import Kind, Reply, Request
from .taskmessages import TaskUpdate
from .watches import TaskWatcher, TaskWatches
from .wire import Part, Parts, pack, parse_route, read_frame, route_bytes

__all__ = ["LocalConnection"]


@dataclass(eq=False)
class _Waiting:
    """A request waiting for its reply: a thread (``reply`` is set, the condition notified) or a future."""

    future: concurrent.futures.Future[Reply] | None = None
    reply: Reply | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class LocalConnection:
    """A connection to the host over its local call socket; safe to use from any thread."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._open_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._waiting: dict[int, _Waiting] = {}
        self._reading = False  # a thread is reading (the leader)
        self._helper: threading.Thread | None = None
        self._passive = 0  # futures waiting with no thread behind them
        self._watches = TaskWatches()
        self._news: collections.deque[TaskUpdate] = collections.deque()  # told once no thread reads
        #: True in a forked child: the connection is the parent's (see :mod:`greenroom.forks`).
        self.abandoned = False
        forks.track(self)

    # -- opening -------------------------------------------------------------
    def _ensure_open(self) -> socket.socket:
        sock = self._sock
        if sock is not None:
            return sock
        if self.abandoned:
            raise forks.inherited_error()
        with self._open_lock:
            if self._sock is None:
                self._sock = self._open()
            return self._sock

    def _open(self) -> socket.socket:
        where = f"the greenroom host's local socket {self.endpoint.socket_path} ({self.endpoint.source})"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(self.endpoint.socket_path)
            hello = {"kind": "hello", "headers": self.endpoint.headers}
            sock.sendall(pack([route_bytes(hello), b""]))
            route = parse_route(self._read_parts(sock)[0])
            sock.settimeout(None)
        except (OSError, EOFError, WireError) as error:
            sock.close()
            raise ConnectionError(f"cannot reach {where}: {error or 'no answer'}") from None
        if route["kind"] != "welcome":
            sock.close()
            message = route.get("message") if isinstance(route.get("message"), str) else ""
            raise ConnectionError(f"{where} refused the connection: {message or json.dumps(route)[:200]}")
        return sock

    # -- reading (the leader only) ---------------------------------------------
    def _read_parts(self, sock: socket.socket) -> Parts:
        """Read one whole frame; an interrupt inside it is raised once the frame is complete."""
        reader = read_frame(CLIENT_MAX_MESSAGE)
        size = next(reader)
        interrupted: BaseException | None = None
        started = False
        while True:
            chunk = bytearray(size)
            view, received = memoryview(chunk), 0
            while received < size:
                try:
                    count = sock.recv_into(view[received:])
                except KeyboardInterrupt as interrupt:
                    if not started:
                        raise  # nothing of the frame read yet: the stream is still whole
                    interrupted = interrupt
                    continue
                if count == 0:
                    raise EOFError("the host closed the connection")
                received += count
                started = True
            try:
                size = reader.send(chunk)
            except StopIteration as done:
                if interrupted is not None:
                    self._dispatch(done.value)
                    raise interrupted from None
                return done.value  # type: ignore[no-any-return]

    def _lead(self, sock: socket.socket) -> None:
        """Read one message as the leader and hand it to whoever waits for it."""
        try:
            parts = self._read_parts(sock)
        except KeyboardInterrupt:
            raise
        except (OSError, EOFError, WireError) as error:
            self._lost(f"the connection failed: {error}")
            return
        self._dispatch(parts)

    def _dispatch(self, parts: Parts) -> None:
        try:
            route = parse_route(parts[0])
            if route["kind"] == Kind.TASK:
                self._news.append(TaskUpdate.from_parts(parts[1:]))  # told after the reader's turn
                return
            request_id = route.get("id")
            if route["kind"] != Kind.REPLY or not isinstance(request_id, int) or isinstance(request_id, bool):
                raise WireError(f"expected a reply with an integer id, got kind {route['kind']!r}, id {request_id!r}")
            reply = Reply.unpack(route, parts)
        except WireError as error:
            log.warning("malformed reply from the host at %s, closing the connection: %s", self.endpoint.url, error)
            self._lost(f"the host sent a malformed reply ({error})")
            return
        with self._state:
            waiting = self._waiting.pop(request_id, None)
            if waiting is None:
                return
            waiting.reply, waiting.done = reply, True
            if waiting.future is not None:
                self._passive -= 1
            else:
                self._state.notify_all()
        if waiting.future is not None and not waiting.future.done():
            waiting.future.set_result(reply)

    def _lost(self, reason: str) -> None:
        """The connection is unusable: every waiting request and watch ends with ``reason``."""
        with self._state:
            sock, self._sock = self._sock, None
            waiting, self._waiting = self._waiting, {}
            self._passive = 0
            self._state.notify_all()
        if sock is not None:
            sock.close()
        error = ConnectionError(f"lost the greenroom host at {self.endpoint.url}: {reason}")
        for entry in waiting.values():
            entry.error, entry.done = error, True
            if entry.future is not None and not entry.future.done():
                entry.future.set_exception(error)
        self._watches.end_all(error)

    # -- requests --------------------------------------------------------------
    def _send(self, request: Request, waiting: _Waiting) -> socket.socket:
        sock = self._ensure_open()
        with self._state:
            self._waiting[request.request_id] = waiting
            if waiting.future is not None:
                self._passive += 1
        try:
            with self._send_lock:
                sock.sendall(pack(request.pack()))
        except OSError as error:
            self._lost(f"a request could not be sent: {error}")
        return sock

    def request(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply:
        """Send a request and wait for the reply, reading it in this thread when no other thread reads."""
        request = Request(kind, next(self._ids), name, payload, buffers or [])
        waiting = _Waiting()
        sock = self._send(request, waiting)
        try:
            while True:
                with self._state:
                    while not waiting.done and self._reading:
                        self._state.wait()
                    if waiting.done:
                        break
                    self._reading = True
                try:
                    self._lead(sock)
                finally:
                    self._end_turn()
        except KeyboardInterrupt:
            with self._state:
                self._waiting.pop(request.request_id, None)
            self.cancel(request.request_id)
            raise
        if waiting.error is not None:
            raise waiting.error
        assert waiting.reply is not None
        return waiting.reply

    def submit(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> tuple[int, concurrent.futures.Future[Reply]]:
        """Send a request; its reply arrives in a future (read by the helper thread, if no caller reads)."""
        request = Request(kind, next(self._ids), name, payload, buffers or [])
        future: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        self._send(request, _Waiting(future=future))
        self._start_helper()
        return request.request_id, future

    async def request_async(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply:
        """Await the reply to a request from any event loop (no thread blocks on it)."""
        if self.abandoned:
            raise forks.inherited_error()  # before the executor: a forked child's may have no threads
        loop = asyncio.get_running_loop()
        _, future = await loop.run_in_executor(None, self.submit, kind, name, payload, buffers)
        return await asyncio.wrap_future(future)

    def cancel(self, request_id: int) -> None:
        """Ask the host to stop a call (sent when the caller is interrupted)."""
        sock = self._sock
        if sock is not None:
            try:
                with self._send_lock:
                    sock.sendall(pack(Request(Kind.CANCEL, request_id).pack()))
            except OSError:
                pass

    # -- the helper: reads when replies or news are due and no caller reads -------
    def _start_helper(self) -> None:
        with self._state:
            if self._helper is not None and self._helper.is_alive():
                return
            self._helper = threading.Thread(target=self._help, name="greenroom-local-reader", daemon=True)
            self._helper.start()

    def _help(self) -> None:
        while True:
            with self._state:
                while self._reading and (self._passive or self._watches.active):
                    self._state.wait()
                sock = self._sock
                if sock is None or not (self._passive or self._watches.active):
                    self._helper = None
                    return
                self._reading = True
            try:
                self._lead(sock)
            finally:
                self._end_turn()

    def _end_turn(self) -> None:
        """The leader's turn ends: another thread may read; then the news it read is told (its watchers'
        callbacks may call the host again: they must not run while this thread holds the reading turn)."""
        with self._state:
            self._reading = False
            self._state.notify_all()
        while self._news:
            try:
                update = self._news.popleft()
            except IndexError:
                break
            self._watches.news(update)

    # -- tasks -----------------------------------------------------------------
    def watch(self, task_id: str, on_news: TaskWatcher) -> None:
        """Have the host push news of task ``task_id`` here (see :meth:`Connection.watch`)."""
        self._watches.watch(task_id, on_news, self.submit)

    def abandon(self) -> None:
        """In a forked child: let go of the parent's socket (only this process's copy of the descriptor
        closes; the parent's connection goes on untouched) and refuse every later use."""
        self.abandoned = True
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Close the connection; calls still waiting get :class:`ConnectionError`."""
        if self.abandoned:
            return  # its waiting calls and watches are the parent's
        self._lost(f"the connection to {self.endpoint.url} was closed")
