"""The peers, measured in the same run as greenroom: round trip of ``add(1, 2)``, p50/p99/calls/s.

- Anvil's own worker from the ``anvil-app-server`` wheel, driven over its pipe
  (``peer_anvil.py``): one warm worker, and a fresh worker process per call (Anvil's
  default), with the server module importing pandas as greenroom's does, and bare;
- Jupyter Kernel Gateway in notebook-http mode (``peer_kgw.py``), from one keep-alive
  ``http.client`` connection and from 8 concurrent client processes (``http_client.py``);
- a Dask actor on a ``LocalCluster`` with one worker process (``peer_dask.py``).

Each peer is a ``bench`` extra (never a runtime dependency), listens on 127.0.0.1 only,
runs within a time bound and is ended by its pid.  A peer that cannot be measured gets a
row saying why; the rest of the run goes on.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import peer_anvil
import peer_kgw
from common import (
    BenchmarkError,
    Plan,
    Report,
    Row,
    clean_environment,
    end_process,
    last_json,
    progress,
    run_together,
    sample_of,
)

HERE = Path(__file__).resolve().parent
HTTP_CLIENT_SCRIPT = HERE / "http_client.py"
DASK_SCRIPT = HERE / "peer_dask.py"
DASK_TIMEOUT = 120.0

ANVIL_WARM = "peer: Anvil worker, warm (1 process)"
ANVIL_FRESH = "peer: Anvil worker, fresh process per call"
ANVIL_FRESH_BARE = "peer: Anvil worker, fresh process, bare module"
KGW_ONE = "peer: Kernel Gateway notebook-http (1 client)"
DASK_ACTOR = "peer: Dask actor, actor.add(1,2).result()"


def bench_peers(workdir: Path, plan: Plan, report: Report) -> None:
    for name, step in (("Anvil", bench_anvil), ("Kernel Gateway", bench_kernel_gateway), ("Dask", bench_dask)):
        progress(f"peer: {name}")
        step(workdir, plan, report)


def _guarded(report: Report, rows: list[str], measure: Callable[[], None], unavailable: str | None) -> None:
    """Run ``measure``; if the peer is missing or fails, the rows it did not add say why."""
    reason = unavailable
    if reason is None:
        try:
            measure()
            return
        except (BenchmarkError, OSError, ValueError, KeyError) as error:
            progress(f"  peer failed: {type(error).__name__}: {error}")  # the whole story, log tail included
            reason = (str(error).splitlines() or [type(error).__name__])[0]
    done = {row.what for row in report.rows}
    for what in rows:
        if what not in done:
            report.add(Row.not_measured(what, reason))


def bench_anvil(workdir: Path, plan: Plan, report: Report) -> None:
    def measure() -> None:
        sample = peer_anvil.warm(workdir, plan.peer_calls, plan.peer_warmup)
        report.add(
            Row.of(
                ANVIL_WARM,
                sample,
                notes=f"N={plan.peer_calls}; harness plays Anvil's host over the worker's "
                "stdin/stdout (no Java server)",
            ),
            plotted=sample,
        )
        sample = peer_anvil.fresh(workdir, plan.fresh_process_calls, peer_anvil.PANDAS_SERVER_MODULE)
        report.add(
            Row.of(
                ANVIL_FRESH,
                sample,
                notes=f"N={plan.fresh_process_calls}; Anvil's default; module imports "
                "pandas like greenroom's; start -> answer",
            ),
            plotted=sample,
        )
        sample = peer_anvil.fresh(workdir, plan.fresh_process_calls, peer_anvil.SERVER_MODULE)
        report.add(Row.of(ANVIL_FRESH_BARE, sample, notes=f"N={plan.fresh_process_calls}; no pandas"), plotted=sample)

    _guarded(report, [ANVIL_WARM, ANVIL_FRESH, ANVIL_FRESH_BARE], measure, peer_anvil.available())


def bench_kernel_gateway(workdir: Path, plan: Plan, report: Report) -> None:
    many = f"peer: Kernel Gateway notebook-http ({plan.clients} clients)"

    def measure() -> None:
        gateway = peer_kgw.KernelGateway(workdir)
        try:
            gateway.start()
            client = [sys.executable, str(HTTP_CLIENT_SCRIPT), str(gateway.port)]
            results = run_together(
                [[*client, "--count", str(plan.http_calls)]],
                gateway.directory,
                timeout=60.0 + plan.http_calls * 0.1,
                env=clean_environment(),
            )
            sample = sample_of(results)
            report.add(
                Row.of(KGW_ONE, sample, notes=f"N={plan.http_calls}; http.client keep-alive, POST /add"), plotted=sample
            )
            results = run_together(
                [[*client, "--seconds", str(plan.client_seconds)]] * plan.clients,
                gateway.directory,
                timeout=plan.client_seconds + 60.0,
                env=clean_environment(),
            )
            report.add(
                Row.of(
                    many,
                    sample_of(results),
                    notes=f"{plan.client_seconds:g} s, latency under load; one kernel (the default)",
                )
            )
        finally:
            gateway.stop()

    _guarded(report, [KGW_ONE, many], measure, peer_kgw.available())


def bench_dask(workdir: Path, plan: Plan, report: Report) -> None:
    def measure() -> None:
        directory = workdir / "dask"
        directory.mkdir(exist_ok=True)
        command = [
            sys.executable,
            str(DASK_SCRIPT),
            "--calls",
            str(plan.peer_calls),
            "--warmup",
            str(plan.peer_warmup),
            "--directory",
            str(directory),
        ]
        sample = sample_of([_run_script(command, directory / "dask.log", DASK_TIMEOUT)])
        report.add(
            Row.of(DASK_ACTOR, sample, notes=f"N={plan.peer_calls}; LocalCluster, 1 worker process"), plotted=sample
        )

    unavailable = (
        None if importlib.util.find_spec("distributed") else "distributed is not installed (pip install '.[bench]')"
    )
    _guarded(report, [DASK_ACTOR], measure, unavailable)


def _run_script(command: list[str], log_path: Path, timeout: float) -> dict[str, Any]:
    """Run a peer script in a session of its own, bounded by ``timeout``; the JSON it prints last."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=clean_environment(),
            start_new_session=True,
        )
    try:
        return last_json(process, log_path, time.monotonic() + timeout)
    finally:
        end_process(process, grace=10.0, group=True)
        if process.stdout is not None:
            process.stdout.close()
