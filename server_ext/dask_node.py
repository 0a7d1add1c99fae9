"""The greenroom runtime on a Dask worker: :class:`RuntimeNode`, a Dask actor, one per worker.

A node is the local runtime again, on that machine: per notebook version a template (the notebooks
loaded once) and the workers it forks, fresh or persistent as the host's options say, and the processes
of the background tasks the host starts here (:mod:`~greenroom.server_ext.dask_tasks`).  The host drives
it with actor calls: ``load`` a version (the notebooks' texts and the modules beside them), ``run`` a call,
``resume`` it with the host's answer to a request its server code made (a nested call, the session's
first use), ``kill`` it.  ``run`` and ``resume`` return the call's next event: its result, or the request
the host must answer (the host stays the front door: sessions, rate limits and the call log are its).

Invariant: a node runs only notebooks the host sent it, in a private folder, and never answers a request
of server code itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from greenroom import errors
from greenroom.protocol import CallRequest, Kind, Reply, Request, SessionParts
from greenroom.wire import Part, parse_route

from .config import HostConfig
from .dask_tasks import NodeTasks, TaskMessages
from .generation import Generation
from .generation_parts import NotebookSource, RuntimePlace
from .identity import Caller
from .links import Link, RuntimeListener
from .looptasks import LoopTasks

__all__ = ["NodeEvent", "RuntimeNode"]

#: What ``run`` and ``resume`` return: ``("result", parts)``, ``("request", parts)`` or ``("ended", [reason])``.
NodeEvent = tuple[str, list[bytes]]


@dataclass(eq=False)
class NodeCall:
    """A call this node runs: its worker, and the requests of its server code waiting for the host."""

    call_id: int
    generation: Generation
    queue_key: str
    link: Link | None = None
    outbox: asyncio.Queue[Request] = field(default_factory=asyncio.Queue)
    answers: dict[int, asyncio.Future[Reply]] = field(default_factory=dict)
    next_request: int = 0
    finished: bool = False


class RuntimeNode:
    """The runtime on one Dask worker (a Dask actor: ``client.submit(RuntimeNode, options, actor=True)``)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.config = HostConfig(**{**options, "dask_scheduler": ""})
        self.log = logging.getLogger("greenroom.dask")
        self.directory = ""
        self.key = secrets.token_hex(32)
        self.loop_tasks = LoopTasks()
        self.generations: dict[int, Generation] = {}
        self.listener: RuntimeListener | None = None
        self.calls: dict[int, NodeCall] = {}
        self.task_hooks = NodeTasks(self.config.max_message_size, self._relay_task_request)

    async def _start(self) -> None:
        if self.listener is not None:
            return
        self.directory = tempfile.mkdtemp(prefix="greenroom-node-")
        os.chmod(self.directory, 0o700)
        self.listener = RuntimeListener(
            os.path.join(self.directory, "host.sock"), self.key, self.generations.get, self.log, self.loop_tasks
        )
        await self.listener.start()

    # -- versions ------------------------------------------------------------------
    async def load(self, number: int, sources: list[NotebookSource], modules: dict[str, bytes]) -> dict[str, Any]:
        """Load version ``number`` of the notebooks (with the ``.py`` modules beside them); older versions
        finish their calls, then stop.  Returns what loaded: functions and load errors."""
        await self._start()
        if number in self.generations:
            return self._loaded(self.generations[number])
        root = os.path.join(self.directory, f"v{number}")
        await asyncio.to_thread(_write_tree, root, [str(source["notebook"]) for source in sources], modules)
        place = RuntimePlace(root, os.path.join(self.directory, "host.sock"), self.key)
        generation = Generation(
            number,
            sources,
            (),
            self.config,
            place,
            self.log,
            self.loop_tasks,
            nested_call=self._relay_call,
            lend_session=self._relay_session,
            task_hooks=self.task_hooks,
            on_lost=lambda _: None,
            on_ended=self._ended,
        )
        self.generations[number] = generation
        await generation.start()
        await asyncio.wait_for(generation.loaded, self.config.load_timeout)
        for older in [n for n in self.generations if n < number]:
            self.generations[older].retire()
        return self._loaded(generation)

    @staticmethod
    def _loaded(generation: Generation) -> dict[str, Any]:
        return {"functions": sorted(generation.functions), "errors": [e.to_data() for e in generation.errors]}

    def _ended(self, generation: Generation) -> None:
        if self.generations.get(generation.number) is generation:
            del self.generations[generation.number]
            shutil.rmtree(generation.place.root, ignore_errors=True)

    # -- calls ---------------------------------------------------------------------
    async def run(self, number: int, parts: list[bytes], queue_key: str) -> NodeEvent:
        """Run the call ``parts`` (a packed ``CallRequest``) on version ``number``; its first event."""
        generation = self.generations.get(number)
        if generation is None or generation.retired:
            return ("ended", [b"not loaded"])
        request = CallRequest.unpack(parse_route(parts[0]), list[Part](parts))
        call = NodeCall(request.call_id, generation, queue_key)
        self.calls[request.call_id] = call
        try:
            link = await generation.acquire(queue_key)
        except Exception:  # noqa: BLE001 - the generation went away: the host loads again and retries
            self.calls.pop(request.call_id, None)
            return ("ended", [b"not loaded"])
        call.link = link
        link.caller = Caller("node", str(request.call_id), f"node:{request.call_id}")
        link.queue_key, link.call_id = queue_key, request.call_id
        link.reply = asyncio.get_running_loop().create_future()
        link.send_parts(request.pack())
        return await self._next_event(call)

    async def resume(self, call_id: int, request_id: int, parts: list[bytes]) -> NodeEvent:
        """The host's answer to request ``request_id`` of call ``call_id``; the call's next event."""
        call = self.calls.get(call_id)
        if call is None:
            return ("ended", [b"no such call"])
        answer = call.answers.pop(request_id, None)
        if answer is not None and not answer.done():
            answer.set_result(Reply.unpack(parse_route(parts[0]), list[Part](parts)))
        return await self._next_event(call)

    async def _next_event(self, call: NodeCall) -> NodeEvent:
        link = call.link
        assert link is not None and link.reply is not None
        reply = link.reply
        asked = asyncio.ensure_future(call.outbox.get())
        waited: set[asyncio.Future[Any]] = {reply, asked}
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            asked.cancel()
            raise
        if asked.done() and not reply.done():
            return ("request", [bytes(part) for part in asked.result().pack()])
        asked.cancel()  # a request that raced the result is moot: the call has ended
        self._finish(call)
        try:
            result = reply.result()
        except errors.ExecutionTerminatedError:
            return ("ended", [b"the worker ended before it answered"])
        return ("result", [bytes(part) for part in result.pack()])

    def _finish(self, call: NodeCall) -> None:
        """The call has ended (answered, or killed): its worker goes back, once."""
        self.calls.pop(call.call_id, None)
        link = call.link
        if link is None or call.finished:
            return
        call.finished = True
        for answer in call.answers.values():
            answer.cancel()
        for nested in list(link.nested):
            nested.cancel()
        link.reply = None
        link.caller = None
        call.generation.release(link, call.queue_key)

    async def kill(self, call_id: int) -> None:
        """Stop the call's worker from outside (the host's timeout); its template kills its own child."""
        call = self.calls.pop(call_id, None)
        if call is not None and call.link is not None:
            call.generation.kill(call.link)
            self._finish(call)

    async def _ask_host(self, link: Link, request: Request) -> Reply:
        call = self.calls.get(link.call_id)
        if call is None:
            return Reply.of_error(errors.WireError("a request outside a call"))
        call.next_request += 1
        request.request_id = call.next_request
        answer: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        call.answers[request.request_id] = answer
        await call.outbox.put(request)
        return await answer

    async def _relay_call(
        self, caller: Caller, name: str, payload: Part, buffers: list[Part], queue_key: str, lent: SessionParts | None
    ) -> Reply:
        call = self.calls.get(int(caller.client_id)) if caller.client_id.isdigit() else None
        if call is None or call.link is None:
            return Reply.of_error(errors.WireError("a server-to-server call outside a call"))
        return await self._ask_host(call.link, Request(Kind.CALL, 0, name, payload, buffers, lent))

    async def _relay_session(self, link: Link) -> Reply:
        return await self._ask_host(link, Request(Kind.SESSION, 0))

    async def _relay_task_request(self, caller: Caller, request: Request) -> Reply:
        call = self.calls.get(int(caller.client_id)) if caller.client_id.isdigit() else None
        if call is None or call.link is None:
            return Reply.of_error(errors.WireError("a background task request outside a call"))
        asked = Request(request.kind, 0, request.name, request.payload, request.buffers)
        return await self._ask_host(call.link, asked)

    # -- background tasks (the host's TaskManager drives them through a RemoteTaskLink) --------
    async def spawn_task(self, number: int, task_id: str) -> bool:
        """Start task ``task_id``'s process on version ``number``; True once it has connected."""
        generation = self.generations.get(number)
        if generation is None or generation.retired:
            return False
        return await self.task_hooks.spawn(generation, task_id)

    async def task_receive(self, task_id: str) -> TaskMessages:
        return await self.task_hooks.receive(task_id)

    async def task_send(self, task_id: str, parts: list[bytes]) -> None:
        self.task_hooks.send(task_id, parts)

    async def task_kill(self, task_id: str) -> None:
        self.task_hooks.kill(task_id)

    async def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "versions": sorted(self.generations),
            "busy_workers": sum(g.busy for g in self.generations.values()),
            "calls": len(self.calls),
            "tasks": len(self.task_hooks.tasks),
        }

    async def close(self) -> None:
        self.task_hooks.kill_all()
        for generation in list(self.generations.values()):
            generation.stop()
        with contextlib.suppress(Exception):
            await asyncio.gather(*(g.reap(grace=3.0) for g in self.generations.values()))
        if self.listener is not None:
            self.listener.close()
        await self.loop_tasks.cancel_all()
        shutil.rmtree(self.directory, ignore_errors=True)


def _write_tree(root: str, notebooks: list[str], modules: dict[str, bytes]) -> None:
    """The version's folder: the notebooks' folders (for their relative imports) and the modules."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    for notebook in notebooks:
        os.makedirs(os.path.join(root, os.path.dirname(notebook)), exist_ok=True)
    for relative, content in modules.items():
        path = os.path.normpath(os.path.join(root, relative))
        if not path.startswith(root + os.sep):
            continue  # never outside the version's folder
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
