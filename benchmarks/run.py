"""greenroom performance suite: one run, real Jupyter servers, the DESIGN.md targets.

``.venv/bin/python benchmarks/run.py`` (1-2 minutes on 2 cores; every step is
bounded, so a bad run ends well within 6) or ``benchmarks/run.py --quick`` (a smoke
run of about 30 s).

What it does, with a server notebook that imports pandas (a realistic template):

1. starts a plain ``jupyter server`` (greenroom disabled) with one kernel, for the
   host's baseline RSS;
2. starts ``jupyter server`` with greenroom in persistent mode and measures
   ``add(1, 2)`` from a kernel the server launched (the timing loop runs inside
   the kernel), from one external process, and from 8 concurrent external
   processes; drives the host to 100,000 calls while sampling its RSS; echoes a
   10 MiB ``BlobMedia``;
3. does the same in fresh-state mode (the default), with a paced run (calls
   20 ms apart, slower than the runtime prepares fresh workers) and the
   sustained back-to-back rate;
4. measures the floors: an in-process Python call and a bare tornado WebSocket
   echo on loopback.

It prints one table (what, p50 ms, p99 ms, calls/s, target, met?, notes; the notes
give the CPU each call cost the host and the runtime) and writes it, with the
run's details, to ``benchmarks/results/latest.json``.  Every server is a
subprocess ended by its own pid.  The machine's load average is reported: other
work on a 2-core machine shows up directly in these numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client import BlockingKernelClient

HERE = Path(__file__).resolve().parent
RESULTS_FILE = HERE / "results" / "latest.json"
CLIENT_SCRIPT = HERE / "client.py"
WS_FLOOR_SCRIPT = HERE / "ws_floor.py"
TOKEN_VARIABLE = "GREENROOM_BENCH_TOKEN"  # read by client.py

SERVER_READY_TIMEOUT = 120.0
SERVER_STOP_GRACE = 15.0
KERNEL_READY_TIMEOUT = 60.0
CLIENT_READY_TIMEOUT = 60.0
HTTP_TIMEOUT = 10.0
RSS_SAMPLE_INTERVAL = 0.5
WARM_FRACTION = 0.2  # RSS growth is judged from this share of the calls (20,000 of 100,000) to the end
GROWTH_TOLERANCE_MB = 5.0  # allocator noise; a leak of 64 bytes per call over 80,000 calls would be 5 MB

SERVER_NOTEBOOK = '''\
import pandas  # a realistic template: the runtime forks workers from a process holding pandas
from greenroom import server

@server.callable
def add(a, b):
    return a + b

@server.callable
def echo(x):
    return x
'''

# Runs inside a kernel the server launched; prints one JSON line.
KERNEL_LOOP = '''\
import json as _json, time as _time
from greenroom import server as _server
for _ in range({warmup}):
    assert _server.call_s("add", 1, 2) == 3
_latencies = []
_started = _time.perf_counter_ns()
for _index in range({calls}):
    if {pace_ns}:
        _wait = _started + _index * {pace_ns} - _time.perf_counter_ns()
        if _wait > 0:
            _time.sleep(_wait / 1e9)
    _before = _time.perf_counter_ns()
    _result = _server.call_s("add", 1, 2)
    _latencies.append(_time.perf_counter_ns() - _before)
    assert _result == 3, _result
print(_json.dumps({{"latencies_ns": _latencies, "seconds": (_time.perf_counter_ns() - _started) / 1e9}}))
'''


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
    floor_calls: int


FULL = Plan(
    kernel_calls_persistent=2000, kernel_calls_fresh=500, kernel_warmup=100, paced_calls=200, pace_ms=20.0,
    external_calls=2000, clients=8, client_seconds=5.0, total_calls=100_000, load_max_seconds=150.0,
    media_bytes=10 * 1024 * 1024, media_repeat=20, floor_calls=5000,
)
QUICK = Plan(
    kernel_calls_persistent=200, kernel_calls_fresh=50, kernel_warmup=20, paced_calls=20, pace_ms=20.0,
    external_calls=200, clients=8, client_seconds=1.0, total_calls=5_000, load_max_seconds=30.0,
    media_bytes=10 * 1024 * 1024, media_repeat=3, floor_calls=500,
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


@dataclass
class Report:
    """Everything one run found."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
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
    return (f"p50 {_number(row.p50_ms)} ms, p99 {_number(row.p99_ms)} ms, {_number(row.calls_per_s)} calls/s, "
            f"target {row.target}: {_met(row)}{'; ' + row.notes if row.notes else ''}")


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


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(f"[{time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------
def free_port() -> int:
    """A loopback port that was free a moment ago (the server is started with port_retries=0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def end_process(process: subprocess.Popen[Any], grace: float = SERVER_STOP_GRACE) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds: only for a process this script started."""
    if process.pid <= 1 or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise BenchmarkError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of ``pid`` itself, and of its children it has reaped (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its live children and its reaped children (the runtime: template + workers)."""
    own, reaped = cpu_seconds(pid)
    total = own + reaped
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    except OSError:
        children = []
    for child in children:
        try:
            total += cpu_seconds(int(child))[0]
        except OSError:
            pass  # ended in between; counted once its parent reaps it
    return total


class JupyterServer:
    """A ``jupyter server`` subprocess on a free loopback port, with or without greenroom."""

    def __init__(self, workdir: Path, name: str, greenroom: dict[str, Any] | None) -> None:
        self.name = name
        self.greenroom = greenroom
        self.directory = workdir / name
        self.root = self.directory / "root"
        self.runtime_dir = self.directory / "runtime"
        self.log_path = self.directory / "server.log"
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.kernels: list[Kernel] = []

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchmarkError(f"{self.name}: the server is not running")
        return self.process.pid

    def _write_files(self) -> Path:
        for directory in (self.root, self.runtime_dir, self.directory / "config"):
            directory.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {"ServerApp": {"jpserver_extensions": {"greenroom.server_ext": self.greenroom is not None}}}
        if self.greenroom is not None:
            config["GreenroomApp"] = self.greenroom
            notebook = nbformat.v4.new_notebook()
            notebook.cells.append(nbformat.v4.new_code_cell(SERVER_NOTEBOOK))
            nbformat.write(notebook, str(self.root / "bench.server.ipynb"))
        config_file = self.directory / "jupyter_server_config.json"
        config_file.write_text(json.dumps(config, indent=1), encoding="utf-8")
        return config_file

    def start(self) -> None:
        config_file = self._write_files()
        command = [
            sys.executable, "-m", "jupyter_server", f"--config={config_file}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            "--allow-root", "--no-browser", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
        ]
        env = {key: value for key, value in os.environ.items() if not key.startswith("GREENROOM_")}
        # Runtime files (kernel-*.json, greenroom-*.json) in our own folder; no user config.
        env.update(JUPYTER_RUNTIME_DIR=str(self.runtime_dir), JUPYTER_CONFIG_DIR=str(self.directory / "config"))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        progress(f"{self.name}: jupyter server pid {self.process.pid} on port {self.port}")
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        path = "greenroom/api/status" if self.greenroom is not None else "api/status"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BenchmarkError(f"{self.name}: jupyter server exited with code {self.process.returncode}\n{self.log_tail()}")
            try:
                status = self.api("GET", path, timeout=2.0)
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.2)
                continue
            if self.greenroom is None:
                return
            rejected = status.get("rejected_reload_errors") or (status.get("serving") or {}).get("load_errors")
            if rejected:
                raise BenchmarkError(
                    f"{self.name}: the server notebook did not load (is pandas installed? pip install '.[bench]'): "
                    f"{json.dumps(rejected)}"
                )
            if status.get("serving"):
                return
            time.sleep(0.2)
        raise BenchmarkError(f"{self.name}: not serving after {SERVER_READY_TIMEOUT:.0f} s\n{self.log_tail()}")

    def api(self, method: str, path: str, body: Any = None, timeout: float = HTTP_TIMEOUT) -> Any:
        """A JSON request to the server, authenticated with its token."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        with opener.open(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def calls_done(self) -> int:
        serving = self.api("GET", "greenroom/api/status").get("serving") or {}
        return int(serving.get("calls_done", 0))

    def template_pid(self) -> int | None:
        serving = self.api("GET", "greenroom/api/status").get("serving") or {}
        return serving.get("pid")

    def start_kernel(self) -> Kernel:
        kernel_id = self.api("POST", "api/kernels", {"name": "python3"}, timeout=KERNEL_READY_TIMEOUT)["id"]
        kernel = Kernel(self, kernel_id, self.runtime_dir / f"kernel-{kernel_id}.json")
        self.kernels.append(kernel)
        kernel.connect()
        return kernel

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for kernel in self.kernels:
            kernel.shutdown()
        self.kernels.clear()
        if self.process is not None:
            end_process(self.process)


class Kernel:
    """A kernel the server launched, reached through its connection file."""

    def __init__(self, server: JupyterServer, kernel_id: str, connection_file: Path) -> None:
        self.server = server
        self.kernel_id = kernel_id
        self.connection_file = connection_file
        self.client: BlockingKernelClient | None = None

    def connect(self) -> None:
        deadline = time.monotonic() + KERNEL_READY_TIMEOUT
        while not self.connection_file.exists():
            if time.monotonic() > deadline:
                raise BenchmarkError(f"kernel {self.kernel_id}: no connection file {self.connection_file}")
            time.sleep(0.1)
        client = BlockingKernelClient(connection_file=str(self.connection_file))
        client.load_connection_file()
        client.start_channels()
        self.client = client
        try:
            client.wait_for_ready(timeout=KERNEL_READY_TIMEOUT)
        except RuntimeError as error:
            raise BenchmarkError(f"kernel {self.kernel_id} did not become ready: {error}") from None

    def run(self, code: str, timeout: float) -> str:
        """Execute ``code``; its stdout, or :class:`BenchmarkError` with the kernel's traceback."""
        assert self.client is not None
        output: list[str] = []
        errors: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            content = message["content"]
            if message["msg_type"] == "stream" and content.get("name") == "stdout":
                output.append(content["text"])
            elif message["msg_type"] == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")

        try:
            reply = self.client.execute_interactive(code, output_hook=hook, timeout=timeout, allow_stdin=False,
                                                    store_history=False)
        except TimeoutError:
            raise BenchmarkError(f"kernel {self.kernel_id}: code did not finish within {timeout:.0f} s") from None
        if errors or reply["content"]["status"] != "ok":
            raise BenchmarkError(f"kernel {self.kernel_id} raised: {'; '.join(errors) or reply['content']}")
        return "".join(output)

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        try:
            self.server.api("DELETE", f"api/kernels/{self.kernel_id}")
        except (urllib.error.URLError, OSError):
            pass  # the server shuts its kernels down when it stops anyway


@contextmanager
def running(server: JupyterServer) -> Iterator[JupyterServer]:
    try:
        server.start()
        yield server
    except BenchmarkError:
        raise
    except Exception as error:
        raise BenchmarkError(f"{server.name}: {type(error).__name__}: {error}\n{server.log_tail()}") from error
    finally:
        server.stop()


def run_clients(
    server: JupyterServer, count: int, arguments: Sequence[str], timeout: float,
    on_tick: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Start ``count`` client.py processes, let them warm up, start them together, collect their results."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GREENROOM_")}
    env[TOKEN_VARIABLE] = server.token
    processes: list[subprocess.Popen[bytes]] = []
    outputs = [server.directory / f"client-{secrets.token_hex(4)}.json" for _ in range(count)]
    logs = [output.with_suffix(".log") for output in outputs]
    try:
        for output, log_path in zip(outputs, logs):
            with open(log_path, "wb") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, str(CLIENT_SCRIPT), server.url, "--out", str(output), *arguments],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                ))
        _wait_for_ready(processes, logs)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            process.stdin.flush()
        deadline = time.monotonic() + timeout
        while any(process.poll() is None for process in processes):
            if time.monotonic() > deadline:
                raise BenchmarkError(f"clients did not finish within {timeout:.0f} s")
            if on_tick is not None:
                on_tick()
            time.sleep(RSS_SAMPLE_INTERVAL if on_tick is not None else 0.05)
        results = []
        for process, output, log_path in zip(processes, outputs, logs):
            if process.returncode != 0 or not output.exists():
                raise BenchmarkError(f"a client exited with code {process.returncode}:\n{_tail(log_path)}")
            results.append(json.loads(output.read_text(encoding="utf-8")))
        return results
    finally:
        for process in processes:
            end_process(process, grace=5.0)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


def _wait_for_ready(processes: Sequence[subprocess.Popen[bytes]], logs: Sequence[Path]) -> None:
    waiting = {process.stdout: (process, log) for process, log in zip(processes, logs) if process.stdout is not None}
    deadline = time.monotonic() + CLIENT_READY_TIMEOUT
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchmarkError(f"{len(waiting)} client(s) did not connect within {CLIENT_READY_TIMEOUT:.0f} s")
        readable, _, _ = select.select(list(waiting), [], [], remaining)
        for stream in readable:
            process, log = waiting.pop(stream)
            if stream.readline().strip() != b"ready":
                process.wait(5)
                raise BenchmarkError(f"a client failed before it was ready (exit code {process.returncode}):\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- measurements ----------------------------------------------------------
class CpuMeter:
    """CPU per call spent by the host (the Jupyter server process) and the runtime during a ``with`` block.

    Resolution is one clock tick (10 ms), so it needs a few hundred calls to mean something.
    """

    def __init__(self, server: JupyterServer) -> None:
        self.server = server
        self.template = server.template_pid()
        self.start: tuple[int, float, float] = (0, 0.0, 0.0)
        self.end: tuple[int, float, float] = (0, 0.0, 0.0)

    def _snapshot(self) -> tuple[int, float, float]:
        runtime = tree_cpu_seconds(self.template) if self.template else 0.0
        return self.server.calls_done(), cpu_seconds(self.server.pid)[0], runtime

    def __enter__(self) -> CpuMeter:
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.end = self._snapshot()

    def note(self) -> str:
        calls = self.end[0] - self.start[0]
        if calls <= 0:
            return "no calls counted"
        host, runtime = ((self.end[i] - self.start[i]) / calls * 1e3 for i in (1, 2))
        return f"CPU/call: host {host:.2f} ms, runtime {runtime:.2f} ms"


def kernel_round_trips(kernel: Kernel, calls: int, warmup: int, pace_ms: float = 0.0) -> Sample:
    """``add(1, 2)`` timed inside the kernel, ``calls`` times (``pace_ms`` apart if given)."""
    code = KERNEL_LOOP.format(calls=calls, warmup=warmup, pace_ns=int(pace_ms * 1e6))
    budget = 60.0 + calls * (pace_ms / 1000 + 0.1)
    output = kernel.run(code, timeout=budget)
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchmarkError(f"kernel printed no latencies: {output[-500:]!r}") from None
    return Sample.from_ns(result["latencies_ns"], len(result["latencies_ns"]) / result["seconds"])


def concurrent_rate(server: JupyterServer, plan: Plan) -> Sample:
    """``plan.clients`` processes calling back to back for ``plan.client_seconds``: total calls/s."""
    results = run_clients(server, plan.clients, ["calls", "--seconds", str(plan.client_seconds)],
                          timeout=plan.client_seconds + 60)
    latencies = [value for result in results for value in result["latencies_ns"]]
    return Sample.from_ns(latencies, sum(result["calls"] / result["seconds"] for result in results))


def single_client(server: JupyterServer, plan: Plan) -> Sample:
    (result,) = run_clients(server, 1, ["calls", "--count", str(plan.external_calls)], timeout=120)
    return Sample.from_ns(result["latencies_ns"], result["calls"] / result["seconds"])


def media_round_trips(server: JupyterServer, plan: Plan) -> Sample:
    (result,) = run_clients(server, 1, ["media", "--bytes", str(plan.media_bytes), "--repeat", str(plan.media_repeat)],
                            timeout=120)
    return Sample.from_ns(result["latencies_ns"], result["calls"] / result["seconds"])


@dataclass
class MemoryTrace:
    """The host's RSS against the number of calls it has served."""

    samples: list[tuple[int, float]] = field(default_factory=list)

    def record(self, server: JupyterServer) -> None:
        self.samples.append((server.calls_done(), rss_mb(server.pid)))

    def at_calls(self, calls: int) -> tuple[int, float]:
        """The first sample at or after ``calls`` calls (else the last one)."""
        return next((sample for sample in self.samples if sample[0] >= calls), self.samples[-1])


def drive_calls(server: JupyterServer, plan: Plan, trace: MemoryTrace) -> tuple[int, float | None]:
    """Bring the host to ``plan.total_calls`` calls with concurrent clients; (calls made, calls/s)."""
    missing = plan.total_calls - server.calls_done()
    if missing <= 0:
        return 0, None
    per_client = math.ceil(missing / plan.clients)
    results = run_clients(
        server, plan.clients,
        ["calls", "--count", str(per_client), "--max-seconds", str(plan.load_max_seconds), "--no-latencies"],
        timeout=plan.load_max_seconds + 60, on_tick=lambda: trace.record(server),
    )
    return sum(result["calls"] for result in results), sum(result["calls"] / result["seconds"] for result in results)


def baseline_rss(workdir: Path) -> float:
    """RSS of a plain jupyter server (greenroom disabled) that has started one kernel."""
    with running(JupyterServer(workdir, "plain", None)) as server:
        server.start_kernel()
        time.sleep(1.0)
        return rss_mb(server.pid)


def bench_persistent(workdir: Path, plan: Plan, report: Report, plain_rss: float) -> None:
    with running(JupyterServer(workdir, "persistent", {"persistent": True})) as server:
        kernel = server.start_kernel()
        trace = MemoryTrace()
        trace.record(server)  # like the plain server's baseline: running, one kernel, no call yet
        progress("persistent: add(1, 2) from a kernel")
        with CpuMeter(server) as cpu:
            sample = kernel_round_trips(kernel, plan.kernel_calls_persistent, plan.kernel_warmup)
        report.add(Row.of("persistent: add(1,2) from a kernel", sample, "p50<=0.5, p99<=2",
                          sample.p50 <= 0.5 and sample.p99 <= 2.0, f"N={plan.kernel_calls_persistent}; {cpu.note()}"))
        with CpuMeter(server) as cpu:
            sample = single_client(server, plan)
        report.add(Row.of("persistent: add(1,2) from a script (1 client)", sample,
                          notes=f"N={plan.external_calls}, greenroom.connect; {cpu.note()}"))
        progress(f"persistent: {plan.clients} concurrent clients")
        with CpuMeter(server) as cpu:
            sample = concurrent_rate(server, plan)
        report.add(Row.of(f"persistent: {plan.clients} concurrent clients", sample, ">=3000 calls/s",
                          sample.calls_per_s >= 3000, f"{plan.client_seconds:g} s, latency under load; {cpu.note()}"))
        progress(f"persistent: driving the host to {plan.total_calls:,} calls")
        made, rate = drive_calls(server, plan, trace)
        time.sleep(1.0)
        trace.record(server)
        report_memory(report, trace, plan, plain_rss, made, rate)
        report.details["persistent_rss_trace"] = trace.samples
        progress("persistent: Media echo")
        before = rss_mb(server.pid)
        sample = media_round_trips(server, plan)
        time.sleep(1.0)
        report.add(Row.of(f"persistent: {plan.media_bytes / 2**20:g} MiB BlobMedia echo", sample, "p50<=50",
                          sample.p50 <= 50.0, f"N={plan.media_repeat}; host RSS {before:.0f} -> {rss_mb(server.pid):.0f} MB"))


def report_memory(report: Report, trace: MemoryTrace, plan: Plan, plain_rss: float, made: int, rate: float | None) -> None:
    start_calls, start_rss = trace.samples[0]
    end_calls, end_rss = trace.samples[-1]
    warm_calls, warm_rss = trace.at_calls(int(plan.total_calls * WARM_FRACTION))
    shortfall = "" if end_calls >= plan.total_calls else f"; ONLY {end_calls:,} calls within the time bound"
    overhead = end_rss - plain_rss
    report.add(Row(
        f"host RSS overhead after {end_calls:,} calls", target="<=60 MB", met=overhead <= 60.0,
        calls_per_s=rate,
        notes=(f"{overhead:+.1f} MB: {end_rss:.1f} MB vs plain jupyter server {plain_rss:.1f} MB; "
               f"{made:,} of the calls (and the calls/s) by {plan.clients} clients{shortfall}"),
    ))
    growth = end_rss - warm_rss
    report.add(Row(
        f"host RSS growth, {warm_calls:,} -> {end_calls:,} calls",
        target=f"no growth (<={GROWTH_TOLERANCE_MB:g} MB)", met=growth <= GROWTH_TOLERANCE_MB,
        notes=(f"{growth:+.1f} MB ({warm_rss:.1f} -> {end_rss:.1f}); from the start ({start_calls} calls, "
               f"{start_rss:.1f} MB): {end_rss - start_rss:+.1f} MB; peak {max(rss for _, rss in trace.samples):.1f} MB"),
    ))


def bench_fresh(workdir: Path, plan: Plan, report: Report) -> None:
    with running(JupyterServer(workdir, "fresh", {"persistent": False})) as server:
        kernel = server.start_kernel()
        progress(f"fresh: add(1, 2) from a kernel, paced {plan.pace_ms:g} ms apart")
        with CpuMeter(server) as cpu:
            sample = kernel_round_trips(kernel, plan.paced_calls, plan.kernel_warmup // 4, plan.pace_ms)
        report.add(Row.of(f"fresh: add(1,2) from a kernel, paced {plan.pace_ms:g} ms", sample, "p50<=2",
                          sample.p50 <= 2.0, f"N={plan.paced_calls}; {cpu.note()}"))
        progress("fresh: add(1, 2) from a kernel, back to back")
        with CpuMeter(server) as cpu:
            sample = kernel_round_trips(kernel, plan.kernel_calls_fresh, plan.kernel_warmup // 4)
        report.add(Row.of("fresh: add(1,2) from a kernel, back to back", sample, "report (sustained rate)",
                          notes=f"N={plan.kernel_calls_fresh}; {cpu.note()}"))
        progress(f"fresh: {plan.clients} concurrent clients")
        with CpuMeter(server) as cpu:
            sample = concurrent_rate(server, plan)
        report.add(Row.of(f"fresh: {plan.clients} concurrent clients", sample, "report",
                          notes=f"{plan.client_seconds:g} s, latency under load; {cpu.note()}"))
        progress("fresh: Media echo")
        sample = media_round_trips(server, plan)
        report.add(Row.of(f"fresh: {plan.media_bytes / 2**20:g} MiB BlobMedia echo", sample, "p50<=50",
                          sample.p50 <= 50.0, f"N={plan.media_repeat}"))


def add(a: int, b: int) -> int:
    return a + b


def bench_floors(plan: Plan, report: Report) -> None:
    progress("floors")
    timer = timeit.Timer("add(1, 2)", globals={"add": add})
    number = 200_000
    per_call_ms = [seconds / number * 1e3 for seconds in timer.repeat(repeat=7, number=number)]
    median = statistics.median(per_call_ms)
    report.add(Row("floor: in-process Python call", median, None, 1e3 / median,
                   notes=f"{median * 1e6:.0f} ns; timeit, median of 7 x {number:,}"))
    try:
        completed = subprocess.run([sys.executable, str(WS_FLOOR_SCRIPT), "--calls", str(plan.floor_calls)],
                                   capture_output=True, text=True, timeout=120, check=True)
    except subprocess.TimeoutExpired:
        raise BenchmarkError("the WebSocket floor did not finish within 120 s") from None
    except subprocess.CalledProcessError as error:
        raise BenchmarkError(f"the WebSocket floor failed:\n{error.stderr[-2000:]}") from None
    floors = json.loads(completed.stdout)
    for key, label in (("direct", "on the loop thread"), ("threaded", "caller thread -> loop thread")):
        latencies = floors[key]
        sample = Sample.from_ns(latencies, len(latencies) / (sum(latencies) / 1e9))
        report.add(Row.of(f"floor: tornado WebSocket echo, {label}", sample, notes=f"64 B, N={len(latencies)}"))


# -- main ------------------------------------------------------------------
def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
    }


def run(plan: Plan, quick: bool) -> Report:
    report = Report(details={"quick": quick, "plan": asdict(plan), "machine": machine()})
    with tempfile.TemporaryDirectory(prefix="greenroom-bench-") as temporary:
        workdir = Path(temporary)
        progress("plain jupyter server (baseline RSS)")
        plain = baseline_rss(workdir)
        report.details["plain_server_rss_mb"] = plain
        bench_persistent(workdir, plan, report, plain)
        bench_fresh(workdir, plan, report)
    bench_floors(plan, report)
    report.details["loadavg_at_end"] = os.getloadavg()
    report.details["seconds"] = time.monotonic() - _START
    return report


def summary(report: Report) -> str:
    details = report.details
    cpus = details["machine"]["cpus"] or 1
    start, end = details["machine"]["loadavg_at_start"][0], details["loadavg_at_end"][0]
    text = (f"{'quick run, ' if details['quick'] else ''}{details['seconds']:.0f} s; {cpus} CPUs, "
            f"1-minute load average {start:.2f} at the start, {end:.2f} at the end")
    if start > cpus / 2:  # the end includes this run's own load
        text += " (other work was running at the start: expect noisy numbers)"
    return text


def save(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"rows": [asdict(row) for row in report.rows], "details": report.details}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small counts, 1 s client runs)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help=f"JSON results file (default {RESULTS_FILE})")
    options = parser.parse_args(argv)
    try:
        report = run(QUICK if options.quick else FULL, options.quick)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130
    save(report, options.output)
    print(render_table(report.rows))
    print(f"\n{summary(report)}; results in {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
