"""Every message greenroom sends, in one place: kinds, requests, replies, calls, results, load errors.

Two links speak it.  A client (kernel, script, browser page) and the host exchange
:class:`Request` and :class:`Reply`; the host and its runtime processes (template and
workers, over a unix socket) exchange :class:`CallRequest`, :class:`CallResult` and the
small control messages whose kinds are in :class:`Kind`.  Each message has one ``pack``
and one ``unpack``: no other module knows at which position a part sits.  Framing is
:mod:`greenroom.wire`'s; values are :mod:`greenroom.codec`'s; errors become data only
through :func:`error_payload`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from .codec import decode_json, encode_json
from .errors import WireError
from .remote_errors import FrameLocator, error_from_data, error_to_data
from .wire import MAX_PARTS, Part, Parts, Route, route_bytes

__all__ = [
    "RUNTIME_MAX_PARTS",
    "CallRequest",
    "CallResult",
    "Kind",
    "LoadError",
    "Reply",
    "Request",
    "Role",
    "SessionParts",
    "error_payload",
    "runtime_message_limit",
]


#: A session as it travels: its JSON payload and its Media buffers.
SessionParts: TypeAlias = tuple[Part, list[Part]]


class Kind:
    """The ``kind`` of every message (the route header's first field)."""

    # client <-> host
    CALL: Final = "call"
    CANCEL: Final = "cancel"
    FUNCTIONS: Final = "functions"
    STATUS: Final = "status"
    RELOAD: Final = "reload"
    REPLY: Final = "reply"
    #: A worker asks for its call's session on first use (answered by a REPLY carrying it as the value parts).
    SESSION: Final = "session"
    # host <-> runtime (a worker's nested call is a CALL answered by a REPLY, like a client's)
    HELLO: Final = "hello"
    LOADED: Final = "loaded"
    SPAWN: Final = "spawn"
    KILL: Final = "kill"
    EXIT: Final = "exit"
    RESULT: Final = "result"

    # background tasks: what server code asks the host (a client may only WATCH and list TASKS)
    LAUNCH: Final = "launch"
    TASK_GET: Final = "task_get"
    TASK_WAIT: Final = "task_wait"
    TASK_KILL: Final = "task_kill"
    TASKS: Final = "tasks"
    WATCH: Final = "watch"
    #: The host tells a client holding a task its news (pushed: no request id).
    TASK: Final = "task"
    # host <-> a task's process
    SPAWN_TASK: Final = "spawn_task"
    STATE: Final = "state"

    #: What a client may ask the host for.
    CLIENT_REQUESTS: Final = (CALL, CANCEL, FUNCTIONS, STATUS, RELOAD, WATCH, TASKS)
    #: What a worker (or a task) may ask about tasks.
    TASK_REQUESTS: Final = (LAUNCH, TASK_GET, TASK_WAIT, TASK_KILL, TASKS)


#: Parts a message between the host and its runtime may have: a call's parts and its session's.
RUNTIME_MAX_PARTS: Final = 2 * MAX_PARTS


def runtime_message_limit(max_message_size: int) -> int:
    """Bytes a message between the host and its runtime may have: a call (at most ``max_message_size``, as
    the client sent it) and the session the host adds (at most as much again)."""
    return 2 * max_message_size


class Role:
    """What a runtime process says it is in its hello."""

    TEMPLATE: Final = "template"
    WORKER: Final = "worker"
    TASK: Final = "task"
    ALL: Final = (TEMPLATE, WORKER, TASK)


def _hide_frames(filename: str) -> None:
    return None


def error_payload(error: BaseException, locate: FrameLocator = _hide_frames) -> tuple[bytes, list[Part]]:
    """The one builder of error data: ``error`` as the JSON a :class:`Reply` carries and the buffers of its
    arguments (arrays, Media); frames ``locate`` accepts, none by default, as for errors the host raises."""
    buffers: list[Part] = []
    data = error_to_data(error, locate, buffers)
    return json.dumps(data).encode(), buffers


# -- client <-> host --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """What a client asks: ``[route{kind, id, name?}, payload, *buffers]``.

    A worker's server-to-server call may lend the running call's session to the call it makes
    (``session``: its payload and buffers, after the call's own buffers; the route then says ``nbuf``).
    """

    kind: str
    request_id: int
    name: str | None = None
    payload: Part = b""
    buffers: list[Part] = field(default_factory=list)
    session: SessionParts | None = None

    def pack(self) -> Parts:
        route: Route = {"kind": self.kind, "id": self.request_id}
        if self.name is not None:
            route["name"] = self.name
        return _with_session(route, [self.payload, *self.buffers], self.session)

    @classmethod
    def unpack(cls, route: Route, parts: Parts) -> Request:
        """:class:`WireError` unless the id is an int; a name that is not a str reads as no name (so that the
        error about it can still answer that id)."""
        request_id = route.get("id")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            raise WireError("every request needs an integer 'id'")
        name = route.get("name")
        buffers, session = _split_session(route, parts)
        return cls(route["kind"], request_id, name if isinstance(name, str) else None, parts[1], buffers, session)


@dataclass(slots=True)
class Reply:
    """The host's answer to a :class:`Request`: ``[route{kind: reply, id, ok}, payload, *buffers]``.

    ``payload`` is the encoded value when ``ok``, else the error's data (:func:`error_payload`).
    """

    ok: bool
    payload: Part
    buffers: list[Part] = field(default_factory=list)
    #: A server-to-server call's answer to a worker that lent it its session: the session as it left it.
    session: SessionParts | None = None

    @classmethod
    def of_value(cls, value: Any) -> Reply:
        payload, buffers = encode_json(value, "reply")
        return cls(True, payload, buffers)

    @classmethod
    def of_error(cls, error: BaseException) -> Reply:
        """A reply carrying an error the host raised itself (no frames)."""
        payload, buffers = error_payload(error)
        return cls(False, payload, buffers)

    def pack(self, request_id: int | None) -> Parts:
        route: Route = {"kind": Kind.REPLY, "id": request_id, "ok": self.ok}
        return _with_session(route, [self.payload, *self.buffers], self.session)

    @classmethod
    def unpack(cls, route: Route, parts: Parts) -> Reply:
        buffers, session = _split_session(route, parts)
        return cls(bool(route.get("ok")), parts[1], buffers, session)

    def outcome(self) -> str:
        """``"ok"``, or the type name of the error it carries (for the call log; the payload stays unread
        beyond that name)."""
        if self.ok:
            return "ok"
        try:
            kind = json.loads(bytes(self.payload)).get("type")
        except (ValueError, AttributeError, RecursionError):
            return "malformed"
        return kind if isinstance(kind, str) else "error"

    def result(self) -> Any:
        """The value, or raise the error rebuilt from its data."""
        __tracebackhide__ = True  # IPython shows the caller's line, not this frame
        if self.ok:
            return decode_json(self.payload, self.buffers)
        try:
            data = json.loads(bytes(self.payload))
        except (ValueError, RecursionError):
            raise WireError("malformed error reply from the host") from None
        raise error_from_data(data, self.buffers)


# -- host <-> runtime -------------------------------------------------------------------------------------


@dataclass(slots=True)
class CallRequest:
    """A call the host hands a worker:
    ``[route{kind: call, cid, name, caller, nbuf, lent}, payload, session, *buffers, *session_buffers]``.

    ``session`` is None (an empty part) when the worker asks for the session on its first use (a
    :class:`Kind.SESSION` request, answered once the session's other calls let go of it); a server-to-server
    call gets its caller's session lent instead (``lent``)."""

    call_id: int
    name: str
    caller: tuple[str, str]
    payload: Part
    buffers: list[Part]
    session: Part | None = None
    session_buffers: list[Part] = field(default_factory=list)
    user: tuple[str, list[str]] | None = None  # the authenticated user's name and groups

    def pack(self) -> Parts:
        route = {
            "kind": Kind.CALL,
            "cid": self.call_id,
            "name": self.name,
            "caller": list(self.caller),
            "nbuf": len(self.buffers),
            "lent": self.session is not None,
            "user": None if self.user is None else [self.user[0], list(self.user[1])],
        }
        session = self.session if self.session is not None else b""
        return [route_bytes(route), self.payload, session, *self.buffers, *self.session_buffers]

    @classmethod
    def unpack(cls, route: Route, parts: Parts) -> CallRequest:
        nbuf = _buffer_count(route, parts, 3)
        caller = route.get("caller")
        client_type, client_id = caller if isinstance(caller, list) and len(caller) == 2 else ("none", "")
        user = route.get("user")
        named = isinstance(user, list) and len(user) == 2 and isinstance(user[1], list)
        user = user if named else None
        return cls(
            _int(route.get("cid")),
            str(route.get("name")),
            (str(client_type), str(client_id)),
            parts[1],
            list(parts[3 : 3 + nbuf]),
            parts[2] if route.get("lent") else None,
            list(parts[3 + nbuf :]),
            None if user is None else (str(user[0]), [str(group) for group in user[1]]),
        )


@dataclass(slots=True)
class CallResult:
    """A worker's answer: ``[route{kind: result, cid, ok, nbuf, session, output?}, payload, session,
    *buffers, *session_buffers]``; ``session`` is None when the call left the session unchanged."""

    call_id: int
    ok: bool
    payload: Part
    buffers: list[Part] = field(default_factory=list)
    session: Part | None = None
    session_buffers: list[Part] = field(default_factory=list)
    output: str = ""

    def pack(self) -> Parts:
        route: Route = {
            "kind": Kind.RESULT,
            "cid": self.call_id,
            "ok": self.ok,
            "nbuf": len(self.buffers),
            "session": self.session is not None,
        }
        if self.output:
            route["output"] = self.output
        session = self.session if self.session is not None else b""
        return [route_bytes(route), self.payload, session, *self.buffers, *self.session_buffers]

    @classmethod
    def unpack(cls, route: Route, parts: Parts) -> CallResult:
        nbuf = _buffer_count(route, parts, 3)
        changed = bool(route.get("session"))
        return cls(
            _int(route.get("cid")),
            bool(route.get("ok")),
            parts[1],
            list(parts[3 : 3 + nbuf]),
            parts[2] if changed else None,
            list(parts[3 + nbuf :]) if changed else [],
            str(route.get("output") or ""),
        )

    def reply(self) -> Reply:
        return Reply(self.ok, self.payload, self.buffers)


def _with_session(route: Route, parts: Parts, session: SessionParts | None) -> Parts:
    if session is None:
        return [route_bytes(route), *parts]
    route.update(session=True, nbuf=len(parts) - 1)
    return [route_bytes(route), *parts, session[0], *session[1]]


def _split_session(route: Route, parts: Parts) -> tuple[list[Part], SessionParts | None]:
    """The buffers after the payload, and the session lent after them, if the route says one is."""
    if not route.get("session"):
        return list(parts[2:]), None
    nbuf = _buffer_count(route, parts, 3)
    return list(parts[2 : 2 + nbuf]), (parts[2 + nbuf], list(parts[3 + nbuf :]))


def _buffer_count(route: Route, parts: Parts, fixed: int) -> int:
    nbuf = route.get("nbuf", 0)
    if not isinstance(nbuf, int) or isinstance(nbuf, bool) or not 0 <= nbuf <= len(parts) - fixed:
        raise WireError(f"'nbuf' must be an int between 0 and {len(parts) - fixed}")
    return nbuf


@dataclass(frozen=True, slots=True)
class LoadError:
    """Why a server notebook did not load: where (notebook, cell, line; cell 0 when the file could not be
    read or the whole load failed) and what (the exception's type name and message; never source)."""

    notebook: str
    cell: int
    line: int
    type: str
    message: str

    @classmethod
    def of(
        cls, notebook: str, error: BaseException, cell: int = 0, line: int = 0, message: str | None = None
    ) -> LoadError:
        return cls(notebook, cell, line, type(error).__name__, str(error) if message is None else message)

    @classmethod
    def from_data(cls, data: Any) -> LoadError:
        if not isinstance(data, dict):
            return cls("(unknown)", 0, 0, "WireError", "malformed load error")
        return cls(
            str(data.get("notebook")),
            _int(data.get("cell")),
            _int(data.get("line")),
            str(data.get("type")),
            str(data.get("message")),
        )

    def to_data(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "cell": self.cell,
            "line": self.line,
            "type": self.type,
            "message": self.message,
        }

    def describe(self) -> str:
        where = f"cell {self.cell}, line {self.line}" if self.cell else "reading the file"
        return f"{self.notebook}: {self.type} in {where}: {self.message}"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
