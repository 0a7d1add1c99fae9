"""The ``server`` object: what notebooks, dashboards and server code call.

``server.call("name", ...)`` blocks until the result arrives and shows every
Form's loading indicator meanwhile; ``call_s`` and ``no_loading_indicator``
skip the indicator; ``call_async`` is awaitable.  In a worker the same calls
go to the host through the worker's own channel (server-to-server calls).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import errors
from .codec import encode_arguments
from .connection import Connection, Endpoint, find_endpoint
from .loading import loading
from .portable import portable_class
from .protocol import Kind, Reply
from .registry import Policy, functions, parse_rate_limit
from .wire import Part

__all__ = ["CallContext", "CallSession", "Server", "Transport", "connect", "current_call_session", "server"]

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
        self._local_session: dict[str, Any] = {}
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
                    endpoint, tried = find_endpoint()
                    if endpoint is None:
                        raise errors.ConnectionError(
                            "no greenroom host found; tried:\n  - " + "\n  - ".join(tried) + "\nRun this in a "
                            "kernel started by JupyterLab or `jupyter server` with greenroom installed, or call "
                            "greenroom.connect(url, token=...)"
                        )
                    self._transport = Connection(endpoint)
        return self._transport

    def set_transport(self, transport: Transport | None) -> None:
        """Use ``transport`` for every call (``None``: find the host again on the next call)."""
        with self._transport_lock:
            previous, self._transport = self._transport, transport
        if isinstance(previous, Connection) and previous is not transport:
            previous.close()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call server function ``name`` and return its result; the loading indicator shows meanwhile."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        payload, buffers = encode_arguments(args, kwargs)
        transport = self._get_transport()
        if _quiet.get():
            return transport.request(Kind.CALL, _check_name(name), payload, buffers).result()
        loading.enter()
        try:
            return transport.request(Kind.CALL, _check_name(name), payload, buffers).result()
        finally:
            loading.leave()

    def call_s(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call`, without the loading indicator."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        payload, buffers = encode_arguments(args, kwargs)
        return self._get_transport().request(Kind.CALL, _check_name(name), payload, buffers).result()

    async def call_async(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Await server function ``name`` from async code; the loading indicator shows meanwhile."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        payload, buffers = encode_arguments(args, kwargs)
        transport = self._get_transport()
        quiet = bool(_quiet.get())
        if not quiet:
            loading.enter()
        try:
            return (await transport.request_async(Kind.CALL, _check_name(name), payload, buffers)).result()
        finally:
            if not quiet:
                loading.leave()

    def request(self, kind: str) -> Any:
        """Ask the host for ``functions``, ``status`` or ``reload`` (used by the magics)."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        if kind not in (Kind.FUNCTIONS, Kind.STATUS, Kind.RELOAD):
            raise ValueError(f"server.request asks for functions, status or reload, not {kind!r}")
        return self._get_transport().request(kind).result()

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


server = Server()


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
