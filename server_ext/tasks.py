"""Background tasks on the host: launch, a slot each (``max_tasks``; the rest wait in order), news pushed
to every holder, stopping from outside, and records.

Server code launches a task (a ``launch`` request over its worker's link); the serving generation's
template forks the task's process, which connects back, receives its call and sends its state
(coalesced at the source) and its result.  Each change is pushed to every client connection that
watches the task (:meth:`TaskManager.watch`); server code asks instead (``task_get``, ``task_wait``).
``kill`` and ``task_timeout`` stop a task's process group through its template.

Invariant: every task ends with a status its holders are told and its record keeps (``completed``,
``failed`` or ``killed`` with the reason); no task stays ``running`` without a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from greenroom import errors
from greenroom.protocol import CallRequest, CallResult, Kind, Reply, Request, error_payload, runtime_message_limit
from greenroom.taskmessages import TaskStatus, TaskUpdate
from greenroom.wire import Part, Parts, Route

from .config import HostConfig
from .dask_tasks import RemoteTaskLink
from .generation import Generation
from .generation_parts import NestedCall
from .identity import Caller
from .looptasks import LoopTasks
from .taskrecord import PushTo, RunningTaskLink, TaskRecord, may_see
from .taskstore import INLINE_LIMIT, TaskStore

__all__ = ["PushTo", "TaskManager"]

#: Seconds a task's process has to connect after the template was asked to fork it.
START_TIMEOUT = 60.0
#: Most tasks waiting for a slot; a launch past it is refused (each waiting task holds its arguments).
MAX_PENDING = 1000
#: Seconds between prunings of old task records.
PRUNE_INTERVAL = 3600.0
#: Ended tasks kept in memory (the rest are read back from their records when asked for).
KEEP_ENDED = 1000


class TaskManager:
    """Every background task of one host."""

    def __init__(
        self,
        config: HostConfig,
        store: TaskStore,
        log: logging.Logger,
        loop_tasks: LoopTasks,
        serving: Callable[[], Generation | None],
        nested_call: NestedCall,
    ) -> None:
        self.config = config
        self.store = store
        self.log = log
        self.loop_tasks = loop_tasks
        self.serving = serving
        self.nested_call = nested_call
        self.records: dict[str, TaskRecord] = {}
        self.pending: deque[TaskRecord] = deque()
        self.running = 0
        self.stopping = False
        #: Starts a task's process away from the host (on a Dask worker) and returns its link; None: the
        #: serving generation's template forks it here.
        self.spawn_remote: Callable[[Generation, str], Awaitable[RemoteTaskLink]] | None = None

    async def start(self) -> None:
        missing = await self.store.open()
        if missing:
            self.log.info("%d background task(s) were running when this host last stopped: now missing", missing)
        self.loop_tasks.spawn(self._prune_records())

    async def _prune_records(self) -> None:
        """Drop records past ``task_record_days`` once an hour (the host's start did it once already)."""
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            try:
                await self.store.prune()
            except Exception:  # the records stay a while longer; the host serves on
                self.log.exception("could not prune the background task records")

    async def stop(self) -> None:
        for record in self.records.values():
            for timer in record.timers:
                timer.cancel()
        await asyncio.to_thread(self.store.close)

    # -- answers to server code ----------------------------------------------------
    async def answer(self, caller: Caller, request: Request) -> Reply:
        """A worker's or a task's request about tasks (``request.kind`` in ``Kind.TASK_REQUESTS``)."""
        name = request.name or ""
        try:
            if request.kind == Kind.LAUNCH:
                return self.launch(caller, name, request.payload, request.buffers).reply()
            if request.kind == Kind.TASKS:
                return Reply.of_value(await self.listing(None))
            if request.kind == Kind.TASK_GET:
                return (await self.find(name)).reply()
            if request.kind == Kind.TASK_WAIT:
                return (await self.wait(name, request.payload)).reply()
            if request.kind == Kind.TASK_KILL:
                self.kill_by_id(name)
                return Reply.of_value(None)
        except (LookupError, ValueError, errors.GreenroomError) as error:
            return Reply.of_error(error)
        return Reply.of_error(errors.WireError(f"not a task request: {request.kind!r}"))

    def launch(self, caller: Caller, name: str, payload: Part, buffers: list[Part]) -> TaskUpdate:
        generation = self.serving()
        declared = generation.task_names if generation is not None else []
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise errors.NoServerFunctionError(f"no background task named {name!r} (declared: {known})")
        if len(self.pending) >= MAX_PENDING:
            raise errors.GreenroomError(
                f"{len(self.pending)} background tasks are already waiting for a slot (max_tasks "
                f"{self.config.max_tasks} run at once); launch more when some have ended"
            )
        update = TaskUpdate(secrets.token_hex(16), name, TaskStatus.PENDING, time.time())
        record = TaskRecord(update, caller, payload, buffers)
        self.records[update.task_id] = record
        self.pending.append(record)
        self._save(record)
        self._start_ready()
        return dataclasses.replace(update)

    async def find(self, task_id: str) -> TaskUpdate:
        found = await self._find(task_id)
        if found is None:
            raise LookupError(f"no background task with id {task_id!r}")
        return found[0]

    async def _find(self, task_id: str) -> tuple[TaskUpdate, str, str] | None:
        record = self.records.get(task_id)
        if record is not None:
            return dataclasses.replace(record.update), record.user, record.caller.session_key
        if not (task_id.isalnum() and len(task_id) <= 64):
            return None
        return await self.store.load(task_id)

    async def wait(self, task_id: str, payload: Part) -> TaskUpdate:
        try:
            timeout = json.loads(bytes(payload) or b"null")
        except ValueError:
            raise errors.WireError("task_wait takes a timeout in seconds, or null") from None
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise ValueError("a task's wait timeout is None or a number of seconds >= 0")
        record = self.records.get(task_id)
        if record is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(record.ended.wait(), timeout)
        return await self.find(task_id)

    async def listing(self, caller: Caller | None) -> list[dict[str, Any]]:
        """The tasks ``caller`` may see (None: every task), newest first."""
        seen: dict[str, dict[str, Any]] = {}
        for record in self.records.values():
            if may_see(caller, record.user, record.caller.session_key):
                seen[record.update.task_id] = record.update.info()
        for info, user, session in await self.store.list():
            if info["id"] not in seen and info["id"] not in self.records and may_see(caller, user, session):
                seen[info["id"]] = info
        return sorted(seen.values(), key=lambda info: -float(info["launched"] or 0))

    # -- clients watching ----------------------------------------------------------
    async def watch(self, caller: Caller, task_id: str, key: object, push: PushTo) -> Reply:
        """Push ``task_id``'s news to ``push`` (now, and at each change until it ends), if ``caller`` may see it."""
        found = await self._find(task_id)
        if found is None or not may_see(caller, found[1], found[2]):
            return Reply.of_error(LookupError(f"no background task {task_id!r} that you may see"))
        record = self.records.get(task_id)
        if record is not None and record.update.ended_status is None:
            record.watchers[key] = push
        push(found[0].push())
        return Reply.of_value(None)

    def unwatch(self, key: object) -> None:
        """A client connection closed: it watches nothing any more."""
        for record in self.records.values():
            record.watchers.pop(key, None)

    def _changed(self, record: TaskRecord) -> None:
        if not record.watchers:
            return
        parts = record.update.push()
        for push in list(record.watchers.values()):
            try:
                push(parts)
            except Exception:  # one closed connection must not keep the news from the others
                self.log.exception("could not push task news")

    # -- running -------------------------------------------------------------------
    def _start_ready(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending and self.running < self.config.max_tasks:
            record = self.pending.popleft()
            generation = self.serving()
            name = record.update.name
            if generation is None or name not in generation.task_names or not self._spawn(generation, record):
                self._end(
                    record, TaskStatus.FAILED, errors.ExecutionTerminatedError(f"{name}: no runtime could start it")
                )
                continue
            record.generation = generation
            self.running += 1
            record.update.status, record.update.started = TaskStatus.RUNNING, time.time()
            record.timers.append(loop.call_later(START_TIMEOUT, self._not_started, record))
            if self.config.task_timeout > 0:
                stopped = errors.TimeoutError(
                    f"background task {name!r} did not finish within task_timeout ({self.config.task_timeout:g} s) "
                    "and was killed"
                )
                record.timers.append(loop.call_later(self.config.task_timeout, self.kill, record, stopped))
            self._changed(record)

    def _spawn(self, generation: Generation, record: TaskRecord) -> bool:
        if self.spawn_remote is None:
            return generation.spawn_task(record.update.task_id)
        self.loop_tasks.spawn(self._serve_remote(generation, record))
        return True

    async def _serve_remote(self, generation: Generation, record: TaskRecord) -> None:
        assert self.spawn_remote is not None
        try:
            link = await self.spawn_remote(generation, record.update.task_id)
        except (errors.GreenroomError, OSError) as error:
            self._end(record, TaskStatus.FAILED, error)
            return
        if record.update.ended_status is not None:
            link.kill()  # it ended meanwhile (START_TIMEOUT, the host stopping): so does its process
            return
        await self.serve(link, generation)

    def _not_started(self, record: TaskRecord) -> None:
        if record.link is None and record.update.ended_status is None:
            self._end(
                record,
                TaskStatus.FAILED,
                errors.ExecutionTerminatedError(f"the task's process did not start within {START_TIMEOUT:g} s"),
            )

    async def serve(self, link: RunningTaskLink, generation: Generation) -> None:
        """Run a task's process's link: hand it its call, then read its state and result until it ends."""
        record = self.records.get(link.task_id)
        if (
            record is None
            or record.link is not None
            or record.generation is not generation
            or record.update.ended_status
        ):
            link.close()
            return
        record.link = link
        link.caller, link.queue_key = record.caller, f"task:{link.task_id}"
        if record.kill_reason is not None:
            self._stop_process(record)
        caller = record.caller
        request = CallRequest(
            0, record.update.name, (caller.client_type, caller.client_id), record.payload, record.buffers
        )
        if caller.user is not None:
            request.user = (caller.user.name, sorted(caller.user.groups))
        record.payload, record.buffers = b"", []
        try:
            link.send_parts(request.pack())
            limit = runtime_message_limit(self.config.max_message_size)
            while True:
                route, parts = await link.receive(limit)
                self._dispatch(record, link, route, parts)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended
        except errors.WireError as error:
            self.log.warning("dropped the link to %r: %s", link, error)
        finally:
            link.close()
            for nested in list(link.nested):
                nested.cancel()
            if record.update.ended_status is None and not self.stopping:
                reason = record.kill_reason or errors.ExecutionTerminatedError(
                    f"the process of background task {record.update.name!r} ended before it finished (it exited, "
                    "crashed or ran out of memory)"
                )
                self._end(record, TaskStatus.KILLED if record.kill_reason else TaskStatus.FAILED, reason)

    def _dispatch(self, record: TaskRecord, link: RunningTaskLink, route: Route, parts: Parts) -> None:
        kind = route["kind"]
        if kind == Kind.STATE:
            nbuf = route.get("nbuf", 0)
            if not isinstance(nbuf, int) or isinstance(nbuf, bool) or not 0 <= nbuf == len(parts) - 2:
                raise errors.WireError("a task's state message has its payload and 'nbuf' buffers")
            record.update.state = (parts[1], list(parts[2:]))
            self._changed(record)
        elif kind == Kind.RESULT:
            result = CallResult.unpack(route, parts)
            if result.output:
                self.log.info("output of background task %s:\n%s", record.update.name, result.output)
            status = TaskStatus.COMPLETED if result.ok else TaskStatus.FAILED
            self._end(record, status, (result.payload, result.buffers))
        elif kind == Kind.CALL or kind in Kind.TASK_REQUESTS:
            request = Request.unpack(route, parts)
            task = self.loop_tasks.spawn(self._answer_task(record, link, request))
            link.nested.add(task)
            task.add_done_callback(link.nested.discard)
        else:
            raise errors.WireError(f"unexpected message kind {kind!r} from a task")

    async def _answer_task(self, record: TaskRecord, link: RunningTaskLink, request: Request) -> None:
        if request.kind == Kind.CALL:
            reply = await self.nested_call(
                record.caller, str(request.name), request.payload, request.buffers, f"{link.queue_key}>", None
            )
        else:
            reply = await self.answer(record.caller, request)
        with contextlib.suppress(ConnectionResetError):
            link.send_parts(reply.pack(request.request_id))

    # -- the end -------------------------------------------------------------------
    def kill_by_id(self, task_id: str) -> None:
        record = self.records.get(task_id)
        if record is None:
            raise LookupError(f"no running background task with id {task_id!r}")
        self.kill(record, errors.ExecutionTerminatedError(f"background task {record.update.name!r} was killed"))

    def kill(self, record: TaskRecord, reason: BaseException) -> None:
        """Stop a task from outside: a waiting one at once, a running one through its template."""
        if record.update.ended_status is not None:
            return
        if record.update.status == TaskStatus.PENDING:
            with contextlib.suppress(ValueError):
                self.pending.remove(record)
            self._end(record, TaskStatus.KILLED, reason)
            return
        record.kill_reason = record.kill_reason or reason
        self._stop_process(record)  # the link's end records it as killed

    @staticmethod
    def _stop_process(record: TaskRecord) -> None:
        """Kill a running task's process group: through its node on Dask, else through its template."""
        if isinstance(record.link, RemoteTaskLink):
            record.link.kill()
        elif record.link is not None and record.generation is not None:
            record.generation.kill(record.link)

    def _end(self, record: TaskRecord, status: str, outcome: BaseException | tuple[Part, list[Part]]) -> None:
        update = record.update
        if update.ended_status is not None:
            return
        was_running = update.status == TaskStatus.RUNNING
        update.status, update.ended = status, time.time()
        if isinstance(outcome, BaseException):
            payload, buffers = error_payload(outcome)
            update.outcome = (payload, list(buffers))
        else:
            update.outcome = (outcome[0], list(outcome[1]))
        for timer in record.timers:
            timer.cancel()
        record.timers.clear()
        if was_running:
            self.running -= 1
            if record.generation is not None:
                record.generation.task_ended(record.update.task_id)
        record.link = None
        record.ended.set()
        self._changed(record)
        record.watchers.clear()
        self._save(record, forget=True)
        self._start_ready()

    def _save(self, record: TaskRecord, forget: bool = False) -> None:
        snapshot = dataclasses.replace(record.update)
        self.loop_tasks.spawn(self._write(record, snapshot, forget))

    async def _write(self, record: TaskRecord, snapshot: TaskUpdate, forget: bool) -> None:
        try:
            await self.store.save(snapshot, record.user, record.caller.session_key)
        except Exception:  # the task ran; only its record is lost: say so
            self.log.exception("could not write the record of background task %s", snapshot.task_id)
            return
        if forget:
            size = len(snapshot.outcome[0]) + sum(len(part) for part in snapshot.outcome[1])
            ended = [task_id for task_id, kept in self.records.items() if kept.update.ended_status is not None]
            if size > INLINE_LIMIT:
                self.records.pop(snapshot.task_id, None)  # read back from its file when asked for
            for task_id in ended[: max(0, len(ended) - KEEP_ENDED)]:
                self.records.pop(task_id, None)
