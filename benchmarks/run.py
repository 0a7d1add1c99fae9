"""greenroom performance suite: one run, real Jupyter servers, the DESIGN.md targets, floors and peers.

``.venv/bin/python benchmarks/run.py`` (about 7 minutes on 2 cores; every step is
bounded in time), ``benchmarks/run.py --skip-peers`` (without Anvil, Kernel Gateway
and the Dask actor, about 5 minutes) or ``benchmarks/run.py --quick`` (a smoke run
of about 2 minutes).

What it does, with a server notebook that imports pandas (a realistic template):

1. starts a plain ``jupyter server`` (greenroom disabled) with one kernel, for the
   host's baseline RSS;
2. starts ``jupyter server`` with greenroom in persistent mode and measures
   ``add(1, 2)`` from a kernel the server launched (the timing loop runs inside
   the kernel), from one external process, and from 8 concurrent external
   processes (over the WebSocket and over the local call socket); drives the host
   to 100,000 calls while sampling its RSS; echoes a 10 MiB ``BlobMedia``, 1 and
   100 MiB DataFrames and a 100 MiB array (the large ones over both paths);
3. does the same in fresh-state mode (the default), with a paced run (calls
   20 ms apart, slower than the runtime prepares fresh workers) and the
   sustained back-to-back rate;
4. runs a JupyterHub with greenroom as its service and measures a student's call
   through the hub's proxy and 20 students at once (``hub_bench.py``), then greenroom
   in front of a Dask cluster of 1 and 2 workers (``dask_bench.py``);
5. measures the floors: an in-process Python call and a bare tornado WebSocket
   echo on loopback; when the WebSocket floor is slower than the 0.07 ms DESIGN.md's
   absolute targets assume, those targets are scaled by the ratio, as DESIGN says,
   and each such row says so and whether the unscaled target was met;
6. measures the peers on the same ``add(1, 2)`` (see ``peers.py``): Anvil's own
   worker (warm, and a fresh process per call as Anvil does by default), Jupyter
   Kernel Gateway in notebook-http mode (1 and 8 clients), and a Dask actor.

It prints one table (what, p50 ms, p99 ms, calls/s, target, met?, notes; the notes
give the CPU each call cost the host and the runtime) and writes it, with the
run's details and every plotted row's latencies, to ``benchmarks/results/latest.json``.
It draws the latency distributions to ``benchmarks/results/latency.png``; with
``--update-docs`` a full run also copies that plot to ``docs/benchmark-latency.png``
for the README.  Every server and peer is a
subprocess ended by its own pid.  The machine's load average is reported: other
work on a 2-core machine shows up directly in these numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common import FULL, QUICK, BenchmarkError, Plan, Report, Row, elapsed, progress, render_table
from dask_bench import bench_dask
from greenroom_bench import baseline_rss, bench_floors, bench_fresh, bench_persistent
from hub_bench import bench_hub
from peers import bench_peers
from plot import plot_latencies

HERE = Path(__file__).resolve().parent
#: The floor DESIGN's absolute targets assume, and the row that measures it in this run.
DESIGN_FLOOR_MS = 0.07
FLOOR_ROW = "floor: tornado WebSocket echo, caller thread -> loop thread"
_TIME_TARGET = re.compile(r"^(?P<which>p50|p99)<=(?P<limit>[0-9.]+)")
_RATE_TARGET = re.compile(r"^>=(?P<limit>[0-9]+) calls/s$")
RESULTS_FILE = HERE / "results" / "latest.json"
PLOT_FILE = HERE / "results" / "latency.png"
DOCS_PLOT_FILE = HERE.parent / "docs" / "benchmark-latency.png"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
    }


def run(plan: Plan, quick: bool, peers: bool) -> Report:
    report = Report(details={"quick": quick, "peers": peers, "plan": asdict(plan), "machine": machine()})
    with tempfile.TemporaryDirectory(prefix="greenroom-bench-") as temporary:
        workdir = Path(temporary)
        progress("plain jupyter server (baseline RSS)")
        plain = baseline_rss(workdir)
        report.details["plain_server_rss_mb"] = plain
        bench_persistent(workdir, plan, report, plain)
        bench_fresh(workdir, plan, report)
        bench_hub(workdir, plan, report)
        bench_dask(workdir, plan, report)
        bench_floors(plan, report)
        scale_to_floor(report)
        if peers:
            bench_peers(workdir, plan, report)
            compare_with_anvil(report)
    report.details["loadavg_at_end"] = os.getloadavg()
    report.details["seconds"] = elapsed()
    report.details["caption"] = caption(report)
    report.details["plot_targets"] = plot_targets(report)
    return report


def plot_targets(report: Report) -> list[tuple[float, str]]:
    """The target lines of the plot: the persistent p50 target is Anvil's warm worker in this run; the fresh
    one DESIGN's 1 ms, scaled by this run's floor like the table's."""
    targets: list[tuple[float, str]] = []
    anvil = next((row for row in report.rows if row.what.startswith("peer: Anvil worker, warm")), None)
    if anvil is not None and anvil.p50_ms:
        targets.append((anvil.p50_ms, "persistent p50 target: Anvil's warm worker, this run"))
    ratio = max(1.0, float(report.details.get("floor_ratio", 1.0)))
    targets.append((1.0 * ratio, f"fresh p50 target (1 ms x{ratio:.1f} floor)" if ratio > 1 else "fresh p50 target"))
    return targets


def scale_to_floor(report: Report) -> None:
    """DESIGN's rule: its absolute targets assume a floor (tornado WebSocket echo, caller thread -> loop
    thread) of 0.07 ms; when this run measures a slower one, each absolute target (a time or a rate) is
    scaled by that ratio and the table says so, with whether the unscaled target was met."""
    floor = next((row for row in report.rows if row.what == FLOOR_ROW), None)
    if floor is None or floor.p50_ms is None or not math.isfinite(floor.p50_ms) or floor.p50_ms <= 0:
        return
    ratio = floor.p50_ms / DESIGN_FLOOR_MS
    report.details["floor_ratio"] = round(ratio, 2)
    if ratio <= 1.0:
        return
    for row in report.rows:
        time_target, rate_target = _TIME_TARGET.match(row.target), _RATE_TARGET.match(row.target)
        if time_target is not None:
            measured = row.p50_ms if time_target["which"] == "p50" else row.p99_ms
            scaled = float(time_target["limit"]) * ratio
            which, rest = time_target["which"], row.target[time_target.end() :]
            row.target = f"{which}<={scaled:.3g} ({which}<={time_target['limit']} x{ratio:.1f}){rest}"
        elif rate_target is not None:
            measured = row.calls_per_s
            scaled = float(rate_target["limit"]) / ratio
            row.target = f">={scaled:,.0f} calls/s (>={int(rate_target['limit']):,} /{ratio:.1f})"
        else:
            continue
        unscaled = {True: "met", False: "not met", None: "not judged"}[row.met]
        row.met = measured is not None and (measured <= scaled if time_target is not None else measured >= scaled)
        row.notes = f"unscaled target {unscaled}; {row.notes}" if row.notes else f"unscaled target {unscaled}"


def compare_with_anvil(report: Report) -> None:
    """DESIGN's persistent target: our whole path (kernel -> host -> worker) no slower than Anvil's warm worker
    over its bare pipe, in the same run."""
    ours = next((row for row in report.rows if row.what == "persistent: add(1,2) from a kernel"), None)
    anvil = next((row for row in report.rows if row.what.startswith("peer: Anvil worker, warm")), None)
    if ours is None or anvil is None or not ours.p50_ms or not anvil.p50_ms:
        return
    ratio = ours.p50_ms / anvil.p50_ms
    report.add(
        Row(
            "persistent from a kernel vs Anvil's warm worker (p50)",
            target="ratio<=1",
            met=ratio <= 1.0,
            notes=f"{ratio:.2f}x: {ours.p50_ms:.3f} ms against {anvil.p50_ms:.3f} ms, the whole path against one hop",
        )
    )


def summary(report: Report) -> str:
    details = report.details
    cpus = details["machine"]["cpus"] or 1
    start, end = details["machine"]["loadavg_at_start"][0], details["loadavg_at_end"][0]
    text = (
        f"{'quick run, ' if details['quick'] else ''}{details['seconds']:.0f} s; {cpus} CPUs, "
        f"1-minute load average {start:.2f} at the start, {end:.2f} at the end"
    )
    if start > cpus / 2:  # the end includes this run's own load
        text += " (other work was running at the start: expect noisy numbers)"
    return text


def caption(report: Report) -> str:
    details = report.details
    return (
        f"box p25-p75, line p50, whiskers p1-p99; loopback, {details['machine']['cpus']} CPUs, "
        f"load average {details['machine']['loadavg_at_start'][0]:.2f} at the start; "
        f"{time.strftime('%Y-%m-%d')}, benchmarks/run.py{' --quick' if details['quick'] else ''}"
    )


def save(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    distributions = {what: [round(value, 5) for value in values] for what, values in report.distributions.items()}
    document = {"rows": [asdict(row) for row in report.rows], "details": report.details, "distributions": distributions}
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")


def draw(report: Report, path: Path, publish: bool) -> str:
    """The latency plot; where it went."""
    plot_latencies(report.distributions, path, report.details["caption"], report.details["plot_targets"])
    if not publish:
        return str(path)
    DOCS_PLOT_FILE.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS_PLOT_FILE)
    return f"{path} (copied to {DOCS_PLOT_FILE})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (small counts, 1 s client runs)")
    parser.add_argument(
        "--skip-peers", action="store_true", help="greenroom and the floors only (no Anvil, Kernel Gateway or Dask)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help=f"JSON results file (default {RESULTS_FILE})")
    parser.add_argument("--plot", type=Path, default=PLOT_FILE, help=f"latency plot, PNG (default {PLOT_FILE})")
    parser.add_argument(
        "--update-docs", action="store_true", help=f"also copy the plot of a full run to {DOCS_PLOT_FILE}"
    )
    options = parser.parse_args(argv)
    try:
        report = run(QUICK if options.quick else FULL, options.quick, not options.skip_peers)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130
    save(report, options.output)
    plotted = draw(report, options.plot, publish=options.update_docs and not (options.quick or options.skip_peers))
    print(render_table(report.rows))
    print(f"\n{summary(report)}; results in {options.output}; plot in {plotted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
