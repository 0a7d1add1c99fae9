"""Background tasks as their holders see them: :class:`Task`, and :class:`TaskState` (``server.task_state``).

A :class:`Task` is a value: it crosses the wire as its id and name.  Where it arrives decides how it
learns about its task.  In server code (a worker, or another task) each question goes to the host.  In a
client the Task watches: the host pushes every change of the task to the connection the Task arrived
on, and the Task answers from the last news, calling its ``on_change`` callbacks (on the connection's
thread) as news comes.  Only server code may kill a task.

Invariant: a Task never polls; a client's Task holds no more than the host's last update.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

from . import errors, forks
from .logs import log

if TYPE_CHECKING:
    from .taskmessages import TaskUpdate

__all__ = ["Task", "TaskState", "arriving_through", "task_from_wire"]

#: How long a client's Task waits for its first news before saying the host did not answer (seconds).
FIRST_NEWS_TIMEOUT = 30.0

#: The transport a value being decoded arrived through (set around decoding a reply).
_arriving: contextvars.ContextVar[Any] = contextvars.ContextVar("greenroom_task_source", default=None)


@contextmanager
def arriving_through(transport: Any) -> Iterator[None]:
    """Tasks decoded inside this block belong to ``transport`` (a client's connection, or a worker's)."""
    token = _arriving.set(transport)
    try:
        yield
    finally:
        _arriving.reset(token)


def task_from_wire(task_id: str, name: str) -> Task:
    """The :class:`Task` a decoded ``$task`` value stands for, tied to the transport it arrived through."""
    source = _arriving.get()
    if source is None:
        from .api import server

        source = server._transport
    return Task(task_id, name, source)


class Task:
    """A background task: launched by server code with ``server.launch_background_task``, returned to
    clients and passed back to server functions as a value (the same task wherever it goes)."""

    def __init__(self, task_id: str, name: str = "", source: Any = None) -> None:
        self._id = task_id
        self._name = name
        self._source = source
        self._watching = source is not None and hasattr(source, "watch")
        self._news: TaskUpdate | None = None
        self._settled: TaskUpdate | None = None  # the last news every on_change callback has seen
        self._lost: BaseException | None = None
        self._changed = threading.Condition()
        self._callbacks: list[Callable[[Task], Any]] = []
        if self._watching:
            source.watch(task_id, self._receive)

    def __repr__(self) -> str:
        status = self._news.status if self._news is not None else "?"
        return f"<greenroom Task {self._name!r} {self._id} ({status})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    # -- news ----------------------------------------------------------------
    def _receive(self, news: TaskUpdate | BaseException) -> None:
        """The connection's thread brings news (or the error that ends the watch)."""
        with self._changed:
            if isinstance(news, BaseException):
                self._lost = news
            else:
                self._news = news
                self._name = news.name or self._name
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - a callback's failure is its own: logged, the others still run
                log.exception("a Task.on_change callback failed")
        with self._changed:  # waiters wake once every callback has seen the news (a progress widget is current)
            self._settled = self._news
            self._changed.notify_all()

    def _latest(self) -> TaskUpdate:
        __tracebackhide__ = True
        if getattr(self._source, "abandoned", False):
            raise forks.inherited_error()  # a forked child: the news goes to the parent (and its lock may be held)
        if self._source is None:
            raise errors.GreenroomError(
                "this Task is not connected to a greenroom host (it was decoded outside a call)"
            )
        if not self._watching:
            from .protocol import Kind
            from .taskmessages import TaskUpdate

            return TaskUpdate.from_reply(self._source.request(Kind.TASK_GET, self._id))
        with self._changed:
            if self._news is None and self._lost is None:
                self._changed.wait_for(lambda: self._news is not None or self._lost is not None, FIRST_NEWS_TIMEOUT)
            if self._news is None:
                raise self._lost or errors.ConnectionError(
                    f"the greenroom host sent no news of task {self._id} within {FIRST_NEWS_TIMEOUT:g} s"
                )
            return self._news

    def on_change(self, callback: Callable[[Task], Any], remove: bool = False) -> None:
        """Call ``callback(task)`` each time the host pushes news of this task (in a client; on the
        connection's thread).  ``remove=True`` stops calling it."""
        with self._changed:
            if remove:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
            elif callback not in self._callbacks:
                self._callbacks.append(callback)

    # -- the contract ----------------------------------------------------------
    def get_id(self) -> str:
        return self._id

    def get_task_name(self) -> str:
        return self._name or self._latest().name

    def get_start_time(self) -> datetime.datetime | None:
        """When the task's process started (UTC); None while it waits for a slot."""
        started = self._latest().started
        return None if started is None else datetime.datetime.fromtimestamp(started, datetime.UTC)

    def get_state(self) -> dict[str, Any]:
        """The task's ``server.task_state`` as last sent."""
        from .codec import decode_json

        news = self._latest()
        state = decode_json(news.state[0], news.state[1])
        return state if isinstance(state, dict) else {}

    def is_running(self) -> bool:
        """True until the task ends (while it waits for a slot, too)."""
        return self._latest().ended_status is None

    def is_completed(self) -> bool:
        return self._latest().status == "completed"

    def get_termination_status(self) -> str | None:
        """None while the task runs, then ``"completed"``, ``"failed"``, ``"killed"`` or ``"missing"``."""
        return self._latest().ended_status

    def get_return_value(self) -> Any:
        """The task's return value once it completed; None before."""
        return _value(self._latest())

    def get_error(self) -> BaseException | None:
        """The error that ended the task (failed, killed or missing), rebuilt as a call's would be; else None."""
        return _error(self._latest())

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the task ends; return its value or raise its error.  After ``timeout`` seconds,
        :class:`greenroom.errors.TimeoutError` (the task runs on)."""
        __tracebackhide__ = True
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise ValueError("timeout is None or a number of seconds >= 0")
        news = self._wait_remote(timeout) if not self._watching else self._wait_pushed(timeout)
        if news.ended_status is None:
            raise errors.TimeoutError(f"task {self._name or self._id} did not end within {timeout:g} s")
        if news.status == "completed":
            return _value(news)
        raise _error(news)  # type: ignore[misc]

    def _wait_pushed(self, timeout: float | None) -> TaskUpdate:
        self._latest()
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._lost is not None or (self._settled is not None and self._settled.ended_status is not None)
                ),
                timeout,
            )
            if self._settled is not None and self._settled.ended_status is not None:
                return self._settled
            if self._lost is not None:
                raise self._lost
            assert self._news is not None
            return self._news

    def _wait_remote(self, timeout: float | None) -> TaskUpdate:
        from .protocol import Kind
        from .taskmessages import TaskUpdate

        if self._source is None:
            return self._latest()
        payload = json.dumps(timeout).encode()
        return TaskUpdate.from_reply(self._source.request(Kind.TASK_WAIT, self._id, payload))

    def kill(self) -> None:
        """Stop the task's process from outside (server code only); its status becomes ``"killed"``."""
        __tracebackhide__ = True
        if self._watching or self._source is None:
            raise PermissionError(
                "only server code may kill a task: call a server function that kills it (task.kill() there)"
            )
        from .protocol import Kind

        reply = self._source.request(Kind.TASK_KILL, self._id)
        reply.result()


def _value(news: TaskUpdate) -> Any:
    if news.status != "completed":
        return None
    from .codec import decode_json

    return decode_json(news.outcome[0], news.outcome[1])


def _error(news: TaskUpdate) -> BaseException | None:
    if news.status not in ("failed", "killed", "missing"):
        return None
    from .remote_errors import error_from_data

    try:
        data = json.loads(bytes(news.outcome[0]))
    except (ValueError, RecursionError):
        return errors.WireError(f"malformed error of task {news.task_id}")
    return error_from_data(data, news.outcome[1])


class TaskState(dict):  # type: ignore[type-arg]
    """``server.task_state`` inside a task: a dict whose every change is sent to the host (coalesced by
    the task's runtime), and so pushed to every holder of the task.  A value that cannot be sent raises
    :class:`~greenroom.errors.SerializationError` where it is written."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._on_change = on_change

    def _check(self, key: Any, value: Any) -> None:
        __tracebackhide__ = True
        from .codec import encode

        if type(key) is not str:
            raise errors.SerializationError(f"task_state keys are str, not {type(key).__name__}")
        encode(value, f"task_state[{key!r}]")

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check(key, value)
        super().__setitem__(key, value)
        self._on_change()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._on_change()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self._check(key, value)
        super().update(*args, **kwargs)
        self._on_change()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: Any, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._on_change()
        return value

    def popitem(self) -> tuple[Any, Any]:
        item = super().popitem()
        self._on_change()
        return item

    def clear(self) -> None:
        super().clear()
        self._on_change()

    def __ior__(self, other: Any) -> Self:  # type: ignore[misc]
        self.update(other)
        return self
