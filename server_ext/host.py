"""The host: runs calls from clients on runtime workers, and keeps each caller's session.

A :class:`Host` is built from a :class:`~greenroom.server_ext.config.HostConfig` and a root
folder; it knows no application, no HTTP and no identity scheme, so every embedding (the
Jupyter server extension, ``greenroom serve``, a standalone host) shares it.  It runs on the
embedding's event loop and never runs server code itself; nothing here blocks (file scans go
to a thread).  Every call gets a :class:`~greenroom.protocol.Reply`, errors included.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

from greenroom import errors
from greenroom.protocol import CallRequest, CallResult, Reply, SessionParts
from greenroom.wire import Part

from .calllog import CallLog
from .config import HostConfig
from .credentials import Credentials
from .dask_runtime import DaskRuntime
from .generation import Generation
from .generation_parts import NotStarted, RuntimePlace, timed_out
from .identity import Caller
from .links import Link, RuntimeListener
from .looptasks import LoopTasks
from .policy import RateLimiter, refusal
from .reloader import Reloader
from .sessions import Sessions
from .tasks import TaskManager
from .taskstore import TaskStore

__all__ = ["Host"]

#: Attempts at a call whose worker was gone before the call reached it (nothing ran).
CALL_ATTEMPTS = 3
#: Seconds between forced reloads (each re-runs every notebook).
FORCED_RELOAD_INTERVAL = 2.0


class Host:
    """Runtime generations, calls and sessions for the server notebooks under ``root``."""

    def __init__(
        self,
        config: HostConfig,
        root: str,
        log: logging.Logger,
        live_kernel_ids: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.config = config
        self.root = os.path.abspath(os.path.expanduser(root))
        #: The one greenroom logger: a child of the embedding's, so its name says "greenroom".
        self.log = log.getChild("greenroom")
        self.live_kernel_ids = live_kernel_ids
        self.credentials = Credentials()
        self.socket_dir = tempfile.mkdtemp(prefix="greenroom-")
        os.chmod(self.socket_dir, 0o700)
        atexit.register(self._remove_files)  # if the process ends without stop(); unregistered by stop()
        self.tasks = LoopTasks()
        place = RuntimePlace(self.root, os.path.join(self.socket_dir, "host.sock"), secrets.token_hex(32))
        data_dir = config.data_dir or os.path.join(self.root, ".greenroom")
        #: Background tasks (their records live under ``data_dir`` from the first task on).
        self.background = TaskManager(
            config,
            TaskStore(data_dir, config.task_record_days),
            self.log,
            self.tasks,
            serving=lambda: self.reloader.serving,
            nested_call=self.call,
        )
        self.reloader = Reloader(
            config,
            place,
            self.log,
            self.tasks,
            nested_call=self.call,
            lend_session=self.lend_session,
            task_hooks=self.background,
        )
        self.listener = RuntimeListener(
            place.socket_path, place.key, self.reloader.generations.get, self.log, self.tasks
        )
        self.sessions = Sessions()
        self.in_flight: dict[str, int] = {}
        self.rate_limiter = RateLimiter()
        self.in_flight_bytes: dict[str, int] = {}
        #: Held by the call of a session that uses ``server.session``, from its first use to its end.
        self.session_locks: dict[str, asyncio.Lock] = {}
        self.stopping = False
        self.call_ids = 0
        self._last_forced_reload = float("-inf")
        self.call_log = CallLog(data_dir, self.log) if config.call_log else None
        #: The Dask cluster calls run on, when ``dask_scheduler`` is set.
        self.dask = DaskRuntime(config, self.root, self.log, self.background) if config.dask_scheduler else None
        if self.dask is not None:
            self.background.spawn_remote = self.dask.spawn_task  # background tasks run on the cluster too

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        await self.background.start()
        await self.listener.start()
        await self.reloader.start()
        self.tasks.spawn(self._watch_files())
        if self.call_log is not None:
            self.tasks.spawn(self.call_log.run())

    async def stop(self) -> None:
        """End every runtime process this host started, then every task it runs."""
        self.stopping = True
        self.background.stopping = True  # tasks cut off now end as missing (their records say so at the next start)
        await self.reloader.stop()
        self.listener.close()
        await self.tasks.cancel_all()
        await self.background.stop()
        if self.dask is not None:
            await self.dask.close()
        if self.call_log is not None:
            await self.call_log.flush()
        self._remove_files()
        atexit.unregister(self._remove_files)

    def _remove_files(self) -> None:
        self.credentials.remove_runtime_file()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_poll_interval)
            self.prune_sessions()
            self.rate_limiter.prune(asyncio.get_running_loop().time())
            try:
                await self.reloader.rescan()
                await self.reloader.current()
            except Exception:  # the watcher must survive anything
                self.log.exception("checking server notebooks failed")

    def prune_sessions(self) -> None:
        """Forget the sessions of kernels that no longer exist."""
        if self.live_kernel_ids is None:
            return
        live = {f"kernel:{kernel_id}" for kernel_id in self.live_kernel_ids()}
        self.sessions.prune(lambda key: not key.startswith("kernel:") or key in live)

    def end_session(self, caller: Caller) -> None:
        """A connection closed: forget its session unless it belongs to a kernel (which may reconnect)."""
        if caller.client_type != "kernel":
            self.sessions.forget(caller.session_key)

    # -- calls -------------------------------------------------------------
    async def call(
        self,
        caller: Caller,
        name: str,
        payload: Part,
        buffers: list[Part],
        queue_key: str | None = None,
        lent: SessionParts | None = None,
    ) -> Reply:
        """Run ``name`` for ``caller``; always returns a reply, errors included.  Calls wait for a worker in
        turn by ``queue_key`` (the caller's session; a nested call's is its caller's, one level down).  A
        server-to-server call may be ``lent`` its caller's session: its changes come back in the reply.
        The call log, when on, gets one row per call, refused ones included."""
        started = time.monotonic()
        reply = await self._counted_call(caller, name, payload, buffers, queue_key, lent)
        if self.call_log is not None:
            user = caller.user.name if caller.user is not None else ""
            elapsed_ms = (time.monotonic() - started) * 1000
            self.call_log.record(user, caller.session_key, name, elapsed_ms, reply.outcome())
        return reply

    async def _counted_call(
        self,
        caller: Caller,
        name: str,
        payload: Part,
        buffers: list[Part],
        queue_key: str | None,
        lent: SessionParts | None,
    ) -> Reply:
        key = caller.session_key
        size = len(payload) + sum(len(buffer) for buffer in buffers)
        refusal = self._refusal(key, len(payload), size)
        if refusal is not None:
            return Reply.of_error(refusal)
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.in_flight_bytes[key] = self.in_flight_bytes.get(key, 0) + size
        try:
            return await self._call(caller, name, payload, buffers, queue_key or key, lent)
        finally:
            for counts, amount in ((self.in_flight, 1), (self.in_flight_bytes, size)):
                remaining = counts.get(key, amount) - amount
                if remaining > 0:
                    counts[key] = remaining
                else:
                    counts.pop(key, None)

    def _refusal(self, key: str, payload_size: int, size: int) -> errors.GreenroomError | None:
        """Why a call (``payload_size`` bytes of JSON, ``size`` bytes in all) is refused before it takes a
        worker, if it is."""
        config = self.config
        if self.in_flight.get(key, 0) >= config.max_calls_per_session:
            return errors.GreenroomError(
                f"too many concurrent calls from this session (limit {config.max_calls_per_session}); "
                "wait for some to finish"
            )
        if payload_size > config.max_payload_size:
            return errors.SerializationError(
                f"arguments: {payload_size} bytes of JSON, more than max_payload_size ({config.max_payload_size} "
                "bytes); send large data as Media"
            )
        if self.in_flight_bytes.get(key, 0) + size > config.max_session_bytes:
            return errors.GreenroomError(
                f"this session already has {self.in_flight_bytes.get(key, 0)} bytes of arguments in flight; with "
                f"{size} more it would pass max_session_bytes ({config.max_session_bytes}): wait for calls to finish"
            )
        return None

    async def _call(
        self,
        caller: Caller,
        name: str,
        payload: Part,
        buffers: list[Part],
        queue_key: str,
        lent: SessionParts | None,
    ) -> Reply:
        loop = asyncio.get_running_loop()
        reloader = self.reloader
        admitted = False
        for _attempt in range(CALL_ATTEMPTS):
            generation = reloader.serving_unchanged() or await reloader.current_within(self.config.call_timeout)
            info = generation.functions.get(name) if generation else None
            if generation is None or info is None:
                return Reply.of_error(self.reloader.missing_function(name, generation))
            if not admitted:  # once per call: a retry after a lost worker is the same call
                refused = refusal(caller, name, info, self.rate_limiter, loop.time())
                if refused is not None:
                    return Reply.of_error(refused)
                admitted = True
            timeout = float(info.get("timeout") or self.config.call_timeout)
            self.call_ids += 1
            request = CallRequest(self.call_ids, name, (caller.client_type, caller.client_id), payload, buffers)
            if caller.user is not None:
                request.user = (caller.user.name, sorted(caller.user.groups))
            if lent is not None:
                request.session, request.session_buffers = lent
            try:
                if self.dask is not None:
                    result = await self.dask.call(
                        generation, caller, queue_key, request, timeout, loop.time() + timeout, self.sessions, self.call
                    )
                else:
                    result = await self._run(generation, caller, queue_key, request, timeout, loop.time() + timeout)
            except NotStarted:
                continue  # the worker or its generation was gone before the call reached it: nothing ran
            if isinstance(result, Reply):
                return result
            if result.output:
                self.log.info("output of %s():\n%s", name, result.output)
            reply = result.reply()
            if lent is not None and result.session is not None:
                reply.session = (result.session, result.session_buffers)  # back to the caller's worker
            return reply
        return Reply.of_error(
            errors.ExecutionTerminatedError(f"no worker could start {name!r}: the runtime keeps failing")
        )

    async def _run(
        self,
        generation: Generation,
        caller: Caller,
        queue_key: str,
        request: CallRequest,
        timeout: float,
        deadline: float,
    ) -> CallResult | Reply:
        """Hand ``request`` to a worker of ``generation`` and wait for its result, or a reply saying why not."""
        link: Link | None = None
        result: CallResult | None = None
        try:
            async with asyncio.timeout_at(deadline):  # one timer for waiting for a worker and for the answer
                link = await generation.acquire(queue_key)
                link.caller, link.queue_key, link.call_id = caller, queue_key, request.call_id
                link.reply = asyncio.get_running_loop().create_future()
                link.send_parts(request.pack())
                if link.writer.transport.is_closing():
                    link.closed = True
                    raise NotStarted  # the write failed at once: the worker was already dead
                result = await link.reply
                return result
        except TimeoutError:
            if link is not None:
                generation.kill(link)
            return timed_out(self.log, request.name, timeout)
        except (errors.ExecutionTerminatedError, ConnectionResetError):
            return Reply.of_error(
                errors.ExecutionTerminatedError(
                    f"the worker running {request.name!r} ended before it answered (it exited, crashed or ran out of "
                    "memory); the next call gets a new worker"
                )
            )
        except asyncio.CancelledError:
            if link is not None:
                generation.kill(link)
            raise
        finally:
            if link is not None:
                for nested in list(link.nested):
                    nested.cancel()  # server-to-server calls stop with the call that made them
                self.sessions.finish(link, result)
                link.reply = None
                link.caller = None
                generation.release(link, queue_key)

    async def lend_session(self, link: Link) -> Reply:
        """A worker's first use of its call's session (see :mod:`~greenroom.server_ext.sessions`)."""
        return await self.sessions.lend(link)

    # -- introspection -----------------------------------------------------
    def functions(self) -> list[dict[str, Any]]:
        generation = self.reloader.serving
        return sorted(generation.functions.values(), key=lambda f: f["name"]) if generation else []

    def status(self, caller: Caller | None = None) -> dict[str, Any]:
        """The host's state; with ``caller``, also who the host takes them for (``you``)."""
        generation = self.reloader.serving
        rejected = self.reloader.rejected
        you = (
            {
                "client_type": caller.client_type,
                "client_id": caller.client_id,
                "owner": caller.owner,
                "user": None if caller.user is None else caller.user.name,
            }
            if caller is not None
            else None
        )
        return {
            **({"you": you} if you else {}),
            "mode": "persistent" if self.config.persistent else "fresh",
            "serving": generation.status() if generation else None,
            "rejected_reload_errors": [error.to_data() for error in rejected[1]] if rejected else [],
            "sessions": len(self.sessions),
            "calls_in_flight": sum(self.in_flight.values()),
            "tasks_running": self.background.running,
            "tasks_waiting": len(self.background.pending),
            **({"dask": self.dask.status()} if self.dask is not None else {}),
        }

    async def reload(self, caller: Caller) -> Reply:
        """Rescan and reload now, even if nothing changed on disk: the server's owner only (it re-runs every
        notebook and, in persistent mode, resets everyone's globals), at most once per
        ``FORCED_RELOAD_INTERVAL`` seconds; requests while one runs share it."""
        if not caller.owner:
            return Reply.of_error(
                PermissionError(
                    "a forced reload is for the server's owner; saving a server notebook reloads it for everyone"
                )
            )
        loop = asyncio.get_running_loop()
        if not self.reloader.forcing():
            wait = self._last_forced_reload + FORCED_RELOAD_INTERVAL - loop.time()
            if wait > 0:
                return Reply.of_error(
                    errors.GreenroomError(
                        f"the server notebooks were reloaded less than {FORCED_RELOAD_INTERVAL:g} s ago; "
                        f"try again in {wait:.1f} s"
                    )
                )
            self._last_forced_reload = loop.time()
        await self.reloader.reload_now()
        return Reply.of_value(self.status(caller))
