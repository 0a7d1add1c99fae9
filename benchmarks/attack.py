"""An attacker against honest callers: what one client's flood costs everyone else.

``.venv/bin/python benchmarks/attack.py`` starts a real ``jupyter server`` with greenroom (the benchmark's
server notebook), then measures ten honest clients calling ``add(1, 2)`` in a loop, first alone, then while
one attacker keeps eight calls in flight, each with a 16 MiB argument of 5.6 million empty lists (the
flood found by attacking a running host).  It prints the honest p50/p99 in both phases, how many calls
failed, and the peak memory of the server and its runtime processes.  About a minute; every step is
bounded.  It runs against whichever greenroom is installed, so the same script measures a fix before and
after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

from common import progress
from servers import JupyterServer, running

from greenroom import GreenroomError
from greenroom.api import Server
from greenroom.connection import Connection, Endpoint

FLOOD = b"[[[" + b"[]," * (16 * 1024 * 1024 // 3 - 4) + b"[]]],{}]"
HONEST_CLIENTS = 10
ATTACK_CALLS = 8


def tree_rss_mb(pid: int) -> float:
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def honest(url: str, token: str, stop: threading.Event, latencies: list[float], failures: list[str]) -> None:
    client = Server()
    connection = Connection(Endpoint(url, {"Authorization": f"token {token}"}, "attack benchmark"))
    client.set_transport(connection)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.call_s("add", 1, 2)
                latencies.append(time.perf_counter() - started)
            except GreenroomError as error:
                failures.append(type(error).__name__)
    finally:
        connection.close()


def attacker(url: str, token: str, stop: threading.Event, outcomes: list[str]) -> None:
    connection = Connection(Endpoint(url, {"Authorization": f"token {token}"}, "attacker"))
    try:
        while not stop.is_set():
            try:  # the raw payload: encoding 5.6 million lists in Python would slow the attacker, not the host
                reply = connection.request("call", "echo", FLOOD)
                outcomes.append("ok" if reply.ok else "refused")
            except TypeError:  # a greenroom from before greenroom.protocol: route dicts
                route, _ = connection.request({"kind": "call", "name": "echo"}, FLOOD)  # type: ignore[arg-type]
                outcomes.append("ok" if route.get("ok") else "refused")
            except GreenroomError as error:
                outcomes.append(type(error).__name__)
    finally:
        connection.close()


def phase(server: JupyterServer, seconds: float, attack: bool) -> dict[str, object]:
    stop = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []
    outcomes: list[str] = []
    threads = [
        threading.Thread(target=honest, args=(server.url, server.token, stop, latencies, failures), daemon=True)
        for _ in range(HONEST_CLIENTS)
    ]
    if attack:
        threads += [
            threading.Thread(target=attacker, args=(server.url, server.token, stop, outcomes), daemon=True)
            for _ in range(ATTACK_CALLS)
        ]
    peak = tree_rss_mb(server.pid)
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, tree_rss_mb(server.pid))
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(60)
        peak = max(peak, tree_rss_mb(server.pid))
    ordered = sorted(latencies)
    return {
        "calls": len(ordered),
        "p50_ms": 1000 * statistics.median(ordered) if ordered else None,
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else None,
        "max_ms": 1000 * ordered[-1] if ordered else None,
        "failed": len(failures),
        "attacker": {outcome: outcomes.count(outcome) for outcome in set(outcomes)},
        "peak_rss_mb": round(peak),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="greenroom-attack-") as workdir,
        running(JupyterServer(Path(workdir), "attack", {"persistent": False})) as server,
    ):
        for attack in (False, True):
            progress(f"{'attack' if attack else 'alone'}: {options.seconds:g} s")
            result = phase(server, options.seconds, attack)
            print(f"{'under attack' if attack else 'alone':>12}: {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
