"""Task records: one row per background task in SQLite under ``GreenroomApp.data_dir`` (``tasks.sqlite``).

A row holds the id, name, who launched it (user and session), its times, its status, its last state and
its outcome (return value or error data, as the task encoded them).  An outcome larger than
:data:`INLINE_LIMIT` is kept in a file beside the database (``task-results/<id>``, 0600), not in it.
Records older than ``task_record_days`` are removed with their files.  The database is created with the
first task, so a host that never runs one leaves no file.  Every read and write runs on one thread of its
own, in order, off the event loop.

Invariant: a restarted host answers for every kept record; a task that was pending or running when its
host stopped is ``missing``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import time
from typing import Any

from greenroom import errors
from greenroom.protocol import error_payload
from greenroom.taskmessages import TaskStatus, TaskUpdate
from greenroom.wire import pack, unpack

__all__ = ["INLINE_LIMIT", "TaskStore"]

FILE_NAME = "tasks.sqlite"
RESULTS = "task-results"
#: Outcomes up to this many bytes stay in the database; larger ones go to a file.
INLINE_LIMIT = 1 << 20
#: The most parts, and bytes, an outcome read back may have.
MAX_STORED = 1 << 31

COLUMNS = "id, name, user, session, launched, started, ended, status, state, outcome"


def _pack(payload: Any, buffers: list[Any]) -> bytes:
    """A payload and its buffers as one blob (greenroom's framing, after an empty leading part)."""
    return pack([b"", payload, *buffers])


def _unpack(blob: bytes) -> tuple[bytes | memoryview, list[bytes | memoryview]]:
    parts = unpack(blob, MAX_STORED)
    if len(parts) < 2:
        raise ValueError("a stored task part is empty")
    return parts[1], list(parts[2:])


class TaskStore:
    """The task records of one host."""

    def __init__(self, data_dir: str, keep_days: float) -> None:
        self.data_dir = data_dir
        self.path = os.path.join(data_dir, FILE_NAME)
        self.results = os.path.join(data_dir, RESULTS)
        self.keep_days = keep_days
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="greenroom-task-records")
        self._ready = False

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    # -- on the store's thread -------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if not self._ready:
            if not create and not os.path.exists(self.path):
                return None
            os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
            with sqlite3.connect(self.path, timeout=10) as database:
                database.execute(
                    "CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, name TEXT, user TEXT, session TEXT, "
                    "launched REAL, started REAL, ended REAL, status TEXT, state BLOB, outcome BLOB)"
                )
            os.chmod(self.path, 0o600)
            self._ready = True
        return sqlite3.connect(self.path, timeout=10)

    def _open_records(self) -> int:
        """At the host's start: tasks left pending or running are missing; old records go."""
        database = self._connect(create=False)
        if database is None:
            return 0
        missing_error, _ = error_payload(
            errors.ExecutionTerminatedError("the task was running when its host stopped; it did not finish")
        )
        with database:
            changed = database.execute(
                "UPDATE tasks SET status = ?, ended = ?, outcome = ? WHERE status IN (?, ?)",
                (TaskStatus.MISSING, time.time(), _pack(missing_error, []), TaskStatus.PENDING, TaskStatus.RUNNING),
            ).rowcount
        database.close()
        self._prune()
        return changed

    def _prune(self) -> None:
        database = self._connect(create=False)
        if database is None:
            return
        cutoff = time.time() - self.keep_days * 86400
        with database:
            old = [row[0] for row in database.execute("SELECT id FROM tasks WHERE ended < ?", (cutoff,))]
            database.executemany("DELETE FROM tasks WHERE id = ?", [(task_id,) for task_id in old])
        database.close()
        for task_id in old:
            try:
                os.unlink(os.path.join(self.results, task_id))
            except FileNotFoundError:
                pass

    def _save(self, update: TaskUpdate, user: str, session: str) -> None:
        state = _pack(update.state[0], update.state[1])
        outcome: bytes | None = None
        if update.ended_status is not None:
            outcome = _pack(update.outcome[0], update.outcome[1])
            if len(outcome) > INLINE_LIMIT:
                os.makedirs(self.results, mode=0o700, exist_ok=True)
                path = os.path.join(self.results, update.task_id)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(outcome)
                outcome = b"file"
        database = self._connect(create=True)
        assert database is not None
        with database:
            database.execute(
                f"INSERT OR REPLACE INTO tasks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    update.task_id,
                    update.name,
                    user,
                    session,
                    update.launched,
                    update.started,
                    update.ended,
                    update.status,
                    state,
                    outcome,
                ),
            )
        database.close()

    def _load(self, task_id: str) -> tuple[TaskUpdate, str, str] | None:
        database = self._connect(create=False)
        if database is None:
            return None
        with database:
            row = database.execute(f"SELECT {COLUMNS} FROM tasks WHERE id = ?", (task_id,)).fetchone()
        database.close()
        if row is None:
            return None
        _, name, user, session, launched, started, ended, status, state, outcome = row
        if outcome == b"file":
            with open(os.path.join(self.results, task_id), "rb") as handle:
                outcome = handle.read()
        no_state: tuple[bytes | memoryview, list[bytes | memoryview]] = (b"{}", [])
        no_outcome: tuple[bytes | memoryview, list[bytes | memoryview]] = (b"", [])
        update = TaskUpdate(
            task_id,
            name,
            status,
            launched,
            started,
            ended,
            _unpack(state) if state else no_state,
            _unpack(outcome) if outcome else no_outcome,
        )
        return update, user, session

    def _list(self) -> list[tuple[dict[str, Any], str, str]]:
        database = self._connect(create=False)
        if database is None:
            return []
        with database:
            rows = database.execute(
                "SELECT id, name, status, launched, started, ended, user, session FROM tasks ORDER BY launched DESC"
            ).fetchall()
        database.close()
        return [
            (
                {"id": i, "name": n, "status": s, "launched": la, "started": st, "ended": en},
                user,
                session,
            )
            for i, n, s, la, st, en, user, session in rows
        ]

    # -- on the event loop -------------------------------------------------------
    async def open(self) -> int:
        """Mark the tasks a stopped host left running as missing (returns how many) and prune old records."""
        return int(await self._run(self._open_records))

    async def prune(self) -> None:
        await self._run(self._prune)

    async def save(self, update: TaskUpdate, user: str, session: str) -> None:
        await self._run(self._save, update, user, session)

    async def load(self, task_id: str) -> tuple[TaskUpdate, str, str] | None:
        return await self._run(self._load, task_id)  # type: ignore[no-any-return]

    async def list(self) -> list[tuple[dict[str, Any], str, str]]:
        return await self._run(self._list)  # type: ignore[no-any-return]
