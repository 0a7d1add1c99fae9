"""Shared pieces of the benchmark suite: the plan, results and table, and process handling.

Every process the suite starts is ended by its own pid (:func:`end_process`); peers that
start children of their own run in a session of their own so that the group led by that
pid can be ended too.
"""

from __future__ import annotations

import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVER_STOP_GRACE = 15.0
CLIENT_READY_TIMEOUT = 60.0


class BenchmarkError(Exception):
    """A step of the benchmark failed; the message says which and why."""


@dataclass(frozen=True)
class Plan:
    """How much to measure (the full run or ``--quick``)."""

    kernel_calls_persistent: int
    kernel_calls_fresh: int
    kernel_warmup: int
    paced_calls: int
    pace_ms: float
    external_calls: int
    clients: int
    client_seconds: float
    total_calls: int
    load_max_seconds: float
    media_bytes: int
    media_repeat: int
    data_repeat_small: int  # 1 MiB DataFrame echoes
    data_repeat_large: int  # 100 MiB DataFrame and array echoes
    floor_calls: int
    peer_calls: int  # warm peers (Anvil's worker, the Dask actor), after peer_warmup calls
    peer_warmup: int
    fresh_process_calls: int  # Anvil's default: a new worker process per call
    http_calls: int  # Kernel Gateway from one client


FULL = Plan(
    kernel_calls_persistent=2000,
    kernel_calls_fresh=500,
    kernel_warmup=100,
    paced_calls=200,
    pace_ms=20.0,
    external_calls=2000,
    clients=8,
    client_seconds=5.0,
    total_calls=100_000,
    load_max_seconds=150.0,
    media_bytes=10 * 1024 * 1024,
    media_repeat=20,
    data_repeat_small=20,
    data_repeat_large=5,
    floor_calls=5000,
    peer_calls=2000,
    peer_warmup=100,
    fresh_process_calls=50,
    http_calls=1000,
)
QUICK = Plan(
    kernel_calls_persistent=200,
    kernel_calls_fresh=50,
    kernel_warmup=20,
    paced_calls=20,
    pace_ms=20.0,
    external_calls=200,
    clients=8,
    client_seconds=1.0,
    total_calls=5_000,
    load_max_seconds=30.0,
    media_bytes=10 * 1024 * 1024,
    media_repeat=3,
    data_repeat_small=3,
    data_repeat_large=1,
    floor_calls=500,
    peer_calls=200,
    peer_warmup=20,
    fresh_process_calls=3,
    http_calls=100,
)


# -- results ---------------------------------------------------------------
@dataclass
class Sample:
    """Latencies of one measured run, and the calls per second it achieved."""

    latencies_ms: list[float]
    calls_per_s: float

    @classmethod
    def from_ns(cls, latencies_ns: Sequence[int], calls_per_s: float) -> Sample:
        return cls([value / 1e6 for value in latencies_ns], calls_per_s)

    def percentile(self, share: float) -> float:
        """Nearest-rank percentile (``share`` in 0..100) in ms."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


@dataclass
class Row:
    """One line of the result table."""

    what: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    calls_per_s: float | None = None
    target: str = "-"
    met: bool | None = None
    notes: str = ""

    @classmethod
    def of(cls, what: str, sample: Sample, target: str = "-", met: bool | None = None, notes: str = "") -> Row:
        return cls(what, sample.p50, sample.p99, sample.calls_per_s, target, met, notes)

    @classmethod
    def not_measured(cls, what: str, reason: str) -> Row:
        return cls(what, notes=f"not measured: {reason}")


@dataclass
class Report:
    """Everything one run found."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, list[float]] = field(default_factory=dict)  # row -> per-call latencies (ms) to plot

    def add(self, row: Row, plotted: Sample | None = None) -> None:
        """Add ``row``; with ``plotted``, its per-call latencies also go into the latency plot."""
        self.rows.append(row)
        if plotted is not None and plotted.latencies_ms:
            self.distributions[row.what] = plotted.latencies_ms
        progress(f"  {row.what}: {format_row(row)}")


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _met(row: Row) -> str:
    return "-" if row.met is None else ("yes" if row.met else "NO")


def format_row(row: Row) -> str:
    return (
        f"p50 {_number(row.p50_ms)} ms, p99 {_number(row.p99_ms)} ms, {_number(row.calls_per_s)} calls/s, "
        f"target {row.target}: {_met(row)}{'; ' + row.notes if row.notes else ''}"
    )


def render_table(rows: Sequence[Row]) -> str:
    header = ("what", "p50 ms", "p99 ms", "calls/s", "target", "met?", "notes")
    lines = [
        (row.what, _number(row.p50_ms), _number(row.p99_ms), _number(row.calls_per_s), row.target, _met(row), row.notes)
        for row in rows
    ]
    widths = [max(len(str(cells[i])) for cells in [header, *lines]) for i in range(len(header) - 1)]
    numeric = {1, 2, 3}

    def render(cells: Sequence[str]) -> str:
        padded = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        return " | ".join(padded) + (" | " + cells[-1] if cells[-1] else "")

    rule = "-+-".join("-" * width for width in widths) + "-+-" + "-" * 5
    return "\n".join([render(header), rule, *(render(cells) for cells in lines)])


_START = time.monotonic()


def elapsed() -> float:
    """Seconds since the suite started."""
    return time.monotonic() - _START


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(f"[{elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------
def free_port() -> int:
    """A loopback port that was free a moment ago (the server is started with port_retries=0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def end_process(process: subprocess.Popen[Any], grace: float = SERVER_STOP_GRACE, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: only for a process this script started.

    With ``group`` (for a process started with ``start_new_session=True``, so that its pid is
    also its process group's id), whatever is left of the group is killed as well once the
    process has exited, before it is reaped: its pid cannot have been reused by then.
    """
    if process.pid <= 1 or process.returncode is not None:
        return
    # os.kill, not Popen.send_signal (which may reap): an unreaped child keeps its pid.
    if exit_status(process.pid, 0.0) is None:
        os.kill(process.pid, signal.SIGTERM)
        if exit_status(process.pid, grace) is None:
            os.kill(process.pid, signal.SIGKILL)
            exit_status(process.pid, grace)
    if group:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is empty: everything ended with its leader
    process.wait()


def exit_status(pid: int, timeout: float) -> int | None:
    """The exit status of our child ``pid`` (-N: killed by signal N) once it has exited, or None if it
    still runs after ``timeout`` seconds.  The child is not reaped, so its pid stays ours."""
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return 0  # already reaped by someone who knows its status
        if info is not None and info.si_pid == pid:
            return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.02)  # a process ending on SIGTERM is waited for in about a millisecond


def finish(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, str]:
    """Read ``process``'s stdout to its end and let it exit, both by ``deadline``; then end what is
    left of its group (``start_new_session=True``) and reap it.  Its exit status and output."""
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            raise BenchmarkError(f"pid {process.pid} did not finish in time")
        chunk = os.read(descriptor, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    status = exit_status(process.pid, max(0.0, deadline - time.monotonic()))
    if status is None:
        raise BenchmarkError(f"pid {process.pid} closed its output but did not exit in time")
    end_process(process, group=True)
    return status, b"".join(chunks).decode(errors="replace")


def tail(path: Path, lines: int = 20, titled: bool = False) -> str:
    """The last ``lines`` lines of a log (``titled``: under a line that names the file)."""
    try:
        text = "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})" if titled else "(no output)"
    return f"--- last lines of {path} ---\n{text}" if titled else text


def clean_environment() -> dict[str, str]:
    """This process's environment without greenroom's own variables (a peer is no greenroom client)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("GREENROOM_")}


def run_together(
    commands: Sequence[Sequence[str]], log_dir: Path, timeout: float, env: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run one process per command, all measuring at once; the JSON object each prints last.

    Each process warms up, prints ``ready`` and waits for ``go`` on stdin (the protocol of
    ``client.py`` and ``http_client.py``), so that they all start measuring together.
    """
    processes: list[subprocess.Popen[bytes]] = []
    logs = [log_dir / f"process-{index}-{os.getpid()}-{time.monotonic_ns()}.log" for index in range(len(commands))]
    try:
        for command, log_path in zip(commands, logs):
            with open(log_path, "wb") as log:
                processes.append(
                    subprocess.Popen(
                        list(command),
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        env=dict(env) if env is not None else None,
                        start_new_session=True,
                    )
                )
        wait_until_ready(processes, logs, time.monotonic() + CLIENT_READY_TIMEOUT)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        deadline = time.monotonic() + timeout
        return [last_json(process, log, deadline) for process, log in zip(processes, logs)]
    finally:
        for process in processes:
            end_process(process, grace=5.0, group=True)
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    stream.close()


def wait_until_ready(processes: Sequence[subprocess.Popen[bytes]], logs: Sequence[Path], deadline: float) -> None:
    """Wait until every process printed ``ready`` on its stdout; :class:`BenchmarkError` otherwise."""
    waiting = {process.stdout: (process, log) for process, log in zip(processes, logs) if process.stdout is not None}
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchmarkError(f"{len(waiting)} client process(es) not ready within {CLIENT_READY_TIMEOUT:.0f} s")
        readable, _, _ = select.select(list(waiting), [], [], remaining)
        for stream in readable:
            process, log = waiting.pop(stream)
            if stream.readline().strip() != b"ready":
                process.wait(5)
                raise BenchmarkError(
                    f"a client process failed before it was ready (exit code {process.returncode}):\n{tail(log)}"
                )


def last_json(process: subprocess.Popen[bytes], log: Path, deadline: float) -> dict[str, Any]:
    """The JSON object ``process`` prints last, once it has ended (see :func:`finish`)."""
    status, output = finish(process, deadline)
    lines = output.strip().splitlines()
    if status != 0 or not lines:
        raise BenchmarkError(f"pid {process.pid} exited with code {status}:\n{tail(log)}")
    return json.loads(lines[-1])


def sample_of(results: Sequence[Mapping[str, Any]]) -> Sample:
    """One sample from the results of processes that measured together: all latencies, summed rates."""
    latencies = [value for result in results for value in result["latencies_ns"]]
    return Sample.from_ns(latencies, sum(result["calls"] / result["seconds"] for result in results))
