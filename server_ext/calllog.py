"""The call log: one row per call, refused ones included, in SQLite under ``GreenroomApp.data_dir``.

A row holds the UTC time, the user (empty without one), the session, the function, the duration in
milliseconds and the outcome (``ok`` or the error type's name).  Invariant: never arguments, results or
tokens.  Writes stay off the event loop: rows wait in memory and are written in a thread at most every
:data:`FLUSH_INTERVAL` seconds, and when the host stops; at most :data:`MAX_PENDING` rows wait (past it
the oldest are dropped and counted in the log).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import os
import sqlite3
import sys
import threading
from typing import Any

__all__ = ["COLUMNS", "CallLog", "call_log_path", "print_calls", "read_calls"]

COLUMNS = ("time", "user", "session", "function", "duration_ms", "outcome")
FLUSH_INTERVAL = 1.0
MAX_PENDING = 100_000
FILE_NAME = "calls.sqlite"

Row = tuple[str, str, str, str, float, str]


def call_log_path(data_dir: str) -> str:
    return os.path.join(data_dir, FILE_NAME)


class CallLog:
    """Rows gathered on the event loop, written by a thread."""

    def __init__(self, data_dir: str, log: Any) -> None:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        self.path = call_log_path(data_dir)
        self.log = log
        self.pending: list[Row] = []
        self.dropped = 0
        self._lock = threading.Lock()  # one writer at a time
        with self._connect() as database:
            database.execute(
                "CREATE TABLE IF NOT EXISTS calls (time TEXT, user TEXT, session TEXT, function TEXT, "
                "duration_ms REAL, outcome TEXT)"
            )
        os.chmod(self.path, 0o600)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def record(self, user: str, session: str, function: str, duration_ms: float, outcome: str) -> None:
        """Remember one call (on the event loop: no I/O here)."""
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        self.pending.append((when, user, session, function[:200], round(duration_ms, 3), outcome[:100]))
        if len(self.pending) > MAX_PENDING:
            excess = len(self.pending) - MAX_PENDING
            del self.pending[:excess]
            self.dropped += excess

    def _write(self, rows: list[Row]) -> None:
        with self._lock, self._connect() as database:
            database.executemany("INSERT INTO calls VALUES (?, ?, ?, ?, ?, ?)", rows)

    async def flush(self) -> None:
        rows, self.pending = self.pending, []
        if self.dropped:
            self.log.warning("the call log dropped %d rows it could not write in time", self.dropped)
            self.dropped = 0
        if rows:
            try:
                await asyncio.to_thread(self._write, rows)
            except sqlite3.Error:
                self.log.exception("could not write %d rows to the call log %s", len(rows), self.path)

    async def run(self) -> None:
        """Write the waiting rows every :data:`FLUSH_INTERVAL` seconds (a host task)."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()


def read_calls(path: str) -> list[tuple[Any, ...]]:
    """Every row of the call log at ``path``, oldest first."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no call log at {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as database:
        return list(
            database.execute("SELECT time, user, session, function, duration_ms, outcome FROM calls ORDER BY rowid")
        )


def print_calls(args: list[str]) -> None:
    """``greenroom calls DIR [--csv] [--data-dir PATH]``: the call log as a table, or as CSV."""
    parser = argparse.ArgumentParser(prog="greenroom calls", description="print a greenroom host's call log")
    parser.add_argument("root", help="the folder the host serves")
    parser.add_argument("--csv", action="store_true", help="write CSV with a header row")
    parser.add_argument("--data-dir", default="", help="the host's GreenroomApp.data_dir, if it was set")
    options = parser.parse_args(args)
    path = call_log_path(options.data_dir or os.path.join(os.path.abspath(options.root), ".greenroom"))
    try:
        rows = read_calls(path)
    except (FileNotFoundError, sqlite3.Error) as error:
        raise SystemExit(f"greenroom calls: {error}") from None
    if options.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        return
    table = [COLUMNS, *[tuple("" if value is None else str(value) for value in row) for row in rows]]
    widths = [max(len(row[index]) for row in table) for index in range(len(COLUMNS))]
    for row in table:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
