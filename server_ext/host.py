"""The host: routes calls from clients to runtime workers, keeps sessions, reloads notebooks.

It runs on the Jupyter server's event loop and never runs server code itself;
nothing here blocks (file scans go to a thread).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hmac
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from greenroom.errors import (
    ExecutionTerminatedError,
    GreenroomError,
    NoServerFunctionError,
    TimeoutError,
    WireError,
)
from greenroom.wire import Parts

from .credentials import Caller, Credentials
from .discovery import Signature, find_server_notebooks, signature_of
from .generation import Generation, LoadFailed, NotStarted
from .links import Link

__all__ = ["Host", "error_reply"]

Reply = tuple[dict[str, Any], list[bytes | memoryview]]
EMPTY_SESSION: tuple[bytes, list[bytes | memoryview]] = (b"{}", [])


def error_reply(error_class: type[GreenroomError], message: str) -> Reply:
    """A reply carrying a greenroom error raised by the host itself."""
    data = {"type": error_class.__name__, "module": "greenroom.errors", "message": message, "frames": [], "args": None}
    return {"ok": False}, [json.dumps(data).encode()]


def _describe_load_error(error: dict[str, Any]) -> str:
    where = f"cell {error.get('cell')}, line {error.get('line')}" if error.get("cell") else "reading the file"
    return f"{error.get('notebook')}: {error.get('type')} in {where}: {error.get('message')}"


class Host:
    """Everything the extension does besides HTTP: runtime generations, calls, sessions."""

    def __init__(self, app: Any, root: str, log: logging.Logger,
                 live_kernel_ids: Callable[[], Iterable[str]] | None = None) -> None:
        self.app = app
        self.live_kernel_ids = live_kernel_ids
        self.log = log
        self.root = os.path.abspath(os.path.expanduser(root))
        self.patterns = list(app.server_notebooks)
        self.persistent = bool(app.persistent)
        self.call_timeout = float(app.call_timeout)
        self.prefork = max(1, int(app.prefork))
        self.workers = max(1, int(app.workers))
        self.max_workers = max(self.workers, self.prefork, int(app.max_workers))
        self.worker_memory_limit = int(app.worker_memory_limit)
        self.max_message_size = int(app.max_message_size)
        self.max_calls_per_session = int(app.max_calls_per_session)
        self.python = app.python or sys.executable
        self.credentials = Credentials()
        self.runtime_key = secrets.token_hex(32)
        self.socket_dir = tempfile.mkdtemp(prefix="greenroom-")
        os.chmod(self.socket_dir, 0o700)
        self.socket_path = os.path.join(self.socket_dir, "host.sock")
        atexit.register(self._remove_files)  # if the process ends without stop(); unregistered by stop()
        self.sessions: dict[str, tuple[bytes, list[bytes | memoryview]]] = {}
        self.in_flight: dict[str, int] = {}
        self.notebooks: list[str] = []
        self.generation: Generation | None = None
        self.generations: dict[int, Generation] = {}
        self.next_generation = 1
        self.loading: asyncio.Task[None] | None = None
        self.forced_reload: asyncio.Task[None] | None = None
        self.loading_signature: Signature | None = None
        self.rejected: tuple[Signature, list[dict[str, Any]]] | None = None
        self.ready = asyncio.Event()
        self.stopping = False
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.call_ids = 0

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._on_runtime_connection, self.socket_path, limit=1 << 20)
        os.chmod(self.socket_path, 0o600)
        self.notebooks = await asyncio.to_thread(find_server_notebooks, self.root, self.patterns)
        self.log.info("greenroom: %d server notebook(s) under %s", len(self.notebooks), self.root)
        await self._reload(signature_of(self.root, self.notebooks))
        self.ready.set()
        self._watcher = self.spawn(self._watch_files())

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        """End every runtime process this host started, then every task it runs."""
        self.stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
        generations = list(self.generations.values())
        for generation in generations:
            generation.stop()
        await asyncio.gather(*(generation._reap(grace=3.0) for generation in generations))
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._remove_files()
        atexit.unregister(self._remove_files)

    def _remove_files(self) -> None:
        self.credentials.remove_runtime_file()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(self.app.reload_poll_interval)
            self.prune_sessions()
            try:
                self.notebooks = await asyncio.to_thread(find_server_notebooks, self.root, self.patterns)
                await self.current()
            except Exception:  # the watcher must survive anything
                self.log.exception("greenroom: checking server notebooks failed")

    def prune_sessions(self) -> None:
        """Forget the sessions of kernels that no longer exist."""
        if self.live_kernel_ids is None:
            return
        live = {f"kernel:{kernel_id}" for kernel_id in self.live_kernel_ids()}
        for key in [key for key in self.sessions if key.startswith("kernel:") and key not in live]:
            del self.sessions[key]

    # -- generations -------------------------------------------------------
    async def current(self) -> Generation | None:
        """The generation that serves the next call, reloading first if a notebook changed."""
        await self.ready.wait()
        signature = signature_of(self.root, self.notebooks)
        serving = self.generation
        if serving is None or signature != serving.signature:
            if self.rejected is None or self.rejected[0] != signature:
                await self._reload(signature)
        return self.generation

    def _serving_unchanged(self) -> Generation | None:
        """The serving generation when no notebook changed (the common case: no await, no task)."""
        serving = self.generation
        if self.ready.is_set() and serving is not None and signature_of(self.root, self.notebooks) == serving.signature:
            return serving
        return None

    async def _current_within(self, seconds: float) -> Generation | None:
        """:meth:`current`, waiting at most ``seconds`` for a reload; the serving generation answers meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                return await asyncio.shield(self.current())
        except asyncio.TimeoutError:
            return self.generation

    async def _reload(self, signature: Signature) -> None:
        if self.loading is None or self.loading_signature != signature:
            self.loading_signature = signature
            self.loading = self.spawn(self._load(signature))
        task = self.loading
        await asyncio.shield(task)
        if self.loading is task:
            self.loading = None

    async def _load(self, signature: Signature) -> None:
        number = self.next_generation
        self.next_generation += 1
        notebooks = [entry[0] for entry in signature]
        generation = Generation(self, number, notebooks, signature)
        self.generations[number] = generation
        try:
            await generation.start()
            await asyncio.wait_for(asyncio.shield(generation.loaded), self.app.load_timeout)
        except (LoadFailed, OSError, asyncio.TimeoutError) as error:
            generation.errors = [{"notebook": "(all)", "cell": 0, "line": 0, "type": type(error).__name__,
                                  "message": str(error) or "loading took too long"}]
        for error in generation.errors:
            self.log.warning("greenroom: server notebook failed to load: %s", _describe_load_error(error))
        previous = self.generation
        broken_before = {e["notebook"] for e in previous.errors} if previous else set()
        broken_now = {e["notebook"] for e in generation.errors}
        if generation.loaded.done() and not generation.loaded.exception() and (previous is None or broken_now <= broken_before):
            self.generation = generation
            self.rejected = None
            self.log.info("greenroom: generation %d serves %d function(s) from %d notebook(s)",
                          number, len(generation.functions), len(notebooks))
            if previous is not None:
                previous.retire()
        else:
            self.rejected = (signature, generation.errors)
            self.log.warning("greenroom: keeping generation %s: the new version of the server notebooks did not load",
                             previous.number if previous else None)
            generation.stop()

    def on_generation_lost(self, generation: Generation) -> None:
        generation.lost()
        if generation is self.generation and not self.stopping:
            self.generation = None  # the next call (or the watcher) starts a new one
            self.rejected = None

    # -- runtime connections -----------------------------------------------
    async def _on_runtime_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link: Link | None = None
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            hello_link = Link(reader, writer, "?", 0, 0)
            route, _ = await asyncio.wait_for(hello_link.receive(4096), 30)
            key = str(route.get("key", ""))
            generation = self.generations.get(route.get("generation"))  # type: ignore[arg-type]
            if route.get("kind") != "hello" or not hmac.compare_digest(key.encode(), self.runtime_key.encode()) or generation is None:
                writer.close()
                return
            link = Link(reader, writer, str(route.get("role")), int(route.get("pid", 0)), generation.number)
            if link.role == "template":
                generation.attach_template(link)
            else:
                generation.attach_worker(link)
            while True:
                route, parts = await link.receive(self.max_message_size)
                if link.role == "template":
                    generation.on_template_message(route)
                elif route.get("kind") == "result" and link.reply is not None and not link.reply.done():
                    link.reply.set_result((route, parts))
                elif route.get("kind") == "call":
                    nested = self.spawn(self._nested_call(link, route, parts))
                    link.nested.add(nested)
                    nested.add_done_callback(link.nested.discard)
        except (asyncio.IncompleteReadError, ConnectionError, WireError, asyncio.TimeoutError, ValueError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            if link is not None:
                link.closed = True
                if link.reply is not None and not link.reply.done():
                    link.reply.set_exception(ExecutionTerminatedError("worker ended"))
                generation = self.generations.get(link.generation)
                if generation is not None and link.role == "worker":
                    generation.on_worker_lost(link)
                elif generation is not None and link.role == "template" and not generation.retired:
                    self.log.warning("greenroom: runtime generation %d lost its template process", generation.number)
                    self.on_generation_lost(generation)

    async def _nested_call(self, link: Link, route: dict[str, Any], parts: Parts) -> None:
        caller = link.caller or Caller("server", "", "server")
        reply_route, reply_parts = await self.call(caller, str(route.get("name")), parts[1], list(parts[2:]))
        reply_route.update(kind="reply", id=route.get("id"))
        with contextlib.suppress(ConnectionResetError):
            link.send(reply_route, *reply_parts)

    # -- calls -------------------------------------------------------------
    def _no_function(self, name: str, generation: Generation | None) -> Reply:
        message = f"no server function named {name!r}"
        if generation is not None and generation.functions:
            shown = sorted(generation.functions)[:20]
            message += f"; available: {', '.join(shown)}"
        errors = (generation.errors if generation else []) + (self.rejected[1] if self.rejected else [])
        if errors:
            message += "; note: " + "; ".join(_describe_load_error(e) for e in errors[:5])
        return error_reply(NoServerFunctionError, message)

    async def call(self, caller: Caller, name: str, payload: bytes | memoryview, buffers: list[bytes | memoryview]) -> Reply:
        """Run ``name`` for ``caller``; always returns a reply, errors included."""
        count = self.in_flight.get(caller.session_key, 0)
        if count >= self.max_calls_per_session:
            return error_reply(GreenroomError, f"too many concurrent calls from this session (limit {self.max_calls_per_session}); wait for some to finish")
        self.in_flight[caller.session_key] = count + 1
        try:
            return await self._call(caller, name, payload, buffers)
        finally:
            remaining = self.in_flight.get(caller.session_key, 1) - 1
            if remaining > 0:
                self.in_flight[caller.session_key] = remaining
            else:
                self.in_flight.pop(caller.session_key, None)

    async def _call(self, caller: Caller, name: str, payload: bytes | memoryview, buffers: list[bytes | memoryview]) -> Reply:
        loop = asyncio.get_running_loop()
        for _attempt in range(3):
            generation = self._serving_unchanged() or await self._current_within(self.call_timeout)
            info = generation.functions.get(name) if generation else None
            if generation is None or info is None:
                return self._no_function(name, generation)
            timeout = float(info.get("timeout") or self.call_timeout)
            try:
                return await self._run(generation, caller, name, payload, buffers, timeout, loop.time() + timeout)
            except NotStarted:
                continue  # the worker or its generation was gone before the call reached it: nothing ran
        return error_reply(ExecutionTerminatedError, f"no worker could start {name!r}: the runtime keeps failing")

    async def _run(self, generation: Generation, caller: Caller, name: str, payload: bytes | memoryview,
                   buffers: list[bytes | memoryview], timeout: float, deadline: float) -> Reply:
        self.call_ids += 1
        session_payload, session_buffers = self.sessions.get(caller.session_key, EMPTY_SESSION)
        route = {"kind": "call", "cid": self.call_ids, "name": name, "nbuf": len(buffers),
                 "caller": [caller.client_type, caller.client_id]}
        link: Link | None = None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):  # one timer for waiting for a worker and for the answer
                link = await generation.acquire()
                link.caller = caller
                link.reply = loop.create_future()
                link.send(route, payload, session_payload, *buffers, *session_buffers)
                if link.writer.transport.is_closing():
                    link.closed = True
                    raise NotStarted  # the write failed at once: the worker was already dead
                reply, parts = await link.reply
        except asyncio.TimeoutError:
            if link is not None:
                generation.kill(link)
            self.log.warning("greenroom: %s() stopped after %.3g s (timeout)", name, timeout)
            return error_reply(TimeoutError, f"server function {name!r} did not finish within {timeout:g} s and was stopped")
        except (ExecutionTerminatedError, ConnectionResetError):
            return error_reply(ExecutionTerminatedError, f"the worker running {name!r} ended before it answered "
                               "(it exited, crashed or ran out of memory); the next call gets a new worker")
        except asyncio.CancelledError:
            if link is not None:
                generation.kill(link)
            raise
        finally:
            if link is not None:
                for nested in list(link.nested):
                    nested.cancel()  # server-to-server calls stop with the call that made them
                link.reply = None
                link.caller = None
                generation.release(link, reusable=not link.closed)
        if reply.get("output"):
            self.log.info("greenroom: output of %s():\n%s", name, reply["output"])
        nbuf = int(reply.get("nbuf", 0))
        if reply.get("session"):
            self.sessions[caller.session_key] = (bytes(parts[2]), [bytes(p) for p in parts[3 + nbuf :]])
        return {"ok": bool(reply.get("ok"))}, [parts[1], *parts[3 : 3 + nbuf]]

    # -- introspection -----------------------------------------------------
    def functions(self) -> list[dict[str, Any]]:
        generation = self.generation
        return sorted(generation.functions.values(), key=lambda f: f["name"]) if generation else []

    def status(self) -> dict[str, Any]:
        generation = self.generation
        return {
            "mode": "persistent" if self.persistent else "fresh",
            "serving": generation.status() if generation else None,
            "rejected_reload_errors": self.rejected[1] if self.rejected else [],
            "sessions": len(self.sessions),
            "calls_in_flight": sum(self.in_flight.values()),
        }

    async def reload(self) -> dict[str, Any]:
        """Rescan and reload now, even if nothing changed on disk."""
        if self.forced_reload is None or self.forced_reload.done():
            self.forced_reload = self.spawn(self._forced_reload())
        await asyncio.shield(self.forced_reload)  # concurrent requests share one reload
        return self.status()

    async def _forced_reload(self) -> None:
        self.notebooks = await asyncio.to_thread(find_server_notebooks, self.root, self.patterns)
        self.rejected = None
        self.loading_signature = None  # load again even if nothing changed on disk
        await self._reload(signature_of(self.root, self.notebooks))

