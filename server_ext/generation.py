"""A generation: one template process with the notebooks as they were on disk, and its workers.

A reload starts a new generation; the old one finishes its calls and exits.
Workers are forked ahead of demand (``prefork``) so the fork is off the call path.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from .discovery import Signature
from .links import Link

if TYPE_CHECKING:
    from .host import Host

__all__ = ["Generation", "LoadFailed", "NotStarted"]


class LoadFailed(Exception):
    """The template process ended before it reported what it loaded."""


class NotStarted(Exception):
    """A call never reached a worker (the worker or its template was already gone): safe to retry."""


class Generation:
    """One template and the workers forked from it."""

    def __init__(self, host: Host, number: int, notebooks: list[str], signature: Signature) -> None:
        self.host = host
        self.log: logging.Logger = host.log
        self.number = number
        self.notebooks = notebooks
        self.signature = signature
        self.process: asyncio.subprocess.Process | None = None
        self.template: Link | None = None
        self.loaded: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.functions: dict[str, dict[str, Any]] = {}
        self.errors: list[dict[str, Any]] = []
        self.idle: collections.deque[Link] = collections.deque()
        self.waiters: collections.deque[asyncio.Future[Link]] = collections.deque()
        self.spawning = 0
        self.busy = 0
        self.links: set[Link] = set()
        self.retired = False
        self.is_lost = False
        self.calls_done = 0

    # -- the template ------------------------------------------------------
    async def start(self) -> None:
        host = self.host
        command = [
            host.python, "-m", "greenroom.server_ext.runtime.template",
            "--socket", host.socket_path, "--generation", str(self.number), "--root", host.root,
            "--memory-limit", str(host.worker_memory_limit), "--max-message-size", str(host.max_message_size),
        ]
        if host.persistent:
            command.append("--persistent")
        env = dict(os.environ, GREENROOM_RUNTIME_KEY=host.runtime_key, PYTHONUNBUFFERED="1")
        for name in ("GREENROOM_URL", "GREENROOM_TOKEN", "GREENROOM_KERNEL_ID"):
            env.pop(name, None)
        self.process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, env=env, cwd=host.root, start_new_session=True
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self.notebooks).encode() + b"\n")
        await self.process.stdin.drain()
        self.process.stdin.close()
        self.host.spawn(self._watch_process())

    async def _watch_process(self) -> None:
        assert self.process is not None
        code = await self.process.wait()
        if not self.loaded.done():
            self.loaded.set_exception(LoadFailed(f"the runtime process exited with code {code} while loading"))
        if not self.retired:
            self.log.warning("greenroom: runtime generation %d ended (exit code %s)", self.number, code)
            self.host.on_generation_lost(self)
        self.host.generations.pop(self.number, None)

    def on_template_message(self, route: dict[str, Any]) -> None:
        kind = route.get("kind")
        if kind == "loaded" and not self.loaded.done():
            self.functions = {f["name"]: f for f in route.get("functions", [])}
            self.errors = list(route.get("errors", []))
            if route.get("output"):
                self.log.info("greenroom: output while loading server notebooks:\n%s", route["output"])
            self.loaded.set_result(route)

    # -- workers -----------------------------------------------------------
    def _target(self) -> int:
        """How many workers should be idle or being forked: never more than ``max_workers`` alive."""
        if self.host.persistent:
            return max(self.host.workers, min(self.busy + len(self.waiters), self.host.max_workers)) - self.busy
        return max(0, min(self.host.prefork + len(self.waiters), self.host.max_workers - self.busy))

    def _replenish(self) -> None:
        if self.retired or self.template is None or self.template.closed:
            return
        deficit = self._target() - len(self.idle) - self.spawning
        if deficit > 0:
            self.spawning += deficit
            self.template.send({"kind": "spawn", "count": deficit}, b"")

    def attach_template(self, link: Link) -> None:
        self.template = link
        self._replenish()

    def attach_worker(self, link: Link) -> None:
        self.spawning = max(0, self.spawning - 1)
        self.links.add(link)
        if self.retired:
            link.close()
            return
        self._offer(link)

    def _offer(self, link: Link) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(link)
                return
        self.idle.append(link)

    async def acquire(self) -> Link:
        """A worker for one call: an idle one, else wait for one being forked."""
        if self.retired:
            raise NotStarted
        while self.idle:
            link = self.idle.popleft()
            if not link.closed:
                self.busy += 1
                if not self.idle:
                    self._replenish()  # the last spare: fork now; otherwise after the call (release), off its path
                return link
        waiter: asyncio.Future[Link] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self._replenish()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result(), reusable=not waiter.result().closed)
            raise
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def release(self, link: Link, reusable: bool) -> None:
        """Give a worker back after a call; fresh-state workers are never reused."""
        self.busy = max(0, self.busy - 1)
        self.calls_done += 1
        if reusable and self.host.persistent and not self.retired and not link.closed:
            self._offer(link)
        else:
            link.close()
        self._replenish()
        if self.retired and self.busy == 0:
            self.stop()

    def kill(self, link: Link) -> None:
        """Stop a worker from outside (timeout, cancel): the template kills its own child."""
        link.close()
        if self.template is not None and not self.template.closed:
            self.template.send({"kind": "kill", "pid": link.pid}, b"")

    def busy_links(self) -> list[Link]:
        """Workers running a call now."""
        return [link for link in self.links if link.reply is not None and not link.closed]

    def on_worker_lost(self, link: Link) -> None:
        self.links.discard(link)
        if link in self.idle:
            self.idle.remove(link)
        self._replenish()

    # -- the end -----------------------------------------------------------
    def lost(self) -> None:
        """The template died: waiting calls go elsewhere, nothing more is handed out."""
        self.is_lost = True
        self.retire()

    def retire(self) -> None:
        """Finish the calls in flight, then stop."""
        self.retired = True
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_exception(NotStarted())  # the caller retries on the serving generation
        while self.idle:
            self.idle.popleft().close()
        if self.busy == 0:
            self.stop()

    def stop(self) -> None:
        self.retired = True
        if self.template is not None and not self.template.closed:
            try:
                self.template.send({"kind": "exit"}, b"")
            except ConnectionResetError:
                pass
            self.template.close()
        self.host.spawn(self._reap())

    async def _reap(self, grace: float = 5.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            await asyncio.wait_for(process.wait(), grace)
        except asyncio.TimeoutError:
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
            "load_errors": self.errors,
            "idle_workers": len(self.idle),
            "busy_workers": self.busy,
            "calls_done": self.calls_done,
        }

