"""Who watches which background task over one connection, and the last news the host pushed of each.

Both client connections (:mod:`.connection`, over the WebSocket, and :mod:`.localconnection`, over the
host's local socket) keep their watchers here: a watcher held weakly when it is a bound method (a
:class:`~greenroom.tasks.Task` that is dropped stops watching), told every piece of news, and last the
error that ends its watch.

Invariant: a task is watched on the host at most once per connection (the first watcher asks; the
others get the last news at once), and every watcher hears how its watch ended.
"""

from __future__ import annotations

import concurrent.futures
import functools
import inspect
import threading
import weakref
from collections.abc import Callable

from .errors import GreenroomError
from .protocol import Kind, Reply
from .taskmessages import TaskUpdate

__all__ = ["Submit", "TaskWatcher", "TaskWatches"]

#: Sends a request (kind, name) and returns its id and a future of the reply: a connection's ``submit``.
Submit = Callable[[str, str], tuple[int, "concurrent.futures.Future[Reply]"]]

#: Gets a task's news, or the error that ends its watch.
TaskWatcher = Callable[[TaskUpdate | BaseException], None]


class TaskWatches:
    """The watchers of one connection (thread-safe)."""

    def __init__(self) -> None:
        self._watchers: dict[str, list[Callable[[], TaskWatcher | None]]] = {}
        self._last_news: dict[str, TaskUpdate] = {}
        self._lock = threading.Lock()

    def add(self, task_id: str, on_news: TaskWatcher) -> bool:
        """Add a watcher (told the last news at once, if any); True when it is the task's first here, and
        the host must be asked to push its news."""
        held: Callable[[], TaskWatcher | None] = (
            weakref.WeakMethod(on_news) if inspect.ismethod(on_news) else (lambda: on_news)
        )
        with self._lock:
            watchers = self._watchers.setdefault(task_id, [])
            watchers.append(held)
            first, known = len(watchers) == 1, self._last_news.get(task_id)
        if known is not None:
            on_news(known)
        return first

    def watch(self, task_id: str, on_news: TaskWatcher, submit: Submit) -> None:
        """Add a watcher; for a task's first, ask the host (with ``submit``) to push its news.  A refusal
        ends the watch, with the reason, for its watchers."""
        if not self.add(task_id, on_news):
            return
        try:
            _, future = submit(Kind.WATCH, task_id)
        except GreenroomError as error:
            self.end(task_id, error)
            return
        future.add_done_callback(functools.partial(self._answered, task_id))

    def _answered(self, task_id: str, done: concurrent.futures.Future[Reply]) -> None:
        try:
            reply = done.result()
            if not reply.ok:
                reply.result()
        except Exception as error:  # noqa: BLE001 - the watch ends with the reason, told to its watchers
            self.end(task_id, error)

    def news(self, update: TaskUpdate) -> None:
        """The host pushed news of a task: every watcher of it hears it."""
        with self._lock:
            watchers = list(self._watchers.get(update.task_id, ()))
            if watchers:
                self._last_news[update.task_id] = update
        for held in watchers:
            watcher = held()
            if watcher is not None:
                watcher(update)

    def end(self, task_id: str, error: BaseException) -> None:
        """The watch of ``task_id`` ended with ``error``: its watchers hear it and are forgotten."""
        with self._lock:
            watchers = self._watchers.pop(task_id, [])
            self._last_news.pop(task_id, None)
        for held in watchers:
            watcher = held()
            if watcher is not None:
                watcher(error)

    def end_all(self, error: BaseException) -> None:
        for task_id in list(self._watchers):
            self.end(task_id, error)

    @property
    def active(self) -> bool:
        return bool(self._watchers)
