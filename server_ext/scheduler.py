"""Which call gets the next worker: calls wait in one queue per session and are served in turn.

The calls of one session (a kernel, a connection; a user under JupyterHub) hold at most ``share``
workers at once, so one client that sends many slow or heavy calls never leaves the others waiting
behind it: its extra calls wait while other sessions' calls take the free workers.  Invariant after
every change: no idle worker while a call that may run waits.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

__all__ = ["FairQueue"]

Worker = TypeVar("Worker")


class FairQueue(Generic[Worker]):
    """Idle workers, the calls waiting for one (per session key), and how many each session runs."""

    def __init__(self, share: int) -> None:
        self.share = share
        self.idle: collections.deque[Worker] = collections.deque()
        self.waiting: dict[str, collections.deque[asyncio.Future[Worker]]] = {}
        self.running: dict[str, int] = {}
        self.busy = 0

    def may_run(self, key: str) -> bool:
        return self.running.get(key, 0) < self.share

    def eligible_waiting(self) -> int:
        """Waiting calls that would run now if there were workers: what forking more workers would serve."""
        return sum(
            min(len(queue), max(0, self.share - self.running.get(key, 0))) for key, queue in self.waiting.items()
        )

    def take(self, key: str) -> Worker | None:
        """An idle worker for a call of ``key`` right now, or None (then :meth:`wait`)."""
        if not self.idle or not self.may_run(key):
            return None
        self._start(key)
        return self.idle.popleft()

    def wait(self, key: str) -> asyncio.Future[Worker]:
        """A future that :meth:`put` or :meth:`done` resolves with a worker, in turn."""
        future: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(key, collections.deque()).append(future)
        return future

    def forget(self, key: str, future: asyncio.Future[Worker]) -> None:
        """A waiting call gave up (cancelled, timed out)."""
        queue = self.waiting.get(key)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self.waiting[key]

    def put(self, worker: Worker) -> None:
        """A worker is free: the next waiting call in turn gets it, else it waits idle."""
        self.idle.append(worker)
        self._match()

    def done(self, key: str) -> None:
        """A call of ``key`` ended (its worker is handed back with :meth:`put`, or is gone)."""
        remaining = self.running.get(key, 0) - 1
        if remaining > 0:
            self.running[key] = remaining
        else:
            self.running.pop(key, None)
        self.busy = max(0, self.busy - 1)
        self._match()

    def fail_waiting(self, error: BaseException) -> None:
        for queue in self.waiting.values():
            for future in queue:
                if not future.done():
                    future.set_exception(error)
        self.waiting.clear()

    def _start(self, key: str) -> None:
        self.running[key] = self.running.get(key, 0) + 1
        self.busy += 1

    def _match(self) -> None:
        while self.idle and self.waiting:
            for key in list(self.waiting):
                if self.may_run(key):
                    break
            else:
                return  # every waiting session already runs its share
            queue = self.waiting.pop(key)
            while queue and queue[0].done():
                queue.popleft()  # given up meanwhile
            if not queue:
                continue
            future = queue.popleft()
            if queue:
                self.waiting[key] = queue  # to the back of the line: the next worker goes to another session
            self._start(key)
            future.set_result(self.idle.popleft())
