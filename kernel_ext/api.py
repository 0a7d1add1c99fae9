"""The ``server`` object: what notebooks, dashboards and server code call.

``server.call("name", ...)`` blocks until the result arrives and shows every
Form's loading indicator meanwhile; ``call_s`` and ``no_loading_indicator``
skip the indicator; ``call_async`` is awaitable.  In a worker the same calls
go to the host through the worker's own channel (server-to-server calls).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import errors
from .codec import encode_arguments
from .connection import Connection, Endpoint, find_endpoint
from .loading import loading
from .localconnection import LocalConnection
from .portable import portable_class
from .protocol import Kind, Reply
from .registry import Policy, functions, parse_rate_limit
from .tasks import Task, TaskState, arriving_through
from .wire import Part

__all__ = [
    "CallContext",
    "CallSession",
    "Server",
    "Transport",
    "connect",
    "current_call_session",
    "server",
]

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])
MAX_NAME_LENGTH = 200


class Transport(Protocol):
    """Something that sends a request to the host and returns the :class:`Reply`."""

    def request(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply: ...

    async def request_async(
        self, kind: str, name: str | None = None, payload: Part = b"", buffers: list[Part] | None = None
    ) -> Reply: ...


@dataclass(frozen=True)
class User:
    """An authenticated caller, as the deployment knows them: a JupyterHub user (name and groups), or the
    Jupyter server's user."""

    name: str
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CallContext:
    """Who is calling: set by the runtime while a server function runs.  ``user`` is None where the
    deployment knows no user (a published app's visitors, a process with a host's token)."""

    client_type: str = "none"
    client_id: str = ""
    function: str = ""
    call_id: str = ""
    user: User | None = None


class CallSession:
    """The running call's session: given (``value``), or fetched by ``load`` on first use."""

    __slots__ = ("load", "value")

    def __init__(self, value: dict[str, Any] | None = None, load: Callable[[], dict[str, Any]] | None = None) -> None:
        self.value = value
        self.load = load

    def get(self) -> dict[str, Any]:
        if self.value is None:
            self.value = self.load() if self.load is not None else {}
        return self.value


def current_call_session() -> CallSession | None:
    """The session state of the call running in this context (None outside calls)."""
    return _call_session.get()


_quiet: contextvars.ContextVar[int] = contextvars.ContextVar("greenroom_quiet", default=0)
#: The session dict and the caller of the server function running in this context (None outside calls).
_call_session: contextvars.ContextVar[CallSession | None] = contextvars.ContextVar("greenroom_session", default=None)
_call_context: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("greenroom_context", default=None)
#: The running task's state (None outside tasks).
_task_state: contextvars.ContextVar[TaskState | None] = contextvars.ContextVar("greenroom_task_state", default=None)


class _NoLoadingIndicator:
    """``with server.no_loading_indicator:`` - calls inside show no spinner."""

    def __enter__(self) -> None:
        _quiet.set(_quiet.get() + 1)

    def __exit__(self, *exc_info: object) -> None:
        _quiet.set(max(0, _quiet.get() - 1))


def _check_name(name: object) -> str:
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    if not isinstance(name, str):
        raise TypeError(f"server.call needs the function's name as a str, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"server function names are 1 to {MAX_NAME_LENGTH} characters long")
    return name


class Server:
    """The greenroom API for calling and declaring server functions."""

    SerializationError = errors.SerializationError
    NoServerFunctionError = errors.NoServerFunctionError
    RemoteError = errors.RemoteError
    TimeoutError = errors.TimeoutError
    ExecutionTerminatedError = errors.ExecutionTerminatedError
    ConnectionError = errors.ConnectionError
    GreenroomError = errors.GreenroomError
    AuthenticationFailed = errors.AuthenticationFailed
    PermissionDenied = errors.PermissionDenied
    RateLimitExceeded = errors.RateLimitExceeded

    portable_class = staticmethod(portable_class)

    def __init__(self) -> None:
        self._transport: Transport | None = None
        self._transport_lock = threading.Lock()
        self._endpoint: Endpoint | None = None  # where a forked child reconnects: its parent's host
        self._local_session: dict[str, Any] = {}
        self._local_task_state: dict[str, Any] = {}
        self.no_loading_indicator = _NoLoadingIndicator()

    # -- declaring ---------------------------------------------------------
    def callable(
        self,
        name_or_function: Any = None,
        *,
        timeout: float | None = None,
        require_user: bool | Callable[[User], bool] = False,
        rate_limit: str | None = None,
    ) -> Any:
        """Make a function callable by name: ``@server.callable``, ``@server.callable("name")``,
        ``@server.callable(timeout=5)``.  ``require_user=True`` refuses callers without an authenticated user
        (:class:`AuthenticationFailed`); a function of :class:`User` also refuses users it returns False for
        (:class:`PermissionDenied`).  ``rate_limit="5/minute"`` (``second``, ``minute``, ``hour``, ``day``)
        limits calls per user (per session without one): past it, :class:`RateLimitExceeded`.  A refused call
        runs none of the function's code.  The function itself is returned unchanged."""
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError("timeout must be a positive number of seconds")
        if not (isinstance(require_user, bool) or callable(require_user)):
            raise TypeError("require_user is True, False or a function of greenroom.User returning a bool")
        limit = parse_rate_limit(rate_limit) if rate_limit is not None else None
        policy = Policy(require_user, limit)

        def register(function: FunctionT, name: str | None = None) -> FunctionT:
            if not callable(function):
                raise TypeError("@server.callable decorates a function")
            functions.register(_check_name(name or function.__name__), function, timeout, policy)
            return function

        if callable(name_or_function):
            return register(name_or_function)
        if name_or_function is not None and not isinstance(name_or_function, str):
            raise TypeError("@server.callable takes a function, a name string, or keyword options")
        return lambda function: register(function, name_or_function)

    # -- calling -----------------------------------------------------------
    def _get_transport(self) -> Transport:
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        if self._transport is None:
            with self._transport_lock:
                if self._transport is None:
                    endpoint, tried = (self._endpoint, []) if self._endpoint is not None else find_endpoint()
                    if endpoint is None:
                        raise errors.ConnectionError(
                            "no greenroom host found; tried:\n  - " + "\n  - ".join(tried) + "\nRun this in a "
                            "kernel started by JupyterLab or `jupyter server` with greenroom installed, or call "
                            "greenroom.connect(url, token=...)"
                        )
                    if endpoint.socket_path and os.path.exists(endpoint.socket_path):
                        self._transport = LocalConnection(endpoint)  # the host's own machine: its local socket
                    else:
                        self._transport = Connection(endpoint)
        return self._transport

    def set_transport(self, transport: Transport | None) -> None:
        """Use ``transport`` for every call (``None``: find the host again on the next call)."""
        with self._transport_lock:
            previous, self._transport = self._transport, transport
            self._endpoint = None
        if isinstance(previous, Connection | LocalConnection) and previous is not transport:
            previous.close()

    def _after_fork_in_child(self) -> None:
        """A forked child's inherited connections are abandoned (see :mod:`greenroom.forks`); a kernel's
        child connects again, to the same host with the same credentials, on its first call.  A process a
        server function forks keeps its worker's transport, which refuses to be used: it has no credentials
        of its own.  The loading indicator is the parent's too: the child starts with none."""
        self._transport_lock = threading.Lock()  # another thread may have held it at the fork
        loading.forget_after_fork()
        inherited = self._transport
        if isinstance(inherited, LocalConnection | Connection):
            self._transport, self._endpoint = None, inherited.endpoint

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call server function ``name`` and return its result; the loading indicator shows meanwhile."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        payload, buffers = encode_arguments(args, kwargs)
        transport = self._get_transport()
        if _quiet.get():
            return _result(transport, transport.request(Kind.CALL, _check_name(name), payload, buffers))
        loading.enter()
        try:
            return _result(transport, transport.request(Kind.CALL, _check_name(name), payload, buffers))
        finally:
            loading.leave()

    def call_s(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, without the loading indicator."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        payload, buffers = encode_arguments(args, kwargs)
        transport = self._get_transport()
        return _result(transport, transport.request(Kind.CALL, _check_name(name), payload, buffers))

    async def call_async(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Await server function ``name`` from async code; the loading indicator shows meanwhile."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        payload, buffers = encode_arguments(args, kwargs)
        transport = self._get_transport()
        quiet = bool(_quiet.get())
        if not quiet:
            loading.enter()
        try:
            return _result(transport, await transport.request_async(Kind.CALL, _check_name(name), payload, buffers))
        finally:
            if not quiet:
                loading.leave()

    def request(self, kind: str) -> Any:
        """Ask the host for ``functions``, ``status``, ``reload`` or ``tasks`` (used by the magics)."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        if kind not in (Kind.FUNCTIONS, Kind.STATUS, Kind.RELOAD, Kind.TASKS):
            raise ValueError(f"server.request asks for functions, status, reload or tasks, not {kind!r}")
        transport = self._get_transport()
        return _result(transport, transport.request(kind))

    # -- background tasks ----------------------------------------------------
    def background_task(self, name_or_function: Any = None) -> Any:
        """Declare a background task: ``@server.background_task`` or ``@server.background_task("name")``.
        Server code starts it with :meth:`launch_background_task`; clients cannot call it directly.  The
        function itself is returned unchanged."""

        def register(function: FunctionT, name: str | None = None) -> FunctionT:
            if not callable(function):
                raise TypeError("@server.background_task decorates a function")
            functions.register_task(_check_name(name or function.__name__), function)
            return function

        if callable(name_or_function):
            return register(name_or_function)
        if name_or_function is not None and not isinstance(name_or_function, str):
            raise TypeError("@server.background_task takes a function or a name string")
        return lambda function: register(function, name_or_function)

    def _server_side(self, what: str) -> Transport:
        __tracebackhide__ = True
        transport = self._transport
        if transport is None or not getattr(transport, "runtime", False):
            raise PermissionError(
                f"{what} is for server code: call a server function that does it (clients start tasks through "
                "a server function that launches one and returns it)"
            )
        return transport

    def launch_background_task(self, name: str, *args: Any, **kwargs: Any) -> Task:
        """Start background task ``name`` with these arguments (server code only) and return its
        :class:`Task` at once; the task runs in its own process, outside the call timeout."""
        __tracebackhide__ = True
        from .taskmessages import TaskUpdate

        transport = self._server_side("server.launch_background_task")
        payload, buffers = encode_arguments(args, kwargs)
        news = TaskUpdate.from_reply(transport.request(Kind.LAUNCH, _check_name(name), payload, buffers))
        return Task(news.task_id, news.name, transport)

    def get_background_task(self, task_id: str) -> Task:
        """The task with this id (server code only); :class:`LookupError` if the host knows none."""
        __tracebackhide__ = True
        from .taskmessages import TaskUpdate

        transport = self._server_side("server.get_background_task")
        if not isinstance(task_id, str):
            raise TypeError(f"a task id is a str, not {type(task_id).__name__}")
        news = TaskUpdate.from_reply(transport.request(Kind.TASK_GET, task_id))
        return Task(news.task_id, news.name, transport)

    def list_background_tasks(self) -> list[Task]:
        """Every task the host knows, newest first (server code only)."""
        __tracebackhide__ = True
        transport = self._server_side("server.list_background_tasks")
        listed = transport.request(Kind.TASKS).result()
        return [Task(str(item["id"]), str(item["name"]), transport) for item in listed]

    @property
    def task_state(self) -> dict[str, Any]:
        """Inside a background task, the dict whose changes its holders see live (``progress``: 0..1 and
        ``message`` drive ``TaskProgress``); elsewhere a local dict."""
        state = _task_state.get()
        return state if state is not None else self._local_task_state

    @contextmanager
    def running_task(self, state: TaskState) -> Iterator[None]:
        """Set :attr:`task_state` for one task, in this context only (used by the runtime)."""
        token = _task_state.set(state)
        try:
            yield
        finally:
            _task_state.reset(token)

    # -- inside a call -----------------------------------------------------
    @property
    def session(self) -> dict[str, Any]:
        """A dict per calling session, kept by the host across calls (a local dict outside calls).  A call's
        first use of it waits until no other call of the same session holds it, so concurrent calls never
        lose each other's changes; calls that never use it run concurrently."""
        state = _call_session.get()
        return state.get() if state is not None else self._local_session

    @property
    def context(self) -> CallContext:
        """Who is calling the running server function."""
        return _call_context.get() or CallContext()

    @contextmanager
    def running_call(self, session: dict[str, Any] | CallSession, context: CallContext) -> Iterator[None]:
        """Set :attr:`session` and :attr:`context` for one call, in this context only (used by the runtime)."""
        state = session if isinstance(session, CallSession) else CallSession(session)
        session_token = _call_session.set(state)
        context_token = _call_context.set(context)
        try:
            yield
        finally:
            _call_context.reset(context_token)
            _call_session.reset(session_token)


def _result(transport: Transport, reply: Reply) -> Any:
    """The reply's value (tasks in it belong to ``transport``), or raise its error."""
    __tracebackhide__ = True  # IPython shows the caller's line, not this frame
    with arriving_through(transport):
        return reply.result()


server = Server()
os.register_at_fork(after_in_child=server._after_fork_in_child)


def connect(url: str, token: str | None = None) -> Connection:
    """Connect this process to the Jupyter server at ``url`` (authenticating with its token)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"greenroom.connect needs the server's http(s) URL, not {url!r}")
    headers = {"Authorization": f"token {token}"} if token else {}
    connection = Connection(Endpoint(url, headers, "greenroom.connect()"))
    try:
        connection._ensure_open()  # fail now, with the reason, rather than at the first call
    except BaseException:
        connection.close()
        raise
    server.set_transport(connection)
    return connection
