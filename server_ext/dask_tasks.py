"""Background tasks on a Dask cluster: a task's process runs on a Dask worker, its record stays on the host.

On the worker, :class:`NodeTasks` (the :class:`~greenroom.server_ext.dask_node.RuntimeNode`'s task hooks)
forks a task's process from the version's template when the host asks (``spawn_task``), keeps the
messages the process sends (its state, its result, its server code's requests) until the host fetches
them (``task_receive``, a long poll), and hands it what the host sends (``task_send``).  On the host,
:class:`RemoteTaskLink` is that process as the :class:`~greenroom.server_ext.tasks.TaskManager` sees a
local task's link: the manager runs it as it runs any task, so records, pushes to watchers, ``max_tasks``,
``task_timeout`` and ``kill`` are the host's, as for calls.

Invariant: a task's process on a worker is started only at the host's request, for a task id the host
made; its link ends (and the host records why) when the process, its worker or the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from greenroom import errors
from greenroom.errors import WireError
from greenroom.protocol import Reply, Request, runtime_message_limit
from greenroom.wire import Part, Parts, Route, parse_route

from .identity import Caller
from .links import Link

if TYPE_CHECKING:
    from .generation import Generation

__all__ = ["NodeTasks", "RemoteTaskLink", "TaskMessages"]

#: Seconds a task's process on a worker has to connect after its template was asked to fork it.
ATTACH_TIMEOUT = 60.0
#: What ``task_receive`` returns: the messages the process sent since the last fetch (each its parts),
#: and whether its link has ended.
TaskMessages = tuple[list[list[bytes]], bool]


@dataclass(eq=False)
class NodeTask:
    """A task's process on this worker: its link once connected, and what it sent that the host has not
    fetched yet (None ends it)."""

    task_id: str
    attached: asyncio.Future[Link]
    link: Link | None = None
    generation: Generation | None = None
    inbox: asyncio.Queue[list[bytes] | None] = field(default_factory=asyncio.Queue)


class NodeTasks:
    """The task hooks of a node's generations: task processes relayed to the host, server code's task
    requests asked of the host (``ask_host``, through the call that made them)."""

    def __init__(self, max_message_size: int, ask_host: Callable[[Caller, Request], Awaitable[Reply]]) -> None:
        self.limit = runtime_message_limit(max_message_size)
        self.ask_host = ask_host
        self.tasks: dict[str, NodeTask] = {}
        self.log = logging.getLogger("greenroom.dask")

    async def answer(self, caller: Caller, request: Request) -> Reply:
        return await self.ask_host(caller, request)

    async def spawn(self, generation: Generation, task_id: str) -> bool:
        """Fork task ``task_id``'s process from ``generation``'s template and wait until it connects."""
        if task_id in self.tasks:
            return False
        task = NodeTask(task_id, asyncio.get_running_loop().create_future())
        self.tasks[task_id] = task
        if not generation.spawn_task(task_id):
            del self.tasks[task_id]
            return False
        try:
            await asyncio.wait_for(asyncio.shield(task.attached), ATTACH_TIMEOUT)
        except TimeoutError:
            self.tasks.pop(task_id, None)
            generation.task_ended(task_id)
            return False
        return True

    async def serve(self, link: Link, generation: Generation) -> None:
        """A task's process connected: keep what it sends for the host until its link ends."""
        task = self.tasks.get(link.task_id)
        if task is None or task.attached.done():
            link.close()  # not a task the host asked this node for
            return
        task.link, task.generation = link, generation
        task.attached.set_result(link)
        try:
            while True:
                _route, parts = await link.receive(self.limit)
                task.inbox.put_nowait([bytes(part) for part in parts])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended
        except WireError as error:
            self.log.warning("dropped the link to %r: %s", link, error)
        finally:
            link.close()
            task.inbox.put_nowait(None)
            generation.task_ended(link.task_id)

    async def receive(self, task_id: str) -> TaskMessages:
        """What task ``task_id``'s process sent since the last fetch (waits for at least one message)."""
        task = self.tasks.get(task_id)
        if task is None:
            return [], True
        messages: list[list[bytes]] = []
        item = await task.inbox.get()
        while item is not None:
            messages.append(item)
            if task.inbox.empty():
                return messages, False
            item = task.inbox.get_nowait()
        del self.tasks[task_id]
        return messages, True

    def send(self, task_id: str, parts: list[bytes]) -> None:
        task = self.tasks.get(task_id)
        if task is not None and task.link is not None:
            with contextlib.suppress(ConnectionResetError):
                task.link.send_parts(list[Part](parts))

    def kill(self, task_id: str) -> None:
        """Stop the task's process group through its template."""
        task = self.tasks.get(task_id)
        if task is not None and task.link is not None and task.generation is not None:
            task.generation.kill(task.link)

    def kill_all(self) -> None:
        for task_id in list(self.tasks):
            self.kill(task_id)


class RemoteTaskLink:
    """A task's process on a Dask worker, as the host's task manager uses a local task's link."""

    def __init__(self, actor: Any, address: str, task_id: str, on_lost: Callable[[], None]) -> None:
        self.actor = actor
        self.address = address
        self.task_id = task_id
        self.on_lost = on_lost  # the worker is gone: the runtime sends nothing more there
        self.closed = False
        self.caller: Caller | None = None
        self.queue_key = ""
        self.nested: set[asyncio.Task[None]] = set()
        self._received: deque[list[bytes]] = deque()
        self._ended = False
        self._outgoing: asyncio.Queue[list[bytes]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._killing: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"task {self.task_id} on Dask worker {self.address}"

    def send_parts(self, parts: Parts) -> None:
        """Queue a message for the process (sent in order by one sender)."""
        if self.closed:
            raise ConnectionResetError("the task's process is gone")
        self._outgoing.put_nowait([bytes(part) for part in parts])
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_in_order())

    async def _send_in_order(self) -> None:
        while True:
            parts = await self._outgoing.get()
            try:
                await self.actor.task_send(self.task_id, parts)
            except (OSError, RuntimeError) as error:  # the worker is gone: the receiving side ends the task
                self.closed = True
                self._ended = True
                self.on_lost()
                logging.getLogger("greenroom").debug("lost %r while sending: %s", self, error)
                return

    async def receive(self, limit: int) -> tuple[Route, Parts]:
        """The process's next message; ``ConnectionError`` once it or its worker has ended."""
        while not self._received:
            if self._ended or self.closed:
                raise ConnectionError("the task's process ended")
            try:
                messages, ended = await self.actor.task_receive(self.task_id)
            except (OSError, RuntimeError) as error:
                self._ended = True
                self.on_lost()
                raise ConnectionError(f"the Dask worker {self.address} was lost: {error}") from None
            self._received.extend(messages)
            self._ended = ended
        parts = self._received.popleft()
        if not parts or sum(len(part) for part in parts) > limit:
            raise WireError(f"a message of {sum(len(part) for part in parts)} bytes from a task (limit {limit})")
        return parse_route(parts[0], limit), list[Part](parts)

    def kill(self) -> None:
        """Stop the process (and whatever it forked) on its worker."""
        if not self._ended and self._killing is None:
            self._killing = asyncio.get_running_loop().create_task(self._kill())

    async def _kill(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self.actor.task_kill(self.task_id)

    def close(self) -> None:
        self.closed = True
        if self._sender is not None:
            self._sender.cancel()


async def spawn_on(actor: Any, address: str, number: int, task_id: str, on_lost: Callable[[], None]) -> RemoteTaskLink:
    """Start task ``task_id`` on the node ``actor`` (version ``number`` loaded there); its link."""
    try:
        started = await actor.spawn_task(number, task_id)
    except (OSError, RuntimeError) as error:
        on_lost()
        raise errors.ExecutionTerminatedError(f"the Dask worker {address} was lost: {error}") from None
    if not started:
        raise errors.ExecutionTerminatedError(f"the Dask worker {address} could not start the task's process")
    return RemoteTaskLink(actor, address, task_id, on_lost)
