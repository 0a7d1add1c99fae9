"""Where a call's time goes: CPU per call on each side, and the host's hottest functions.

``.venv/bin/python benchmarks/profile_calls.py --mode persistent`` (or ``fresh``, ``dask``) runs ``add(1, 2)``
from a kernel a real Jupyter server with greenroom launched, and prints the p50 latency and the CPU each
call cost the client (the kernel), the host (the Jupyter server process) and the runtime (the template
and its workers; on Dask the Dask worker and everything under it).  With ``--py-spy PATH`` it also samples
the host with py-spy during the calls and prints the functions it spent most time in (their own time, and
with what they called).  The numbers are this machine's: run it with nothing else running.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common import BenchmarkError, end_process
from dask_bench import dask_cluster
from greenroom_bench import kernel_round_trips
from procstat import cpu_seconds, tree_cpu_seconds, user_system_seconds
from servers import JupyterServer, Kernel, running

MODES = {
    "persistent": {"persistent": True, "workers": 1},
    "fresh": {"prefork": 2},
    "dask": {"persistent": True, "workers": 1},
}


def faults(pid: int) -> int:
    """Minor page faults of ``pid`` and of the children it has reaped (a fresh worker's copy-on-write pages
    show up in its template's count once reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return int(fields[7]) + int(fields[8])


def kernel_pid(kernel: Kernel) -> int:
    return int(kernel.run("import os\nprint(os.getpid())", timeout=30).strip().splitlines()[-1])


def dask_worker_pid(server: JupyterServer) -> int:
    status = server.api("GET", "greenroom/api/status")
    workers = status.get("dask", {}).get("workers", [])
    if not workers:
        raise BenchmarkError("the host reports no Dask worker")
    port = int(workers[0]["address"].rsplit(":", 1)[1])
    found = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    for part in found.split("pid=")[1:]:
        return int(part.split(",")[0])
    raise BenchmarkError(f"no process listens on the Dask worker's port {port}")


@contextmanager
def sampling(py_spy: str | None, pid: int, seconds: float, out: Path) -> Iterator[None]:
    """py-spy records ``pid`` (raw collapsed stacks) for ``seconds`` while the block runs."""
    if py_spy is None:
        yield
        return
    process = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "500",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        try:
            process.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            end_process(process)


def hottest(raw: Path, top: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Each function's share of the samples: on its own (leaf) and with what it called (anywhere on the stack)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return [], []
    return (
        [(frame, count / total) for frame, count in own.most_common(top)],
        [(frame, count / total) for frame, count in inclusive.most_common(top)],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="persistent")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--py-spy", help="path to py-spy, to sample the host during the calls")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pace-ms", type=float, default=0.0, help="time between calls (fresh: let forks keep up)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="greenroom-profile-") as temporary, ExitStack() as stack:
        workdir = Path(temporary)
        options = dict(MODES[arguments.mode])
        if arguments.mode == "dask":
            options["dask_scheduler"] = stack.enter_context(dask_cluster(workdir / "dask", 1))
        server = stack.enter_context(running(JupyterServer(workdir, arguments.mode, options)))
        kernel = server.start_kernel()
        kernel_round_trips(kernel, 300, 50)  # warm: templates forked, Dask nodes loaded
        client_pid = kernel_pid(kernel)
        runtime_pid = dask_worker_pid(server) if arguments.mode == "dask" else server.template_pid()
        if runtime_pid is None:
            raise BenchmarkError("no template pid")
        before = (cpu_seconds(client_pid)[0], cpu_seconds(server.pid)[0], tree_cpu_seconds(runtime_pid))
        faults_before = faults(runtime_pid)
        host_split_before = user_system_seconds(server.pid)
        started = time.monotonic()
        raw = workdir / "host.raw"
        budget = max(5.0, arguments.calls * 0.004)
        with sampling(arguments.py_spy, server.pid, budget, raw):
            sample = kernel_round_trips(kernel, arguments.calls, 0, arguments.pace_ms)
        seconds = time.monotonic() - started
        after = (cpu_seconds(client_pid)[0], cpu_seconds(server.pid)[0], tree_cpu_seconds(runtime_pid))
        host_split = [
            (a - b) / arguments.calls * 1e3
            for a, b in zip(user_system_seconds(server.pid), host_split_before, strict=True)
        ]
        faults_per_call = (faults(runtime_pid) - faults_before) / arguments.calls
        per_call = [(after[i] - before[i]) / arguments.calls * 1e3 for i in range(3)]
        result = {
            "mode": arguments.mode,
            "calls": arguments.calls,
            "p50_ms": round(sample.p50, 3),
            "p99_ms": round(sample.p99, 3),
            "calls_per_s": round(arguments.calls / seconds),
            "cpu_ms_per_call": dict(zip(("client", "host", "runtime"), (round(v, 3) for v in per_call), strict=True)),
            "host_user_system_ms_per_call": [round(v, 3) for v in host_split],
            "runtime_page_faults_per_call": round(faults_per_call),
        }
        print(json.dumps(result))
        if arguments.py_spy and raw.exists():
            own, inclusive = hottest(raw, arguments.top)
            print(f"\nhost, own time (share of {arguments.calls} calls' samples):")
            for frame, share in own:
                print(f"  {share:6.1%}  {frame}")
            print("\nhost, with what it called:")
            for frame, share in inclusive:
                print(f"  {share:6.1%}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
