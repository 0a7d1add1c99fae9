"""One background task as the host holds it (:class:`TaskRecord`), and who may see it (:func:`may_see`).

Invariant: a record's ``update`` is the task's one current state; everything else here is how the host
reaches the task's process and the connections watching it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from greenroom.taskmessages import TaskUpdate
from greenroom.wire import Part, Parts

from .dask_tasks import RemoteTaskLink
from .identity import Caller
from .links import Link

if TYPE_CHECKING:
    from .generation import Generation

__all__ = ["PushTo", "RunningTaskLink", "TaskRecord", "may_see"]

#: Sends a pushed message (a task's news) to one client connection.
PushTo = Callable[[Parts], None]
#: A task's process as the host reaches it: over a local link, or on a Dask worker.
RunningTaskLink = Link | RemoteTaskLink


@dataclass(eq=False)
class TaskRecord:
    """One task as the host holds it."""

    update: TaskUpdate
    caller: Caller
    payload: Part
    buffers: list[Part]
    generation: Generation | None = None
    link: RunningTaskLink | None = None
    kill_reason: BaseException | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: dict[object, PushTo] = field(default_factory=dict)

    @property
    def user(self) -> str:
        return self.caller.user.name if self.caller.user is not None else ""


def may_see(caller: Caller | None, user: str, session: str) -> bool:
    """Whether ``caller`` may watch or list a task launched by ``user`` in ``session`` (None: server code)."""
    if caller is None or caller.owner or caller.client_type == "server":
        return True
    if user and caller.user is not None and caller.user.name == user:
        return True
    return caller.session_key == session
