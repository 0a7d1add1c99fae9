"""The asyncio tasks a host runs beside its calls, kept so that stopping the host ends every one."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["LoopTasks"]


class LoopTasks:
    """Tracks tasks on the running loop; :meth:`cancel_all` ends them (all but the caller's own)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task that :meth:`cancel_all` will end."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.track(task)
        return task

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep a task someone else created (a server's connection handler) until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
