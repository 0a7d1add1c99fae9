"""Processes started by tests: free ports, readiness, and ending only our own pids."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Sequence


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
