"""What a :class:`~greenroom.server_ext.generation.Generation` is given and what it raises: where the
runtime runs, the host's callbacks (nested calls, sessions, background tasks) and its two failures.
Kept apart so that the modules that hand these to a generation need not import it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from greenroom import errors
from greenroom.protocol import Reply, Request, SessionParts
from greenroom.wire import Part

from .discovery import CodeCell
from .identity import Caller
from .links import Link

if TYPE_CHECKING:
    from .generation import Generation

__all__ = [
    "LendSession",
    "LoadFailed",
    "NestedCall",
    "NotStarted",
    "NotebookSource",
    "RuntimePlace",
    "TaskHooks",
    "timed_out",
]

#: Runs a server-to-server call: (caller, function name, payload, buffers, queue key, lent session) -> reply.
NestedCall = Callable[[Caller, str, Part, list[Part], str, SessionParts | None], Awaitable[Reply]]


class NotebookSource(TypedDict):
    """A notebook as the host hands it to a template: its code cells, parsed by the host (so the template
    never imports nbformat: its import alone costs a second and a fifth of the template's memory)."""

    #: Its path, relative to the root.
    notebook: str
    #: The current version's code cells, ``[number, source]``; None when it cannot be read.
    cells: list[CodeCell] | None
    #: Why it cannot be read: a :class:`~greenroom.protocol.LoadError` as data.
    unreadable: dict[str, Any] | None
    #: The cells of the last version that loaded, or None.
    fallback: list[CodeCell] | None


#: Answers a worker's first use of its call's session: the session, once the call may hold it.
LendSession = Callable[[Link], Awaitable[Reply]]


class TaskHooks(Protocol):
    """What a generation hands the host's background tasks: their processes' links, and server code's
    requests about tasks."""

    async def serve(self, link: Link, generation: Generation) -> None:
        """Run a task process's link until it ends."""

    async def answer(self, caller: Caller, request: Request) -> Reply:
        """Answer a request of ``Kind.TASK_REQUESTS`` made by server code running for ``caller``."""


class LoadFailed(Exception):
    """The template process ended before it reported what it loaded."""


class NotStarted(Exception):
    """A call never reached a worker (the worker or its template was already gone): safe to retry."""


@dataclass(frozen=True, slots=True)
class RuntimePlace:
    """Where runtime processes run and how they reach the host: the notebooks' root (their working
    folder), the unix socket, and the key their hello must carry."""

    root: str
    socket_path: str
    key: str


def timed_out(log: logging.Logger, name: str | None, timeout: float) -> Reply:
    """The reply to a call stopped by its timeout (on whichever runtime it ran), logged once."""
    log.warning("%s() stopped after %.3g s (timeout)", name, timeout)
    return Reply.of_error(
        errors.TimeoutError(f"server function {name!r} did not finish within {timeout:g} s and was stopped")
    )
