"""Processes started by tests: free ports, readiness, and ending only our own pids."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60, any_status: bool = True) -> None:
    """Poll ``url`` until it answers (any HTTP status, or only success) or the process dies or time runs out."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            opener.open(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            if any_status:
                return
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def start(
    command: Sequence[str], log_path: str, cwd: str | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = open(log_path, "wb")  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(
        list(command), stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
    )
    process.log_file = log  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM our own child, then SIGKILL its process group if it lingers."""
    pid = process.pid
    if pid > 1 and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if pid > 1:
        try:
            os.killpg(pid, signal.SIGKILL)  # the session we created for it: its leftover children only
        except (ProcessLookupError, PermissionError):
            pass
    process.log_file.close()  # type: ignore[attr-defined]


DASK = os.path.join(os.path.dirname(sys.executable), "dask")
#: A lost worker's tasks are not retried on another (greenroom says the call was cut off instead).
DASK_ENV = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}


def start_dask_cluster(
    directory: Path, workers: int = 2, port: int = 0, tls: dict[str, str] | None = None, nanny: bool = False
) -> dict[str, Any]:
    """A scheduler (on ``port``, else a free one) and ``workers`` workers named ``w0``, ``w1``... (no nanny
    unless asked: the worker's pid is then its process), every port on 127.0.0.1.  Each worker's environment
    says its name in ``TEST_DASK_WORKER``, so server code can tell where it ran.  With ``tls`` (``ca``,
    ``cert``, ``key``: PEM files) every connection is TLS and the address ``tls://``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    address = f"{'tls' if tls else 'tcp'}://127.0.0.1:{port}"
    security = ["--tls-ca-file", tls["ca"], "--tls-cert", tls["cert"], "--tls-key", tls["key"]] if tls else []
    command = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", *security]
    scheduler = start(
        [*command, "--dashboard-address", "127.0.0.1:0"],
        str(directory / "scheduler.log"),
        env={**os.environ, **DASK_ENV},
    )
    cluster: dict[str, Any] = {
        "address": address,
        "port": port,
        "scheduler": scheduler,
        "workers": [],
        "directory": directory,
        "options": [*security, "--nanny" if nanny else "--no-nanny"],
    }
    try:
        for index in range(workers):
            start_dask_worker(cluster, index)
    except AssertionError:
        stop_dask_cluster(cluster)
        raise
    return cluster


def start_dask_worker(cluster: dict[str, Any], index: int) -> None:
    """Start worker ``w<index>`` (again, if it was lost: it replaces ``cluster["workers"][index]``) and wait
    until the scheduler has it."""
    directory = cluster["directory"]
    log = directory / f"worker{index}-{time.monotonic_ns()}.log"
    arguments = ["--host", "127.0.0.1", "--nthreads", "2", *cluster["options"], "--memory-limit", "0"]
    arguments += ["--dashboard-address", "127.0.0.1:0", "--local-directory", str(directory / f"worker{index}")]
    env = {**os.environ, **DASK_ENV, "TEST_DASK_WORKER": f"w{index}"}
    process = start([DASK, "worker", cluster["address"], *arguments], str(log), env=env)
    workers = cluster["workers"]
    if index < len(workers):
        stop(workers[index])  # the lost one: reaped, its log closed
    workers[index : index + 1] = [process]
    deadline = time.monotonic() + 60
    while "Registered to" not in log.read_text():
        if time.monotonic() > deadline or process.poll() is not None or cluster["scheduler"].poll() is not None:
            raise AssertionError(f"Dask worker w{index} did not start:\n{log.read_text()}")
        time.sleep(0.1)


def stop_dask_cluster(cluster: dict[str, Any]) -> None:
    for process in [*cluster["workers"], cluster["scheduler"]]:
        stop(process, grace=15)
