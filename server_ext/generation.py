"""A generation: one template process with the notebooks as they were on disk, and its workers.

A reload starts a new generation; the old one finishes its calls and exits.  Workers are
forked ahead of demand (``prefork``) so the fork is off the call path.  A generation owns
its processes and their links and knows nothing of the host: it is given the configuration,
where the runtime socket is, and callbacks (run a nested call; "I am lost"; "I ended").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from greenroom.errors import ExecutionTerminatedError, WireError
from greenroom.protocol import (
    CallResult,
    Kind,
    LoadError,
    Request,
    Role,
    runtime_message_limit,
)
from greenroom.wire import Parts, Route

from .config import HostConfig
from .discovery import Signature
from .generation_parts import LendSession, LoadFailed, NestedCall, NotebookSource, NotStarted, RuntimePlace, TaskHooks
from .identity import SERVER_CALLER
from .links import Link
from .looptasks import LoopTasks
from .scheduler import FairQueue

__all__ = ["Generation"]


class Generation:
    """One template and the workers forked from it."""

    def __init__(
        self,
        number: int,
        sources: list[NotebookSource],
        signature: Signature,
        config: HostConfig,
        place: RuntimePlace,
        log: logging.Logger,
        tasks: LoopTasks,
        *,
        nested_call: NestedCall,
        lend_session: LendSession,
        task_hooks: TaskHooks,
        on_lost: Callable[[Generation], None],
        on_ended: Callable[[Generation], None],
    ) -> None:
        self.number = number
        self.notebooks = [str(source["notebook"]) for source in sources]
        #: What the template loads: each notebook's text as read, and its last good version to fall back to.
        self.sources = sources
        #: Notebooks whose current version loaded, and those served from their last good version.
        self.loaded_notebooks: list[str] = []
        self.older_versions: list[str] = []
        self.signature = signature
        self.config = config
        self.place = place
        self.log = log
        self.tasks = tasks
        self.nested_call = nested_call
        self.lend_session = lend_session
        self.task_hooks = task_hooks
        self.on_lost = on_lost
        self.on_ended = on_ended
        self.process: asyncio.subprocess.Process | None = None
        self.template: Link | None = None
        self.loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.functions: dict[str, dict[str, Any]] = {}
        self.task_names: list[str] = []
        #: Background tasks started in this generation and not ended: its template must outlive them.
        self.running_tasks: set[str] = set()
        self.errors: list[LoadError] = []
        self.queue: FairQueue[Link] = FairQueue(config.max_workers_per_session)
        self.spawning = 0
        self.links: set[Link] = set()
        self.retired = False
        self.calls_done = 0

    # -- the template ------------------------------------------------------
    async def start(self) -> None:
        config, place = self.config, self.place
        command = [
            config.python,
            "-m",
            "greenroom.server_ext.runtime.template",
            "--socket",
            place.socket_path,
            "--generation",
            str(self.number),
            "--root",
            place.root,
            "--max-values",
            str(config.max_values),
            "--memory-limit",
            str(config.worker_memory_limit),
            "--max-message-size",
            str(config.max_message_size),
        ]
        if config.persistent:
            command.append("--persistent")
        env = dict(os.environ, GREENROOM_RUNTIME_KEY=place.key, PYTHONUNBUFFERED="1")
        # Arrow's default allocators reserve address space up front, which the workers' memory limit
        # (RLIMIT_AS) refuses: the system allocator only takes what it uses.
        env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        for name in ("GREENROOM_URL", "GREENROOM_TOKEN", "GREENROOM_KERNEL_ID", "GREENROOM_SOCKET"):
            env.pop(name, None)
        self.process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, env=env, cwd=place.root, start_new_session=True
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self.sources).encode() + b"\n")
        await self.process.stdin.drain()
        self.process.stdin.close()
        self.tasks.spawn(self._watch_process())

    async def _watch_process(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        if not self.loaded.done():
            self.loaded.set_exception(LoadFailed(f"the runtime process exited with code {code} while loading"))
        if not self.retired:
            self.log.warning("runtime generation %d ended (exit code %s)", self.number, code)
            self.lost()
        self.on_ended(self)

    def _on_template_message(self, route: Route) -> None:
        if route["kind"] == Kind.LOADED and not self.loaded.done():
            self.functions = {f["name"]: f for f in route.get("functions", []) if isinstance(f, dict)}
            self.task_names = [str(name) for name in route.get("tasks", []) if isinstance(name, str)]
            self.errors = [LoadError.from_data(error) for error in route.get("errors", [])]
            self.loaded_notebooks = [str(name) for name in route.get("loaded", [])]
            self.older_versions = [str(name) for name in route.get("older", [])]
            if route.get("output"):
                self.log.info("output while loading server notebooks:\n%s", route["output"])
            self.loaded.set_result(None)

    # -- links -------------------------------------------------------------
    async def serve(self, link: Link) -> None:
        """Read a runtime process's messages until its link ends (the listener calls this)."""
        if link.role == Role.TASK:
            await self.task_hooks.serve(link, self)
            return
        if link.role == Role.TEMPLATE:
            self.template = link
            self._replenish()
        else:
            self._attach_worker(link)
        try:
            while True:
                route, parts = await link.receive(runtime_message_limit(self.config.max_message_size))
                self._dispatch(link, route, parts)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended or closed its socket
        except WireError as error:
            self.log.warning("dropped the link to %r: %s", link, error)
        finally:
            self._link_ended(link)

    def _dispatch(self, link: Link, route: Route, parts: Parts) -> None:
        kind = route["kind"]
        if link.role == Role.TEMPLATE:
            self._on_template_message(route)
        elif kind == Kind.RESULT:
            result = CallResult.unpack(route, parts)
            if link.reply is not None and not link.reply.done():
                link.reply.set_result(result)
        elif kind in (Kind.CALL, Kind.SESSION, *Kind.TASK_REQUESTS):
            request = Request.unpack(route, parts)
            if kind == Kind.CALL:
                answer = self._nested(link, request)
            elif kind == Kind.SESSION:
                answer = self._lend(link, request)
            else:
                answer = self._task_request(link, request)
            task = self.tasks.spawn(answer)
            link.nested.add(task)  # ends with the call that asked
            task.add_done_callback(link.nested.discard)
        else:
            raise WireError(f"unexpected message kind {kind!r} from a worker")

    async def _nested(self, link: Link, request: Request) -> None:
        caller = link.caller or SERVER_CALLER
        queue_key = f"{link.queue_key or caller.session_key}>"  # never waits behind the call that made it
        reply = await self.nested_call(
            caller, str(request.name), request.payload, request.buffers, queue_key, request.session
        )
        with contextlib.suppress(ConnectionResetError):
            link.send_parts(reply.pack(request.request_id))

    async def _task_request(self, link: Link, request: Request) -> None:
        reply = await self.task_hooks.answer(link.caller or SERVER_CALLER, request)
        with contextlib.suppress(ConnectionResetError):
            link.send_parts(reply.pack(request.request_id))

    async def _lend(self, link: Link, request: Request) -> None:
        reply = await self.lend_session(link)
        with contextlib.suppress(ConnectionResetError):
            link.send_parts(reply.pack(request.request_id))

    def _link_ended(self, link: Link) -> None:
        link.close()
        if link.reply is not None and not link.reply.done():
            link.reply.set_exception(ExecutionTerminatedError("worker ended"))
        if link.role == Role.WORKER:
            self.links.discard(link)
            if link in self.queue.idle:
                self.queue.idle.remove(link)
            self._replenish()
        elif not self.retired:
            self.log.warning("runtime generation %d lost its template process", self.number)
            self.lost()

    # -- workers -----------------------------------------------------------
    @property
    def busy(self) -> int:
        """Workers running a call now."""
        return self.queue.busy

    def _target(self) -> int:
        """How many workers should be idle or being forked: never more than ``max_workers`` alive."""
        config, busy, waiting = self.config, self.queue.busy, self.queue.eligible_waiting()
        if config.persistent:
            return max(config.workers, min(busy + waiting, config.max_workers)) - busy
        return max(0, min(config.prefork + waiting, config.max_workers - busy))

    def _replenish(self) -> None:
        if self.retired or self.template is None or self.template.closed:
            return
        deficit = self._target() - len(self.queue.idle) - self.spawning
        if deficit > 0:
            self.spawning += deficit
            self.template.send({"kind": Kind.SPAWN, "count": deficit})

    def _attach_worker(self, link: Link) -> None:
        self.spawning = max(0, self.spawning - 1)
        self.links.add(link)
        if self.retired:
            link.close()
            return
        self.queue.put(link)

    async def acquire(self, key: str) -> Link:
        """A worker for one call of session ``key``: an idle one, else wait for one (forked, or freed by a
        call) in turn with the other sessions, never holding more than ``max_workers_per_session``."""
        if self.retired:
            raise NotStarted
        while (link := self.queue.take(key)) is not None:
            if not link.closed:
                if not self.queue.idle:
                    self._replenish()  # the last spare: fork now; otherwise after the call (release), off its path
                return link
            self.queue.done(key)
        waiter = self.queue.wait(key)
        self._replenish()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result(), key)
            raise
        finally:
            self.queue.forget(key, waiter)

    def release(self, link: Link, key: str) -> None:
        """Give a worker back after a call of ``key``; fresh-state workers are never reused."""
        self.calls_done += 1
        reusable = self.config.persistent and not self.retired and not link.closed
        if not reusable:
            link.close()
        self.queue.done(key)
        if reusable:
            self.queue.put(link)
        self._replenish()
        if self.retired and self.queue.busy == 0 and not self.running_tasks:
            self.stop()

    def kill(self, link: Link) -> None:
        """Stop a worker from outside (timeout, cancel): the template kills its own child."""
        link.close()
        if self.template is not None and not self.template.closed:
            self.template.send({"kind": Kind.KILL, "pid": link.pid})

    def spawn_task(self, task_id: str) -> bool:
        """Ask the template to fork the process of task ``task_id``; False when it cannot."""
        if self.retired or self.template is None or self.template.closed:
            return False
        try:
            self.template.send({"kind": Kind.SPAWN_TASK, "task": task_id})
        except ConnectionResetError:
            return False
        self.running_tasks.add(task_id)
        return True

    def task_ended(self, task_id: str) -> None:
        self.running_tasks.discard(task_id)
        if self.retired and self.queue.busy == 0 and not self.running_tasks:
            self.stop()

    def busy_links(self) -> list[Link]:
        """Workers running a call now."""
        return [link for link in self.links if link.reply is not None and not link.closed]

    # -- the end -----------------------------------------------------------
    def lost(self) -> None:
        """The template died: waiting calls go elsewhere, nothing more is handed out."""
        if not self.retired:
            self.retire()
            self.on_lost(self)

    def retire(self) -> None:
        """Finish the calls in flight, then stop."""
        self.retired = True
        self.queue.fail_waiting(NotStarted())  # the callers retry on the serving generation
        while self.queue.idle:
            self.queue.idle.popleft().close()
        if self.queue.busy == 0 and not self.running_tasks:
            self.stop()

    def stop(self) -> None:
        self.retired = True
        if self.template is not None and not self.template.closed:
            with contextlib.suppress(ConnectionResetError):
                self.template.send({"kind": Kind.EXIT})
            self.template.close()
        self.tasks.spawn(self.reap())

    async def reap(self, grace: float = 5.0) -> None:
        """Wait for the template to exit; kill it after ``grace`` seconds."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            # Our own child, not yet reaped: the only process this may signal.
            if process.returncode is None and process.pid > 1:
                process.kill()
                await process.wait()

    def status(self) -> dict[str, Any]:
        return {
            "generation": self.number,
            "pid": self.process.pid if self.process else None,
            "notebooks": self.notebooks,
            "functions": sorted(self.functions),
            "load_errors": [error.to_data() for error in self.errors],
            "older_versions": self.older_versions,
            "idle_workers": len(self.queue.idle),
            "busy_workers": self.queue.busy,
            "calls_done": self.calls_done,
            "tasks": self.task_names,
            "running_tasks": len(self.running_tasks),
        }
