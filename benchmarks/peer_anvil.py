"""Peer: Anvil's own server-function worker, from the ``anvil-app-server`` wheel, driven over its pipe.

How the App Server runs server code (read from the wheel's Python source):

- The Java app server hands each call to ``anvil_downlink_host``; its ``full_python/worker.py``
  (``Worker.__init__``) starts ``sys.executable -um anvil_downlink_worker.full_python_worker``
  with ``stdin=PIPE, stdout=PIPE, bufsize=0`` in a process group of its own.
- Both directions carry ``anvil_downlink_util.pipes.MessagePipe`` frames: ``struct "=?I"``
  (one byte "binary data follows", then the JSON length as a native uint32), the JSON,
  and, when the flag is set, a uint32 length and that many bytes.
- The host sends ``{"type": "CALL", "id", "command", "args", "kwargs", "app-id",
  "app-version"}``.  A worker without an app answers ``{"type": "GET_APP", "id": <new id>,
  "originating-call": <call id>, ...}``; the host replies ``{"type": "PROVIDE_APP", "id":
  <that id>, "app": {"package_name", "server_modules": [{"name", "code"}]}}``; the worker
  imports the server modules and answers ``{"id": <call id>, "response": 3, ...}`` (or
  ``"error"``).  ``{"output": ...}`` frames carry prints.
- By default (``DOWNLINK_CAN_PERSIST`` unset) ``full_python/worker_cache.py`` launches a new
  worker for every call and terminates it once idle; with persistence one worker serves
  many calls.

Here this module plays the host: no Java, no downlink host process, GET_APP answered from
memory, so the numbers are a lower bound on what Anvil's own stack costs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import BenchmarkError, Sample, clean_environment, end_process, tail

HEADER = struct.Struct("=?I")  # MessagePipe: has binary data, JSON length (native byte order)
LENGTH = struct.Struct("I")
REPLY_TIMEOUT = 60.0  # a fresh worker that imports pandas on a busy 2-core machine can take seconds
STOP_GRACE = 5.0

SERVER_MODULE = """\
import anvil.server

@anvil.server.callable
def add(a, b):
    return a + b
"""
PANDAS_SERVER_MODULE = "import pandas  # the same template as greenroom's server notebook\n" + SERVER_MODULE


def available() -> str | None:
    """Why this peer cannot run here, or None."""
    if importlib.util.find_spec("anvil_downlink_worker") is None:
        return "anvil-app-server is not installed (pip install '.[bench]')"
    return None


def app_with(code: str) -> dict[str, Any]:
    """The app description PROVIDE_APP carries: one server module."""
    return {"package_name": "bench_app", "server_modules": [{"name": "ServerModule1", "code": code}]}


class AnvilWorker:
    """One ``anvil_downlink_worker.full_python_worker`` process, started the way Anvil's host starts it."""

    def __init__(self, app: dict[str, Any], log_path: Path) -> None:
        self.app = app
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-um", "anvil_downlink_worker.full_python_worker"],
                bufsize=0,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=clean_environment(),
                cwd=log_path.parent,
                start_new_session=True,
            )
        self.log_path = log_path
        self.calls = 0

    def call(self, command: str, *args: Any) -> Any:
        """Call a server function and return its response (answering GET_APP on the way)."""
        self.calls += 1
        call_id = f"bench-{self.calls}"
        self._send(
            {
                "type": "CALL",
                "id": call_id,
                "command": command,
                "args": list(args),
                "kwargs": {},
                "app-id": "BENCH",
                "app-version": "1",
            }
        )
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            message = self._receive(deadline)
            if message.get("type") == "GET_APP":
                self._send({"type": "PROVIDE_APP", "id": message["id"], "app": self.app})
            elif message.get("id") == call_id and "error" in message:
                raise BenchmarkError(f"Anvil's worker answered an error: {message['error']}")
            elif message.get("id") == call_id and "response" in message:
                return message["response"]
            # anything else ("output", spans) is not part of the answer

    def close(self) -> None:
        end_process(self.process, grace=STOP_GRACE, group=True)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        encoded = json.dumps(message).encode()
        self.process.stdin.write(HEADER.pack(False, len(encoded)) + encoded)

    def _receive(self, deadline: float) -> dict[str, Any]:
        has_binary, length = HEADER.unpack(self._read(HEADER.size, deadline))
        message = json.loads(self._read(length, deadline))
        if has_binary:
            (binary_length,) = LENGTH.unpack(self._read(LENGTH.size, deadline))
            self._read(binary_length, deadline)
        return message

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        chunks: list[bytes] = []
        missing = size
        while missing:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
                raise BenchmarkError(
                    f"Anvil's worker did not answer within {REPLY_TIMEOUT:.0f} s\n{tail(self.log_path)}"
                )
            chunk = os.read(descriptor, missing)
            if not chunk:
                raise BenchmarkError(f"Anvil's worker exited (code {self.process.wait()})\n{tail(self.log_path)}")
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)


def warm(workdir: Path, calls: int, warmup: int) -> Sample:
    """One long-lived worker (Anvil's persistent mode, without the host): ``add(1, 2)`` back to back."""
    worker = AnvilWorker(app_with(PANDAS_SERVER_MODULE), workdir / "anvil-warm.log")
    try:
        for _ in range(warmup):
            _checked(worker.call("add", 1, 2))
        latencies: list[int] = []
        started = time.perf_counter_ns()
        for _ in range(calls):
            before = time.perf_counter_ns()
            result = worker.call("add", 1, 2)
            latencies.append(time.perf_counter_ns() - before)
            _checked(result)
        seconds = (time.perf_counter_ns() - started) / 1e9
    finally:
        worker.close()
    return Sample.from_ns(latencies, calls / seconds)


def fresh(workdir: Path, calls: int, code: str) -> Sample:
    """Anvil's default: a new worker process per call, ended once it has answered.

    The latency runs from starting the process to the answer; ending the process is off the
    clock but inside the rate, as it is on Anvil's host (which reaps each worker).
    """
    latencies: list[int] = []
    started = time.perf_counter_ns()
    for _ in range(calls):
        before = time.perf_counter_ns()
        worker = AnvilWorker(app_with(code), workdir / "anvil-fresh.log")
        try:
            result = worker.call("add", 1, 2)
            latencies.append(time.perf_counter_ns() - before)
        finally:
            worker.close()
        _checked(result)
    return Sample.from_ns(latencies, calls / ((time.perf_counter_ns() - started) / 1e9))


def _checked(result: Any) -> None:
    if result != 3:
        raise BenchmarkError(f"Anvil's add(1, 2) returned {result!r}")
