"""greenroom on a Dask cluster: a call's latency over Dask against the local runtime, and the throughput of
CPU-bound calls with 1 and 2 Dask workers (DESIGN.md: a call on a Dask worker p50 <= 2 ms; report 1 and 2
workers).

A ``dask scheduler`` and N ``dask worker`` processes (no nanny, one thread each) run on loopback beside a
``jupyter server`` whose greenroom has ``dask_scheduler`` set (persistent state, one greenroom worker per
Dask worker's runtime). On one 2-core machine the workers share the host's cores: the 2-worker row shows
the overhead of spreading, not the gain of a second machine (docs/scaling.md projects that).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import BenchmarkError, Plan, Report, Row, end_process, free_port, progress, tail
from greenroom_bench import kernel_round_trips
from servers import JupyterServer, Kernel, running

BIN = Path(sys.executable).parent
CLUSTER_READY_TIMEOUT = 60.0
#: CPU each burn call spends on its worker (ms).
BURN_MS = 10

BURN_LOOP = """\
import json as _json, time as _time
from concurrent.futures import ThreadPoolExecutor as _Pool
from greenroom import server as _server

def _client(_):
    for _ in range({calls}):
        _server.call_s("burn", {ms})
    return {calls}

_warm_until = _time.perf_counter() + 3  # every runtime loaded and warm before the timing starts
while _time.perf_counter() < _warm_until:
    with _Pool({clients}) as _pool:
        list(_pool.map(lambda _: _server.call_s("burn", 1), range({clients})))
_started = _time.perf_counter()
with _Pool({clients}) as _pool:
    _done = sum(_pool.map(_client, range({clients})))
print(_json.dumps({{"calls": _done, "seconds": _time.perf_counter() - _started}}))
"""


@contextmanager
def dask_cluster(directory: Path, workers: int) -> Iterator[str]:
    """A scheduler and ``workers`` workers on 127.0.0.1 (every HTTP server too); its address."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []

    def launch(name: str, arguments: list[str]) -> None:
        log = directory / f"{name}.log"
        logs.append(log)
        with open(log, "wb") as handle:
            processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), *arguments],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )

    try:
        launch(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
                "--dashboard-address",
                "127.0.0.1:0",
            ],
        )
        for index in range(workers):
            launch(
                f"worker{index}",
                [
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--memory-limit",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--local-directory",
                    str(directory / f"worker{index}"),
                ],
            )
        deadline = time.monotonic() + CLUSTER_READY_TIMEOUT
        while not all("Registered to" in log.read_text(errors="replace") for log in logs[1:]):
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                raise BenchmarkError("the Dask cluster did not start:\n" + "\n".join(tail(log) for log in logs))
            time.sleep(0.1)
        progress(f"dask: scheduler {address} with {workers} worker(s)")
        yield address
    finally:
        for process in reversed(processes):
            end_process(process, grace=15.0)


def burn_rate(kernel: Kernel, clients: int, calls: int) -> float:
    """Calls/s of ``burn(BURN_MS)`` from ``clients`` threads of one kernel, ``calls`` each."""
    import json

    output = kernel.run(BURN_LOOP.format(clients=clients, calls=calls, ms=BURN_MS), timeout=120 + calls * clients * 0.1)
    try:
        result = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchmarkError(f"kernel printed no burn rate: {output[-500:]!r}") from None
    return float(result["calls"]) / float(result["seconds"])


def bench_dask(workdir: Path, plan: Plan, report: Report) -> None:
    calls = plan.kernel_calls_persistent // 2
    burns = 25 if plan.kernel_calls_persistent >= 1000 else 5
    with running(JupyterServer(workdir, "local-burn", {"persistent": True, "workers": 2})) as server:
        kernel = server.start_kernel()
        progress("local: 4 clients x burn(10 ms)")
        local_rate = burn_rate(kernel, 4, burns)
    report.add(
        Row(
            f"local runtime: 4 clients x burn({BURN_MS} ms)",
            None,
            None,
            local_rate,
            "report",
            None,
            "persistent; CPU-bound",
        )
    )
    for workers in (1, 2):
        with dask_cluster(workdir / f"dask{workers}", workers) as address:
            options = {"persistent": True, "workers": 1, "dask_scheduler": address}
            with running(JupyterServer(workdir, f"dask{workers}", options)) as server:
                kernel = server.start_kernel()
                if workers == 1:
                    progress("dask: add(1, 2) from a kernel, 1 worker")
                    sample = kernel_round_trips(kernel, calls, plan.kernel_warmup)
                    report.add(
                        Row.of(
                            "dask: add(1,2) from a kernel (1 Dask worker)",
                            sample,
                            "p50<=2",
                            sample.p50 <= 2.0,
                            f"N={calls}; host -> RuntimeNode actor (direct) -> a forked worker",
                        ),
                        plotted=sample,
                    )
                progress(f"dask: 4 clients x burn({BURN_MS} ms), {workers} worker(s)")
                rate = burn_rate(kernel, 4, burns)
                report.add(
                    Row(
                        f"dask: 4 clients x burn({BURN_MS} ms), {workers} Dask worker(s)",
                        None,
                        None,
                        rate,
                        "report (1 and 2 workers)",
                        None,
                        f"{rate / local_rate:.2f}x the local runtime; workers share this machine's {os.cpu_count()} cores",
                    )
                )
