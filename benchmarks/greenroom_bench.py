"""greenroom's rows: ``add(1, 2)`` in persistent and fresh state, RSS over 100,000 calls, Media, the floors.

Each ``bench_*`` function adds its rows (and the latencies to plot) to a :class:`common.Report`.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

from common import BenchmarkError, Plan, Report, Row, Sample, progress
from procstat import rss_mb
from servers import CpuMeter, JupyterServer, Kernel, run_clients, running
from task_bench import bench_tasks

HERE = Path(__file__).resolve().parent
WS_FLOOR_SCRIPT = HERE / "ws_floor.py"
WARM_FRACTION = 0.2  # RSS growth is judged from this share of the calls (20,000 of 100,000) to the end
GROWTH_TOLERANCE_MB = 5.0  # allocator noise; a leak of 64 bytes per call over 80,000 calls would be 5 MB

KERNEL_LOOP = """\
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
"""


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


def concurrent_rate(server: JupyterServer, plan: Plan, local: bool = False) -> Sample:
    """``plan.clients`` processes calling back to back for ``plan.client_seconds``: total calls/s (over the
    local call socket with ``local``, else the WebSocket)."""
    results = run_clients(
        server,
        plan.clients,
        ["calls", "--seconds", str(plan.client_seconds)],
        timeout=plan.client_seconds + 60,
        local=local,
    )
    latencies = [value for result in results for value in result["latencies_ns"]]
    return Sample.from_ns(latencies, sum(result["calls"] / result["seconds"] for result in results))


def single_client(server: JupyterServer, plan: Plan) -> Sample:
    (result,) = run_clients(server, 1, ["calls", "--count", str(plan.external_calls)], timeout=120)
    return Sample.from_ns(result["latencies_ns"], result["calls"] / result["seconds"])


def media_round_trips(server: JupyterServer, plan: Plan, local: bool = False) -> Sample:
    """Echo a BlobMedia from a process over the WebSocket (``local``: over the host's local call socket)."""
    (result,) = run_clients(
        server,
        1,
        ["media", "--bytes", str(plan.media_bytes), "--repeat", str(plan.media_repeat)],
        timeout=120,
        local=local,
    )
    return Sample.from_ns(result["latencies_ns"], result["calls"] / result["seconds"])


def data_round_trips(
    server: JupyterServer, kind: str, size: int, repeat: int, local: bool = False
) -> tuple[Sample, Sample, int]:
    """Echo a DataFrame or an array of about ``size`` bytes (over the WebSocket; ``local``: over the local
    call socket): greenroom's latencies, the local write-and-read baseline's, and the value's size in bytes."""
    (result,) = run_clients(
        server, 1, ["data", "--kind", kind, "--bytes", str(size), "--repeat", str(repeat)], timeout=300, local=local
    )
    greenroom = Sample.from_ns(result["latencies_ns"], result["calls"] / result["seconds"])
    local = Sample.from_ns(result["local_ns"], 0.0)
    return greenroom, local, result["bytes"]


def report_data(server: JupyterServer, plan: Plan, report: Report) -> None:
    """DataFrames and arrays echoed, against writing and reading their wire format locally (DESIGN.md: a
    100 MB DataFrame within 2x of its Arrow IPC write and read)."""
    for kind, size, repeat, local_format, over_socket in (
        ("frame", 1 << 20, plan.data_repeat_small, "Arrow IPC", False),
        ("frame", 100 << 20, plan.data_repeat_large, "Arrow IPC", False),
        ("frame", 100 << 20, plan.data_repeat_large, "Arrow IPC", True),
        ("array", 100 << 20, plan.data_repeat_large, ".npy", False),
    ):
        what = "DataFrame" if kind == "frame" else "float64 array"
        path = ", local socket" if over_socket else ""
        progress(f"persistent: {size >> 20} MiB {what} echo{path}")
        sample, baseline, nbytes = data_round_trips(server, kind, size, repeat, over_socket)
        ratio = sample.p50 / baseline.p50
        target_met = ratio <= 2.0 if kind == "frame" and size >= 100 << 20 else None
        report.add(
            Row.of(
                f"persistent: {nbytes / 2**20:.0f} MiB {what} echo{path}",
                sample,
                "<=2x local" if target_met is not None else "-",
                target_met,
                f"N={repeat}; local {local_format} write+read p50 {baseline.p50:.1f} ms; ratio {ratio:.2f}",
            )
        )


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
        server,
        plan.clients,
        ["calls", "--count", str(per_client), "--max-seconds", str(plan.load_max_seconds), "--no-latencies"],
        timeout=plan.load_max_seconds + 60,
        on_tick=lambda: trace.record(server),
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
        report.add(
            Row.of(
                "persistent: add(1,2) from a kernel",
                sample,
                "p99<=1 (p50: vs Anvil below)",
                sample.p99 <= 1.0,
                f"N={plan.kernel_calls_persistent}; {cpu.note()}",
            ),
            plotted=sample,
        )
        with CpuMeter(server) as cpu:
            sample = single_client(server, plan)
        report.add(
            Row.of(
                "persistent: add(1,2) from a script (1 client)",
                sample,
                notes=f"N={plan.external_calls}, greenroom.connect; {cpu.note()}",
            ),
            plotted=sample,
        )
        progress(f"persistent: {plan.clients} concurrent clients")
        with CpuMeter(server) as cpu:
            sample = concurrent_rate(server, plan)
        report.add(
            Row.of(
                f"persistent: {plan.clients} concurrent clients",
                sample,
                "report (WebSocket)",
                None,
                f"{plan.client_seconds:g} s, latency under load; {cpu.note()}",
            )
        )
        progress(f"persistent: {plan.clients} concurrent clients over the local socket")
        with CpuMeter(server) as cpu:
            sample = concurrent_rate(server, plan, local=True)
        report.add(
            Row.of(
                f"persistent: {plan.clients} concurrent clients, local socket",
                sample,
                ">=10000 calls/s",
                sample.calls_per_s >= 10000,
                f"{plan.client_seconds:g} s, processes on the host's machine; {cpu.note()}",
            )
        )
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
        report.add(
            Row.of(
                f"persistent: {plan.media_bytes / 2**20:g} MiB BlobMedia echo",
                sample,
                "p50<=30",
                sample.p50 <= 30.0,
                f"N={plan.media_repeat}; host RSS {before:.0f} -> {rss_mb(server.pid):.0f} MB",
            )
        )
        progress("persistent: Media echo over the local socket")
        sample = media_round_trips(server, plan, local=True)
        report.add(
            Row.of(
                f"persistent: {plan.media_bytes / 2**20:g} MiB BlobMedia echo, local socket",
                sample,
                "p50<=30",
                sample.p50 <= 30.0,
                f"N={plan.media_repeat}; what a kernel on the host's machine sends",
            )
        )
        report_data(server, plan, report)
        bench_tasks(kernel, plan, report)


def report_memory(
    report: Report, trace: MemoryTrace, plan: Plan, plain_rss: float, made: int, rate: float | None
) -> None:
    start_calls, start_rss = trace.samples[0]
    end_calls, end_rss = trace.samples[-1]
    warm_calls, warm_rss = trace.at_calls(int(plan.total_calls * WARM_FRACTION))
    shortfall = "" if end_calls >= plan.total_calls else f"; ONLY {end_calls:,} calls within the time bound"
    overhead = end_rss - plain_rss
    report.add(
        Row(
            f"host RSS overhead after {end_calls:,} calls",
            target="<=60 MB",
            met=overhead <= 60.0,
            calls_per_s=rate,
            notes=(
                f"{overhead:+.1f} MB: {end_rss:.1f} MB vs plain jupyter server {plain_rss:.1f} MB; "
                f"{made:,} of the calls (and the calls/s) by {plan.clients} clients{shortfall}"
            ),
        )
    )
    growth = end_rss - warm_rss
    report.add(
        Row(
            f"host RSS growth, {warm_calls:,} -> {end_calls:,} calls",
            target=f"no growth (<={GROWTH_TOLERANCE_MB:g} MB)",
            met=growth <= GROWTH_TOLERANCE_MB,
            notes=(
                f"{growth:+.1f} MB ({warm_rss:.1f} -> {end_rss:.1f}); from the start ({start_calls} calls, "
                f"{start_rss:.1f} MB): {end_rss - start_rss:+.1f} MB; peak {max(rss for _, rss in trace.samples):.1f} MB"
            ),
        )
    )


def bench_fresh(workdir: Path, plan: Plan, report: Report) -> None:
    with running(JupyterServer(workdir, "fresh", {"persistent": False})) as server:
        kernel = server.start_kernel()
        progress(f"fresh: add(1, 2) from a kernel, paced {plan.pace_ms:g} ms apart")
        with CpuMeter(server) as cpu:
            sample = kernel_round_trips(kernel, plan.paced_calls, plan.kernel_warmup // 4, plan.pace_ms)
        report.add(
            Row.of(
                f"fresh: add(1,2) from a kernel, paced {plan.pace_ms:g} ms",
                sample,
                "p50<=1",
                sample.p50 <= 1.0,
                f"N={plan.paced_calls}; {cpu.note()}",
            ),
            plotted=sample,
        )
        progress("fresh: add(1, 2) from a kernel, back to back")
        with CpuMeter(server) as cpu:
            sample = kernel_round_trips(kernel, plan.kernel_calls_fresh, plan.kernel_warmup // 4)
        report.add(
            Row.of(
                "fresh: add(1,2) from a kernel, back to back",
                sample,
                ">=1000 calls/s",
                sample.calls_per_s >= 1000,
                notes=f"N={plan.kernel_calls_fresh}; {cpu.note()}",
            ),
            plotted=sample,
        )
        progress(f"fresh: {plan.clients} concurrent clients")
        with CpuMeter(server) as cpu:
            sample = concurrent_rate(server, plan)
        report.add(
            Row.of(
                f"fresh: {plan.clients} concurrent clients",
                sample,
                "report",
                notes=f"{plan.client_seconds:g} s, latency under load; {cpu.note()}",
            )
        )
        progress("fresh: Media echo")
        sample = media_round_trips(server, plan)
        report.add(
            Row.of(
                f"fresh: {plan.media_bytes / 2**20:g} MiB BlobMedia echo",
                sample,
                "p50<=30",
                sample.p50 <= 30.0,
                f"N={plan.media_repeat}",
            )
        )


def add(a: int, b: int) -> int:
    return a + b


def bench_floors(plan: Plan, report: Report) -> None:
    progress("floors")
    timer = timeit.Timer("add(1, 2)", globals={"add": add})
    number = 200_000
    per_call_ms = [seconds / number * 1e3 for seconds in timer.repeat(repeat=7, number=number)]
    median = statistics.median(per_call_ms)
    report.add(
        Row(
            "floor: in-process Python call",
            median,
            None,
            1e3 / median,
            notes=f"{median * 1e6:.0f} ns; timeit, median of 7 x {number:,}",
        )
    )
    try:
        completed = subprocess.run(
            [
                sys.executable,
                str(WS_FLOOR_SCRIPT),
                "--calls",
                str(plan.floor_calls),
                "--large-bytes",
                str(100 << 20),
                "--large-calls",
                str(plan.data_repeat_large),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError("the WebSocket floor did not finish within 120 s") from None
    except subprocess.CalledProcessError as error:
        raise BenchmarkError(f"the WebSocket floor failed:\n{error.stderr[-2000:]}") from None
    floors = json.loads(completed.stdout)
    for key, label in (("direct", "on the loop thread"), ("threaded", "caller thread -> loop thread")):
        latencies = floors[key]
        sample = Sample.from_ns(latencies, len(latencies) / (sum(latencies) / 1e9))
        report.add(
            Row.of(f"floor: tornado WebSocket echo, {label}", sample, notes=f"64 B, N={len(latencies)}"), plotted=sample
        )
    large = floors["large"]
    sample = Sample.from_ns(large, len(large) / (sum(large) / 1e9))
    report.add(
        Row.of(
            "floor: tornado WebSocket echo, 100 MiB",
            sample,
            notes=f"N={len(large)}; the least a 100 MiB array or table costs over a WebSocket",
        )
    )
