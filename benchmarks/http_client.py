"""One HTTP client process for the Kernel Gateway peer, driven by ``benchmarks/peers.py``.

``python http_client.py PORT (--count N | --seconds S)`` opens one keep-alive
``http.client`` connection to ``127.0.0.1:PORT``, warms up with ``POST /add``
``{"a": 1, "b": 2}``, prints ``ready``, waits for ``go`` on stdin, then posts back to
back (checking that the answer is ``3``) and prints one JSON object: ``calls``,
``seconds`` and ``latencies_ns`` (``time.perf_counter_ns`` around each request).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from typing import Any

BODY = json.dumps({"a": 1, "b": 2})
HEADERS = {"Content-Type": "application/json"}
WARMUP = 20
TIMEOUT = 30.0


def post(connection: http.client.HTTPConnection) -> None:
    """One ``POST /add``; raises unless the answer is 200 with ``3``."""
    connection.request("POST", "/add", BODY, HEADERS)
    response = connection.getresponse()
    text = response.read().decode(errors="replace").strip()
    if response.status != 200 or text != "3":
        raise RuntimeError(f"POST /add answered {response.status}: {text[:200]!r}")


def measure(connection: http.client.HTTPConnection, count: int | None, seconds: float | None) -> dict[str, Any]:
    latencies: list[int] = []
    limit = count if count is not None else sys.maxsize
    started = time.perf_counter_ns()
    deadline = started + int((seconds if seconds is not None else TIMEOUT * 10) * 1e9)
    now = started
    while len(latencies) < limit and now < deadline:
        before = now
        post(connection)
        now = time.perf_counter_ns()
        latencies.append(now - before)
    return {"calls": len(latencies), "seconds": (now - started) / 1e9, "latencies_ns": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--count", type=int)
    amount.add_argument("--seconds", type=float)
    options = parser.parse_args(argv)
    connection = http.client.HTTPConnection("127.0.0.1", options.port, timeout=TIMEOUT)
    try:
        for _ in range(WARMUP):
            post(connection)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1  # the driver gave up on this run
        print(json.dumps(measure(connection, options.count, options.seconds)))
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
