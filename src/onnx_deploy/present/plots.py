"""Plots shared by the notebooks and the CLI (matplotlib, no pyplot state).

Figures are built with ``matplotlib.figure.Figure`` directly, so they work headless and
in Jupyter alike (a returned Figure displays inline) and never touch a global backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol

from onnx_deploy.core.files import atomic_output

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from onnx_deploy.infer.bench import BenchmarkResult
    from onnx_deploy.infer.profile import ProfileResult


class CandidateView(Protocol):
    """What the report-card plots read of a candidate (``workflows.optimize.Candidate``)."""

    name: str
    size: int
    accuracy: float | None
    agreement: float | None
    min_cosine: float | None
    on_front: bool

    @property
    def chosen(self) -> bool: ...

    @property
    def feasible(self) -> bool: ...

    @property
    def runs(self) -> bool: ...

    def timing(self, batch_size: int) -> Any: ...


class CardView(Protocol):
    """What the report-card plots read of a card (``workflows.optimize.ReportCard``): the
    plots depend on this shape, not on the workflow that makes it."""

    model: str
    chosen: str
    batch_sizes: tuple[int, ...]
    objective_batch: int

    @property
    def candidates(self) -> Sequence[CandidateView]: ...


def _figure_class() -> type:
    from onnx_deploy.core.extras import require

    return require("matplotlib.figure", "plotting").Figure


def plot_latency(
    results: Iterable[BenchmarkResult], title: str = "Latency vs batch size"
) -> Figure:
    """Median latency (p90 as the upper whisker) and throughput per batch size, one line
    per (model, backend, device)."""
    from matplotlib.ticker import LogLocator
    from matplotlib.ticker import NullFormatter
    from matplotlib.ticker import ScalarFormatter

    Figure = _figure_class()

    series: dict[str, list[BenchmarkResult]] = {}
    for r in results:
        series.setdefault(f"{r.name} [{r.backend}/{r.device}]", []).append(r)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_lat, ax_thr = fig.subplots(1, 2)
    for label, rs in series.items():
        rs = sorted(rs, key=lambda r: r.batch_size)
        xs = [r.batch_size for r in rs]
        med = [r.median_ms for r in rs]
        upper = [r.p90_ms - r.median_ms for r in rs]
        ax_lat.errorbar(xs, med, yerr=[[0] * len(rs), upper], marker="o", capsize=3, label=label)
        ax_thr.plot(xs, [r.throughput for r in rs], marker="o", label=label)
    sizes = sorted({r.batch_size for rs in series.values() for r in rs})
    for ax, ylabel in (
        (ax_lat, "median latency, ms (whisker: p90)"),
        (ax_thr, "throughput, samples/s"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    ax_lat.set_yscale("log")
    # ticks at 1-2-5 steps, so even a range inside one decade has several labelled ticks
    ax_lat.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax_lat.yaxis.set_major_formatter(ScalarFormatter())
    ax_lat.yaxis.set_minor_formatter(NullFormatter())
    ax_thr.set_ylim(bottom=0)  # a linear axis from 0: the gap between lines is not magnified
    for ax in (ax_lat, ax_thr):
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_op_histogram(
    before: Mapping[str, int],
    after: Mapping[str, int],
    labels: tuple[str, str] = ("before", "after"),
    top: int = 15,
    title: str = "Nodes per op type",
) -> Figure:
    """Side-by-side horizontal bars of node counts per op type (the ``top`` most common)."""
    Figure = _figure_class()

    ops = sorted(set(before) | set(after), key=lambda k: -(before.get(k, 0) + after.get(k, 0)))[
        :top
    ]
    fig = Figure(figsize=(7, 0.35 * len(ops) + 1.2), layout="constrained")
    ax = fig.subplots()
    ys = range(len(ops))
    h = 0.4
    ax.barh(
        [y - h / 2 for y in ys],
        [before.get(o, 0) for o in ops],
        height=h,
        label=f"{labels[0]} ({sum(before.values())})",
    )
    ax.barh(
        [y + h / 2 for y in ys],
        [after.get(o, 0) for o in ops],
        height=h,
        label=f"{labels[1]} ({sum(after.values())})",
    )
    ax.set_yticks(list(ys), ops)
    ax.invert_yaxis()
    ax.set_xlabel("nodes")
    ax.legend()
    ax.set_title(title)
    return fig


def plot_profile(profile: ProfileResult, top: int = 8) -> Figure:
    """Where the time goes (left: time per op type, the ``top`` slowest, with each one's
    share) and how close each Conv/MatMul/Gemm node comes to the machine (right, a
    roofline: achieved GFLOP/s against FLOPs per byte it reads and writes, under the
    compute peak and the memory-bandwidth slope of ``machine_peak``)."""
    Figure = _figure_class()
    rows = profile.by_op_type[:top]
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_t, ax_r = fig.subplots(1, 2, width_ratios=(1, 1.15))
    ys = range(len(rows))
    ax_t.barh(list(ys), [r.ms for r in rows], color="tab:blue")
    for y, r in zip(ys, rows, strict=True):
        ax_t.text(r.ms, y, f" {100 * r.share:.0f}%", va="center", fontsize=8)
    ax_t.set_yticks(list(ys), [f"{r.op_type} ({r.count})" for r in rows])
    ax_t.invert_yaxis()
    ax_t.set_xlim(0, max(r.ms for r in rows) * 1.18 if rows else 1)
    ax_t.set_xlabel("ms per call (nodes of the op type)")
    ax_t.set_title("Time per op type (share of node time)")
    nodes = [n for n in profile.nodes if n.gflops]
    if nodes:
        intensity = [n.flops / n.bytes for n in nodes]  # type: ignore[operator]
        ax_r.scatter(intensity, [n.gflops for n in nodes],
                     s=[12 + 400 * n.mean_ms / profile.node_ms for n in nodes],
                     alpha=0.6, color="tab:orange", label="Conv/MatMul/Gemm nodes (size: time)")  # fmt: skip
        peak = profile.peak
        if peak is not None:
            ceiling = peak.for_precision(profile.integer)
            lo, hi = min(intensity) / 2, max(intensity) * 2
            knee = ceiling / peak.memory_gbps
            xs = [lo, min(max(knee, lo), hi), hi]
            ax_r.plot(xs, [min(ceiling, peak.memory_gbps * x) for x in xs], color="k", lw=1,
                      label=f"peak {ceiling:.0f} {'GOP' if profile.integer else 'GFLOP'}/s, "
                      f"memory {peak.memory_gbps:.0f} GB/s")  # fmt: skip
        ax_r.set_xscale("log")
        ax_r.set_yscale("log")
        ax_r.legend(fontsize=8, loc="lower right")
    ax_r.set_xlabel("FLOPs per byte read and written (activations, weights, outputs)")
    ax_r.set_ylabel("achieved GFLOP/s")
    ax_r.grid(True, alpha=0.3, which="both")
    ax_r.set_title("Roofline: each node against the machine")
    fig.suptitle(f"{Path(profile.model).name}: {profile.node_ms:.1f} ms of nodes per call")
    return fig


def save_figure(
    fig: Figure, path: str | os.PathLike[str], force: bool = False, dpi: int = 110
) -> str:
    """Write a figure atomically (PNG/SVG/PDF by extension); never overwrites unless forced."""
    with atomic_output(path, force=force) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return str(path)


def _label_groups(
    points: list[tuple[float, float, CandidateView]], near: tuple[float, float] = (0.08, 0.04)
) -> list[tuple[float, float, list[str], bool]]:
    """One label per group of points whose labels would overlap: points within ``near`` of
    each other (fractions of the data's range along x and y; a label is wide) share one
    label, their names joined, in order of latency."""
    if not points:
        return []
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    groups: list[tuple[float, float, list[str], bool]] = []
    for x, y, c in sorted(points, key=lambda p: p[0]):
        for gx, gy, names, _ in groups:
            if abs(x - gx) <= near[0] * span_x and abs(y - gy) <= near[1] * span_y:
                names.append(c.name)
                break
        else:
            groups.append((x, y, [c.name], c.feasible))
    return groups


def plot_pareto(card: CardView) -> Figure:
    """The candidates against the goal's three measures: quality (accuracy with labels, else
    agreement with FP32, else the lowest cosine) and file size, each against the median
    latency at the objective's batch size. The Pareto front is joined by a line, the chosen
    candidate ringed, candidates that failed a constraint in grey."""
    Figure = _figure_class()
    b = card.objective_batch
    cands = [c for c in card.candidates if c.runs and c.timing(b) is not None]
    with_acc = any(c.accuracy is not None for c in cands)

    def quality(c: CandidateView) -> float | None:
        if with_acc:
            return None if c.accuracy is None else 100 * c.accuracy
        value = c.agreement if c.agreement is not None else c.min_cosine
        return None if value is None else (100 * value if c.agreement is not None else value)

    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_q, ax_s = fig.subplots(1, 2)
    for ax, measure, label in (
        (ax_q, quality, "accuracy, %" if with_acc else "agreement with FP32 (or cosine)"),
        (ax_s, lambda c: c.size / 1e6, "file size, MB (lower is better)"),
    ):
        points = [(c.timing(b).median_ms, measure(c), c) for c in cands if measure(c) is not None]
        for x, y, c in points:
            color = "tab:green" if c.chosen else "tab:blue" if c.feasible else "tab:gray"
            ax.scatter([x], [y], s=90 if c.chosen else 45, color=color, zorder=3)
            if c.chosen:
                ax.scatter([x], [y], s=260, facecolors="none", edgecolors=color)
        for i, (x, y, names, feasible) in enumerate(_label_groups(points)):
            ax.annotate(", ".join(names), (x, y), textcoords="offset points",
                        xytext=(6, 8 if i % 2 else -12), fontsize=7,
                        color="black" if feasible else "dimgray")  # fmt: skip
        front = sorted((x, y) for x, y, c in points if c.on_front)
        if len(front) > 1:
            ax.plot(*zip(*front, strict=True), color="tab:green", lw=1, alpha=0.6, zorder=2,
                    label="Pareto front")  # fmt: skip
            ax.legend(fontsize=8)
        ax.set_xlabel(f"median latency at batch {b}, ms (lower is better)")
        ax.set_ylabel(label)
        ax.margins(x=0.25, y=0.25)
        ax.grid(True, alpha=0.3)
    failed = " (grey: failed a constraint)" if any(not c.feasible for c in cands) else ""
    fig.suptitle(f"{Path(card.model).name}: chosen {card.chosen or 'nothing'}{failed}")
    return fig


def plot_report_batches(card: CardView) -> Figure:
    """Median latency per sample (ms) by batch size for every candidate that ran."""
    Figure = _figure_class()
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for c in card.candidates:
        ts = sorted(
            (t for t in (c.timing(b) for b in card.batch_sizes) if t is not None),
            key=lambda t: t.batch_size,
        )
        if not ts:
            continue
        ax.plot(
            [t.batch_size for t in ts], [t.median_ms / t.batch_size for t in ts], marker="o",
            linewidth=3 if c.chosen else 1.5, label=c.name + (" (chosen)" if c.chosen else ""),
        )  # fmt: skip
    sizes = list(card.batch_sizes)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("median ms per sample")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Latency per sample by batch size (lower is better)")
    return fig
