"""Peer: a Dask actor on a local cluster, run as its own process by ``benchmarks/peers.py``.

``python peer_dask.py --calls N --warmup W --directory DIR`` starts a
``distributed.LocalCluster`` with one worker process (one thread) on 127.0.0.1, with no
dashboard and its scratch space in DIR, creates an actor holding ``add(a, b)``, times
``actor.add(1, 2).result()`` N times after W warm-up calls, closes the cluster and
prints one JSON object: ``calls``, ``seconds``, ``latencies_ns``.

The driver starts this script in a session of its own and ends that process group,
so the cluster's nanny and worker processes cannot outlive a run that hangs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from distributed import Client, LocalCluster

START_TIMEOUT = 60  # seconds for the cluster to come up


class Adder:
    """The actor: lives in the worker process; the client calls its methods remotely."""

    def add(self, a: int, b: int) -> int:
        return a + b


def measure(actor: Any, calls: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        assert actor.add(1, 2).result() == 3
    latencies: list[int] = []
    started = time.perf_counter_ns()
    for _ in range(calls):
        before = time.perf_counter_ns()
        result = actor.add(1, 2).result()
        latencies.append(time.perf_counter_ns() - before)
        assert result == 3, result
    return {"calls": calls, "seconds": (time.perf_counter_ns() - started) / 1e9, "latencies_ns": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--directory", required=True, help="the workers' scratch space")
    options = parser.parse_args(argv)
    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        local_directory=options.directory,
        dashboard_address=None,
        # No dashboard, and the scheduler's HTTP endpoints (/health, /metrics) on a free loopback port
        # instead of 8787.
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        timeout=START_TIMEOUT,
    )
    try:
        with Client(cluster, timeout=START_TIMEOUT) as client:
            actor = client.submit(Adder, actor=True).result(timeout=START_TIMEOUT)
            result = measure(actor, options.calls, options.warmup)
    finally:
        cluster.close(timeout=10)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
