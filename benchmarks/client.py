"""One external greenroom client process, driven by ``benchmarks/run.py``.

It connects with ``greenroom.connect(url, token=...)`` (the token comes from the
``GREENROOM_BENCH_TOKEN`` environment variable, so it does not show in ``ps``),
warms up, prints ``ready`` and waits for ``go`` on stdin, so that several clients
start measuring together.  Then it measures and writes one JSON object to ``--out``:

- ``calls``: ``add(1, 2)`` back to back, for ``--seconds`` or ``--count`` calls
  (whichever is given; ``--max-seconds`` bounds a counted run);
- ``media``: ``echo`` of a ``greenroom.BlobMedia`` of ``--bytes`` bytes, ``--repeat`` times;
- ``data``: ``echo`` of a pandas DataFrame (``--kind frame``: float, int, string and categorical columns) or a
  float64 numpy array (``--kind array``) of about ``--bytes`` bytes, ``--repeat`` times, and the same value
  written and read back locally in its wire format (Arrow IPC, or ``.npy``) as the baseline.

Latencies are nanoseconds from ``time.perf_counter_ns`` around each call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import greenroom
from greenroom import server

TOKEN_VARIABLE = "GREENROOM_BENCH_TOKEN"
WARMUP_CALLS = 50
WARMUP_MEDIA = 2


def run_calls(seconds: float | None, count: int | None, max_seconds: float, record: bool) -> dict[str, Any]:
    """Call ``add(1, 2)`` until the time or the count is reached."""
    latencies: list[int] = []
    limit = count if count is not None else sys.maxsize
    started = time.perf_counter_ns()
    deadline = started + int((seconds if seconds is not None else max_seconds) * 1e9)
    done = 0
    now = started
    while done < limit and now < deadline:
        before = now
        result = server.call_s("add", 1, 2)
        now = time.perf_counter_ns()
        if result != 3:
            raise AssertionError(f"add(1, 2) returned {result!r}")
        if record:
            latencies.append(now - before)
        done += 1
    return {"calls": done, "seconds": (now - started) / 1e9, "latencies_ns": latencies}


def timed_echoes(value: Any, repeat: int, warmup: int, same: Any, what: str) -> dict[str, Any]:
    """Echo ``value`` ``warmup`` times untimed, then ``repeat`` times timed, checking each answer with ``same``."""
    for _ in range(warmup):
        server.call_s("echo", value)
    latencies: list[int] = []
    started = time.perf_counter_ns()
    for _ in range(repeat):
        before = time.perf_counter_ns()
        echoed = server.call_s("echo", value)
        latencies.append(time.perf_counter_ns() - before)
        if not same(echoed, value):
            raise AssertionError(f"echo did not return the same {what}")
    return {"calls": repeat, "seconds": (time.perf_counter_ns() - started) / 1e9, "latencies_ns": latencies}


def run_media(size: int, repeat: int) -> dict[str, Any]:
    """Echo a BlobMedia of ``size`` bytes ``repeat`` times, checking the bytes that come back."""
    media = greenroom.BlobMedia("application/octet-stream", os.urandom(size), name="bench.bin")

    def same(echoed: Any, sent: greenroom.BlobMedia) -> bool:
        return isinstance(echoed, greenroom.Media) and echoed.get_bytes() == sent.get_bytes()

    return timed_echoes(media, repeat, WARMUP_MEDIA, same, "Media")


def make_data(kind: str, size: int) -> Any:
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(0)
    if kind == "array":
        return generator.random(size // 8).reshape(-1, 1024)
    rows = size // 25  # 8 + 8 + 1 + 8 bytes a row (the 1 MiB frame holds strings instead: more)
    return pd.DataFrame(
        {
            "value": generator.random(rows),
            "count": generator.integers(0, 1000, rows),
            "label": pd.Categorical.from_codes(generator.integers(0, 4, rows), ["a", "b", "c", "d"]),
            "code": generator.integers(0, 1 << 40, rows).astype(str).astype(object)
            if rows <= 100_000
            else generator.random(rows),
        }
    )


def local_round_trip(value: Any) -> Any:
    """Write ``value`` in its wire format and read it back, in this process (the baseline)."""
    import io

    import numpy as np
    import pyarrow as pa

    if isinstance(value, np.ndarray):
        stream = io.BytesIO()
        np.save(stream, value, allow_pickle=False)
        return np.load(io.BytesIO(stream.getbuffer()), allow_pickle=False)
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(value)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return pa.ipc.open_stream(sink.getvalue()).read_all().to_pandas()


def run_data(kind: str, size: int, repeat: int) -> dict[str, Any]:
    """Echo an array or a DataFrame ``repeat`` times, and time the local write-and-read of the same value."""
    import numpy as np
    import pandas as pd

    value = make_data(kind, size)
    same = np.array_equal if kind == "array" else (lambda a, b: pd.testing.assert_frame_equal(a, b) is None)
    result = timed_echoes(value, repeat, 1, same, kind)
    local: list[int] = []
    for _ in range(repeat):
        before = time.perf_counter_ns()
        local_round_trip(value)
        local.append(time.perf_counter_ns() - before)
    nbytes = value.nbytes if kind == "array" else int(value.memory_usage(index=True, deep=True).sum())
    return {**result, "local_ns": local, "bytes": nbytes}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the Jupyter server's URL")
    parser.add_argument("--out", required=True, help="file to write the JSON result to")
    parser.add_argument(
        "--runtime-file", help="call over the local socket this host runtime file names (a process on its machine)"
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    calls = modes.add_parser("calls", help="add(1, 2) back to back")
    amount = calls.add_mutually_exclusive_group(required=True)
    amount.add_argument("--seconds", type=float)
    amount.add_argument("--count", type=int)
    calls.add_argument("--max-seconds", type=float, default=60.0, help="bound of a --count run")
    calls.add_argument("--no-latencies", action="store_true", help="count calls only")
    media = modes.add_parser("media", help="echo a BlobMedia")
    media.add_argument("--bytes", type=int, required=True)
    media.add_argument("--repeat", type=int, required=True)
    data = modes.add_parser("data", help="echo a DataFrame or a numpy array")
    data.add_argument("--kind", choices=["frame", "array"], required=True)
    data.add_argument("--bytes", type=int, required=True)
    data.add_argument("--repeat", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    if options.runtime_file:
        from greenroom.connection import Endpoint
        from greenroom.localconnection import LocalConnection

        with open(options.runtime_file, encoding="utf-8") as handle:
            info = json.load(handle)
        headers = {"X-Greenroom-Token": info["token"], "X-Greenroom-Kernel-Id": ""}
        server.set_transport(LocalConnection(Endpoint(info["url"], headers, "benchmark", info["socket"])))
    else:
        greenroom.connect(options.url, token=os.environ.get(TOKEN_VARIABLE))
    if options.mode == "calls":
        for _ in range(WARMUP_CALLS):
            server.call_s("add", 1, 2)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1  # the driver gave up on this run
    if options.mode == "calls":
        result = run_calls(options.seconds, options.count, options.max_seconds, not options.no_latencies)
    elif options.mode == "media":
        result = run_media(options.bytes, options.repeat)
    else:
        result = run_data(options.kind, options.bytes, options.repeat)
    with open(options.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
