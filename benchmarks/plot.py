"""The latency plot: one horizontal box per row with per-call samples, on a log latency axis.

``run.py`` calls :func:`plot_latencies` at the end of a run; ``python benchmarks/plot.py
[RESULTS_JSON [PNG]]`` draws it again from a saved ``latest.json``.  Boxes span p25-p75
with a line at p50; whiskers reach p1 and p99.  greenroom's rows are green, the floors
grey, each peer has a colour of its own.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "results" / "latest.json"
DEFAULT_PNG = HERE / "results" / "latency.png"

# (prefix of the row's name, colour); the first match wins.
COLOURS = (
    ("persistent", "#2e8b57"),
    ("fresh", "#8fd18f"),
    ("floor", "#a0a0a0"),
    ("peer: Anvil", "#e8833a"),
    ("peer: Kernel Gateway", "#8e6bbf"),
    ("peer: Dask", "#4a90d9"),
)
#: (ms, label) of the target lines when a run gives none.
DEFAULT_TARGETS_MS = ((1.0, "fresh p50 target"),)


def colour_of(label: str) -> str:
    return next((colour for prefix, colour in COLOURS if label.startswith(prefix)), "#606060")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile, as in the table."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def plot_latencies(
    distributions: Mapping[str, Sequence[float]],
    path: Path,
    caption: str = "",
    targets: Sequence[Sequence[Any]] = DEFAULT_TARGETS_MS,
) -> None:
    """Draw ``distributions`` (row name -> latencies in ms), in the given order from the top, to ``path``,
    with a vertical line for each of ``targets`` (ms, label)."""
    labels = [label for label, values in distributions.items() if values]
    data = [list(distributions[label]) for label in labels]
    figure, axes = plt.subplots(figsize=(12, 1.2 + 0.42 * len(labels)), layout="constrained")
    boxes = axes.boxplot(
        data,
        orientation="horizontal",
        whis=(1, 99),
        showfliers=False,
        patch_artist=True,
        widths=0.6,
        medianprops={"color": "black", "linewidth": 1.0},
    )
    for patch, label in zip(boxes["boxes"], labels):
        patch.set_facecolor(colour_of(label))
        patch.set_edgecolor("#333333")
    axes.set_yticks(range(1, len(labels) + 1), labels, fontsize=9)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.set_xlabel("round-trip latency, ms (log scale)")
    axes.grid(axis="x", which="both", color="#e4e4e4", linewidth=0.6)
    axes.set_axisbelow(True)
    _separate_groups(axes, labels)
    _annotate(axes, labels, data)
    for (value, name), style in zip(targets, ("--", ":", "-.")):
        axes.axvline(float(value), color="#c0392b", linestyle=style, linewidth=1.0, label=f"{name} ({value:.3g} ms)")
    # The top rows are greenroom's persistent calls, far left: the upper right corner stays free.
    axes.legend(loc="upper right", fontsize=8, framealpha=0.9)
    axes.set_title("add(1, 2) round trip, one caller at a time: greenroom, floors and peers", fontsize=11)
    if caption:
        figure.supxlabel(caption, fontsize=8, color="#555555")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130)
    plt.close(figure)


def _group(label: str) -> str:
    return "greenroom" if label.startswith(("persistent", "fresh")) else label.split(":")[0]


def _separate_groups(axes: plt.Axes, labels: Sequence[str]) -> None:
    """A thin line between greenroom's rows, the floors and the peers."""
    for row in range(1, len(labels)):
        if _group(labels[row]) != _group(labels[row - 1]):
            axes.axhline(row + 0.5, color="#bbbbbb", linewidth=0.8)


def _annotate(axes: plt.Axes, labels: Sequence[str], data: Sequence[Sequence[float]]) -> None:
    """p50 and p99 in figures at the right edge of each row."""
    transform = blended_transform_factory(axes.transAxes, axes.transData)
    for row, values in enumerate(data, start=1):
        text = f"p50 {_ms(percentile(values, 50))}  p99 {_ms(percentile(values, 99))} ms"
        axes.text(1.01, row, text, transform=transform, fontsize=8, va="center", family="monospace")


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    results = Path(arguments[0]) if arguments else DEFAULT_RESULTS
    png = Path(arguments[1]) if len(arguments) > 1 else DEFAULT_PNG
    document = json.loads(results.read_text(encoding="utf-8"))
    details = document.get("details", {})
    targets = details.get("plot_targets") or DEFAULT_TARGETS_MS
    plot_latencies(document.get("distributions", {}), png, details.get("caption", ""), targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
