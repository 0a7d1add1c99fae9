"""The loading indicator's reference count: how many calls with a spinner are running.

``server.call`` enters and leaves it; Forms listen with
:meth:`LoadingState.on_change` and show their indicator while the count is above zero.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .logs import log

__all__ = ["LoadingState", "loading"]


class LoadingState:
    """A thread-safe counter of running calls, with change callbacks."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[bool], None]] = []

    @property
    def active(self) -> bool:
        """True while at least one call with a loading indicator runs."""
        return self._count > 0

    @property
    def listener_count(self) -> int:
        """How many callbacks listen (one per kernel with Forms, however many Forms exist)."""
        return len(self._callbacks)

    def on_change(self, callback: Callable[[bool], None], remove: bool = False) -> None:
        """Call ``callback(active)`` whenever the indicator should show or hide."""
        if remove:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
        elif callback not in self._callbacks:
            self._callbacks.append(callback)

    def _notify(self, active: bool) -> None:
        for callback in list(self._callbacks):
            try:
                callback(active)
            except Exception:  # noqa: BLE001 - a broken listener must not break the call
                log.exception("a loading indicator callback failed")

    def enter(self) -> None:
        with self._lock:
            self._count += 1
            changed = self._count == 1
        if changed:
            self._notify(True)

    def leave(self) -> None:
        with self._lock:
            self._count = max(0, self._count - 1)
            changed = self._count == 0
        if changed:
            self._notify(False)

    def forget_after_fork(self) -> None:
        """In a forked child: the indicator and its listeners are the parent's (its lock may have been
        held by a thread the child does not have)."""
        self._lock = threading.Lock()
        self._count = 0
        self._callbacks.clear()

    def reset(self) -> None:
        """Forget listeners and the count (for tests)."""
        with self._lock:
            self._count = 0
            self._callbacks.clear()


loading = LoadingState()
