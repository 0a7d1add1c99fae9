"""The connection from any Python process (a kernel, a script, a worker) to the host.

One WebSocket per process, multiplexed by call id, driven by a private asyncio
loop in a daemon thread; callers in any thread (or an async cell) wait on a
future.  The endpoint comes from the kernel's environment (``GREENROOM_URL``,
``GREENROOM_KERNEL_ID``, ``GREENROOM_TOKEN``), from :func:`connect`, or from
the runtime file a running host writes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import itertools
import json
import os
import threading
from dataclasses import dataclass, field

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from . import forks
from .errors import ConnectionError, GreenroomError, WireError
from .logs import log
from .protocol import Kind, Reply, Request
from .taskmessages import TaskUpdate
from .watches import TaskWatcher, TaskWatches
from .wire import Part, Parts, pack, parse_route, unpack

__all__ = ["Connection", "Endpoint", "find_endpoint", "runtime_file_pattern"]

#: Largest message a client accepts from the host.
CLIENT_MAX_MESSAGE = 1 << 30
#: The WebSocket close code of a peer that refused a message for its size.
MESSAGE_TOO_BIG = 1009
CONNECT_TIMEOUT = 10.0
WS_PATH = "greenroom/api/ws"


@dataclass
class Endpoint:
    """Where a host is and how to authenticate to it."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    source: str = ""

    #: The host's local call socket (a kernel the host launched on its own machine), else empty.
    socket_path: str = ""

    def ws_url(self) -> str:
        base = self.url if self.url.endswith("/") else self.url + "/"
        if base.startswith("https://"):
            return "wss://" + base[len("https://") :] + WS_PATH
        if base.startswith("http://"):
            return "ws://" + base[len("http://") :] + WS_PATH
        raise ConnectionError(f"greenroom URL must start with http:// or https://, not {self.url!r}")


def refusal_reason(body: bytes, limit: int = 300) -> str:
    """The reason a host gave for refusing a connection (its ``{"message": ...}`` body), shortened and
    printable; empty when the body is anything else (a proxy's page, say)."""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(message, str):
        return ""
    message = "".join(char if char.isprintable() else " " for char in message).strip()
    return message if len(message) <= limit else message[: limit - 3] + "..."


def runtime_file_pattern() -> str:
    """Glob of the runtime files running hosts write."""
    from jupyter_core.paths import jupyter_runtime_dir

    return os.path.join(jupyter_runtime_dir(), "greenroom-*.json")


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 1:
        return False
    try:
        os.kill(pid, 0)  # signal 0: existence check only, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_endpoint() -> tuple[Endpoint | None, list[str]]:
    """The endpoint to use, and what was tried (for the error message)."""
    tried: list[str] = []
    url = os.environ.get("GREENROOM_URL")
    if url:
        token, hub_token = os.environ.get("GREENROOM_TOKEN", ""), os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if hub_token and not token:  # a hub user's kernel calling the hub's greenroom service
            headers = {"Authorization": f"token {hub_token}"}
            return Endpoint(url, headers, "GREENROOM_URL in the environment, with the JupyterHub token"), tried
        headers = {"X-Greenroom-Kernel-Id": os.environ.get("GREENROOM_KERNEL_ID", ""), "X-Greenroom-Token": token}
        socket_path = os.environ.get("GREENROOM_SOCKET", "")
        return Endpoint(url, headers, "GREENROOM_URL in the environment", socket_path), tried
    tried.append("GREENROOM_URL is not set (this process was not launched by a Jupyter server with greenroom)")
    pattern = runtime_file_pattern()
    candidates = sorted(glob.glob(pattern), key=os.path.getmtime, reverse=True)
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as handle:
                info = json.load(handle)
        except (OSError, ValueError):
            tried.append(f"{path}: unreadable")
            continue
        if not isinstance(info, dict) or not _pid_alive(info.get("pid")):
            tried.append(f"{path}: stale (its server is not running)")
            continue
        headers = {"X-Greenroom-Token": str(info.get("token", "")), "X-Greenroom-Kernel-Id": ""}
        found = info.get("socket")
        socket_path = found if isinstance(found, str) else ""
        return Endpoint(str(info.get("url")), headers, f"runtime file {path}", socket_path), tried
    if not candidates:
        tried.append(f"no runtime file matches {pattern} (no greenroom host runs as this user)")
    return None, tried


class Connection:
    """A multiplexed connection to one host; safe to use from any thread."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._ids = itertools.count(1)
        self._pending: dict[int, concurrent.futures.Future[Reply]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="greenroom-connection", daemon=True)
        self._thread.start()
        self._ws: WebSocketClientConnection | None = None
        self._watches = TaskWatches()
        #: True in a forked child: the connection is the parent's (see :mod:`greenroom.forks`).
        self.abandoned = False
        forks.track(self)

    # -- lifecycle ---------------------------------------------------------
    def _ensure_open(self) -> None:
        if self.abandoned:
            raise forks.inherited_error()
        if self._ws is not None:
            return
        with self._lock:
            if self._ws is not None:
                return
            if threading.current_thread() is self._thread:
                raise GreenroomError("greenroom calls cannot be made from the connection's own thread")
            future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
            try:
                self._ws = future.result(CONNECT_TIMEOUT + 1)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise ConnectionError(
                    f"greenroom host at {self.endpoint.url} ({self.endpoint.source}) did not answer "
                    f"within {CONNECT_TIMEOUT:.0f} s"
                ) from None

    async def _open(self) -> WebSocketClientConnection:
        request = HTTPRequest(
            self.endpoint.ws_url(),
            headers=self.endpoint.headers,
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=CONNECT_TIMEOUT,
        )
        try:
            ws = await websocket_connect(request, max_message_size=CLIENT_MAX_MESSAGE)
        except HTTPClientError as error:
            hint = " (check the token)" if error.code in (401, 403) else ""
            reason = refusal_reason(error.response.body if error.response is not None else b"")
            raise ConnectionError(
                f"greenroom host at {self.endpoint.url} ({self.endpoint.source}) refused the connection: "
                f"HTTP {error.code}{hint}{': ' + reason if reason else ''}"
            ) from None
        except OSError as error:
            raise ConnectionError(
                f"cannot reach a greenroom host at {self.endpoint.url} ({self.endpoint.source}): {error}"
            ) from None
        # tornado's WebSocket client reads through a 100 MB buffer, which a whole frame must fit in; its
        # IOStream's public max_buffer_size is the one place to say that replies may be up to our limit.
        stream = getattr(ws.protocol, "stream", None)
        if stream is not None:
            stream.max_buffer_size = max(stream.max_buffer_size, CLIENT_MAX_MESSAGE + (1 << 20))
            stream.set_nodelay(True)  # concurrent calls' small requests must not wait for each other's ACKs
        self._loop.create_task(self._read(ws))
        return ws

    async def _read(self, ws: WebSocketClientConnection) -> None:
        reason = "the host closed the connection"
        try:
            while True:
                message = await ws.read_message()
                if message is None:
                    break
                try:
                    parts = self._parts(message)
                    if parse_route(parts[0])["kind"] == Kind.TASK:
                        self._watches.news(TaskUpdate.from_parts(parts[1:]))
                        continue
                    request_id, reply = self._parse_reply(parts)
                except WireError as error:
                    # Which call it answered is unknown: end the connection so that no caller waits forever.
                    log.warning(
                        "malformed reply from the host at %s, closing the connection: %s", self.endpoint.url, error
                    )
                    reason = f"the host sent a malformed reply ({error})"
                    ws.close()
                    break
                future = self._pending.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except Exception as error:  # noqa: BLE001 - any failure ends the connection
            reason = f"the connection failed: {error}"
        finally:
            if ws.close_code == MESSAGE_TOO_BIG:
                reason = "a message was larger than the host accepts (GreenroomApp.max_message_size)"
            if self._ws is ws:
                self._ws = None
            pending, self._pending = self._pending, {}
            lost = f"lost the greenroom host at {self.endpoint.url}: {reason}"
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(lost))
            self._watches.end_all(ConnectionError(lost))

    @staticmethod
    def _parts(message: str | bytes) -> Parts:
        if isinstance(message, str):
            raise WireError("a text message where replies are binary")
        return unpack(message, CLIENT_MAX_MESSAGE)

    @staticmethod
    def _parse_reply(parts: Parts) -> tuple[int, Reply]:
        route = parse_route(parts[0])
        request_id = route.get("id")
        if route["kind"] != Kind.REPLY or not isinstance(request_id, int) or isinstance(request_id, bool):
            raise WireError(f"expected a reply with an integer id, got kind {route['kind']!r}, id {request_id!r}")
        return request_id, Reply.unpack(route, parts)

    # -- tasks ---------------------------------------------------------------
    def watch(self, task_id: str, on_news: TaskWatcher) -> None:
        """Have the host push news of task ``task_id`` to this connection; ``on_news`` (held weakly when it
        is a bound method) gets each :class:`TaskUpdate`, on this connection's thread, and last the error
        that ends the watch, if one does."""
        self._watches.watch(task_id, on_news, self.submit)

    def abandon(self) -> None:
        """In a forked child: refuse every later use.  Its thread did not survive the fork, and its socket
        stays the parent's (nothing is closed: the parent's connection goes on untouched)."""
        self.abandoned = True

    def close(self) -> None:
        """Close the connection and stop its thread; calls still waiting get :class:`ConnectionError`."""
        if self.abandoned:
            return  # the thread and the socket are the parent's
        ws, self._ws = self._ws, None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the connection to {self.endpoint.url} was closed"))
        self._watches.end_all(ConnectionError(f"the connection to {self.endpoint.url} was closed"))
        if ws is not None:
            self._loop.call_soon_threadsafe(ws.close)
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(5)
            if not self._thread.is_alive():
                self._loop.close()

    # -- requests ----------------------------------------------------------
    def submit(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> tuple[int, concurrent.futures.Future[Reply]]:
        """Send a request; returns its id and a future of the reply."""
        self._ensure_open()
        request = Request(kind, next(self._ids), name, payload, buffers or [])
        future: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        self._pending[request.request_id] = future
        self._loop.call_soon_threadsafe(self._write, pack(request.pack()), request.request_id)
        return request.request_id, future

    def _write(self, data: bytes, request_id: int) -> None:
        ws = self._ws
        try:
            if ws is None:
                raise ConnectionError(f"not connected to the greenroom host at {self.endpoint.url}")
            ws.write_message(data, binary=True)
        except Exception as error:  # noqa: BLE001 - reported to the caller
            future = self._pending.pop(request_id, None)
            if future is not None and not future.done():
                failure = error if isinstance(error, GreenroomError) else ConnectionError(str(error))
                future.set_exception(failure)

    def cancel(self, request_id: int) -> None:
        """Ask the host to stop a call (sent when the caller is interrupted)."""
        if self._ws is not None and not self.abandoned:
            data = pack(Request(Kind.CANCEL, request_id).pack())
            self._loop.call_soon_threadsafe(self._write, data, -1)

    def request(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply:
        """Send a request and wait for the reply (interruptible)."""
        request_id, future = self.submit(kind, name, payload, buffers)
        try:
            return future.result()
        except KeyboardInterrupt:
            self._pending.pop(request_id, None)
            self.cancel(request_id)
            raise

    async def request_async(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply:
        """Await the reply to a request from any event loop."""
        if self.abandoned:
            raise forks.inherited_error()  # before the executor: a forked child's may have no threads
        loop = asyncio.get_running_loop()
        _, future = await loop.run_in_executor(None, self.submit, kind, name, payload, buffers)
        return await asyncio.wrap_future(future)
