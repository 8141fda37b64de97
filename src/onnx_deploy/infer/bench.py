"""Latency and throughput, measured soundly, with the environment recorded.

``benchmark`` times any runners (``onnx_deploy.infer.runners``), one after the other or
interleaved. Each measurement: ``warmup`` untimed runs (the first one's latency is kept,
since it includes lazy allocation and kernel selection), then ``iters`` timed runs; we
report median, p90, p99, mean, std, min and throughput (batch / median). Device work is
synchronised after every timed call. The ONNX Runtime half needs no torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from onnx_deploy.core.cpu import cpu_info
from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP
from onnx_deploy.core.defaults import INTERLEAVED_ROUNDS
from onnx_deploy.core.feeds import batch_size_of
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table
from onnx_deploy.core.timing import LatencyStats
from onnx_deploy.core.timing import paired_speedup
from onnx_deploy.core.timing import stats_fields
from onnx_deploy.infer.runners.base import Runner
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

if TYPE_CHECKING:
    pass


# A benchmark whose p90 is more than BUSY_P90_RATIO times its median, or whose
# coefficient of variation is above BUSY_CV, ran on a busy machine. Measured on a 2-core
# VM with a small transformer (50 runs each): idle, p90/median 1.07-1.27 and CV 4-29%
# (one outlier run makes the CV); with ONNX Runtime's threads spinning beside PyTorch,
# PyTorch's p90/median 1.6-5.6 and CV 31-177% (each run flagged by one test or both).
# The CV leaves out the slowest call in each hundred (at least one): one stall is not a busy
# machine, and it moves neither a median nor a paired round. Measured on the 2-vCPU EPYC
# (Zen 4), a 0.15 ms DistilBERT-style classifier, 732 calls per file: idle, p90/median
# 1.20-1.31, with a CV of 530-760% made by under 1% of the calls (p99/median under 1.9).
BUSY_P90_RATIO = 1.5
BUSY_CV = 0.4
MIN_ITERS_FOR_SPREAD = 5
# Untimed calls at the start of each runner's turn in an interleaved run: the runner timed
# before it leaves its thread pool spinning (and its data in the caches). Measured on the
# 2-vCPU Xeon, mobilenet_v3_small batch 8, ONNX Runtime then OpenVINO in 5 rounds of 6
# calls: with one untimed call OpenVINO's first timed call of each turn took 1.78x its
# median (p90/median 1.78: the busy-machine warning), with three 1.03x (p90/median 1.05).
ROUND_WARMUP = 3


@dataclass(frozen=True)
class BenchmarkResult(LatencyStats, Result):
    """One runner timed at one batch size: the latency statistics (``LatencyStats``: count,
    median, p90, p99, mean, std, min) of its timed calls, and what was timed. In an
    interleaved run, ``rounds_ms`` holds the median of each round by round id, so two
    results of one run pair round by round (``paired_speedup``)."""

    COMPUTED = ("throughput", "contention", "gflops", "percent_of_peak")
    HIDDEN = ("times_ms",)

    name: str
    backend: str
    device: str
    batch_size: int
    warmup: int
    first_ms: float
    environment: dict[str, Any] = field(default_factory=dict, compare=False)
    flops: int | None = None  # counted FLOPs of one call (``onnx_deploy.infer.flops``)
    integer: bool = False  # the products run on integers (a quantized graph)
    peak: float | None = None  # this machine's peak for that arithmetic, GFLOP/s or GOP/s
    rounds_ms: dict[int, float] = field(default_factory=dict)  # round id -> median ms
    times_ms: tuple[float, ...] = field(default=(), repr=False)  # every timed call

    @property
    def gflops(self) -> float | None:
        """Counted FLOPs (GOPs for a quantized graph) per second at the median latency."""
        if not self.flops or self.median_ms <= 0:
            return None
        return self.flops / self.median_ms / 1e6

    @property
    def percent_of_peak(self) -> float | None:
        """``gflops`` over this machine's peak (``machine_peak``), in percent."""
        if self.gflops is None or not self.peak:
            return None
        return 100.0 * self.gflops / self.peak

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return 1000.0 * self.batch_size / self.median_ms if self.median_ms > 0 else float("inf")

    def spread(self) -> float:
        """The coefficient of variation of the timed calls without the slowest one in each
        hundred (at least one; module comment at ``BUSY_CV``); of all of them when the
        calls are not kept."""
        times = sorted(self.times_ms)
        if len(times) < MIN_ITERS_FOR_SPREAD:
            return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0
        kept = np.asarray(times[: len(times) - max(1, len(times) // 100)])
        return float(kept.std() / kept.mean()) if kept.mean() > 0 else 0.0

    @property
    def contention(self) -> str:
        """Why these timings look like a busy machine (empty when they do not): p90 far
        above the median, or a large coefficient of variation."""
        if self.count < MIN_ITERS_FOR_SPREAD or self.median_ms <= 0:
            return ""
        tail = self.p90_ms / self.median_ms
        cv = self.spread()
        if tail <= BUSY_P90_RATIO and cv <= BUSY_CV:
            return ""
        return (
            f"timings spread widely (p90 {tail:.1f}x the median, CV {100 * cv:.0f}% without "
            "the slowest call in each hundred): the "
            "machine was probably busy. Stop other work and rerun; compare ONNX files "
            "interleaved (--rounds 5; benchmark(..., rounds=5)); trust ratios over absolute numbers"
        )

    def summary(self) -> str:
        where = f"[{self.backend}/{self.device}]"
        label = self.name if self.name.endswith(where) else f"{self.name} {where}"
        line = (
            f"bench     {label} batch {self.batch_size}: "
            f"median {self.median_ms:.2f} ms  p90 {self.p90_ms:.2f}  p99 {self.p99_ms:.2f}  "
            f"mean {self.mean_ms:.2f}±{self.std_ms:.2f}  first {self.first_ms:.1f} ms  "
            f"{self.throughput:.0f} samples/s  ({self.warmup} warm-up, {self.count} timed"
            f"{self._threads()})"
        )
        if self.gflops is not None:
            unit = "GOP/s" if self.integer else "GFLOP/s"
            pct = self.percent_of_peak
            kind = "INT8" if self.integer else "FP32"
            if pct is None:
                share = ""
            elif pct <= 100:
                share = f", {pct:.0f}% of this machine's {kind} peak ({self.peak:.0f})"
            else:  # a share over 100% would be read as a measurement; it is the probe's limit
                share = (
                    f", above this machine's measured {kind} peak ({self.peak:.0f}): the "
                    "probe's MatMuls (up to 1024) set that peak and larger ones can run "
                    "faster; read the GFLOP/s, not a percentage"
                )
            line += f"\n  compute {self.gflops:.1f} {unit}{share}"
        return f"{line}\n  warning {self.contention}" if self.contention else line

    def _threads(self) -> str:
        threads = self.environment.get("intra_op_threads", self.environment.get("torch_threads"))
        return f", {threads} threads" if threads else ""


def with_flops(result: BenchmarkResult, flops: Any, peak: Any = None) -> BenchmarkResult:
    """``result`` with the FLOPs of one call (a ``ModelFlops``) and, where ``peak`` (a
    ``MachinePeak``) is given and the runner computes in FP32 or INT8, the peak to hold it
    to. A bf16 or fp16 runner (OpenVINO's hint) gets no peak: none was probed for it."""
    if flops is None or not flops.total:
        return result
    lowered = result.environment.get("inference_precision") in ("bf16", "f16")
    ceiling = (
        None
        if peak is None or lowered or result.device != "cpu"
        else (peak.for_precision(flops.integer))
    )
    return dataclasses.replace(result, flops=flops.total, integer=flops.integer, peak=ceiling)


def package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_environment() -> dict[str, Any]:
    """What a benchmark number depends on; never imports torch."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "versions": {
            d: package_version(d)
            for d in (
                "onnxruntime-gpu",
                "onnxruntime",
                "onnx",
                "onnxslim",
                "torch",
                "numpy",
                "openvino",
            )
            if package_version(d)
        },
        "threads_env": {
            k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
        },
    }
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None:  # report torch's threads only where it is already loaded
        env["torch_threads"] = torch_mod.get_num_threads()
    return env


def time_callable(
    fn: Callable[[], Any],
    warmup: int = 10,
    iters: int = 50,
    sync: Callable[[], None] | None = None,
) -> tuple[float, list[float]]:
    """Return (first-call ms, list of timed ms). ``sync`` runs after each call (CUDA)."""
    if iters < 1:
        raise ValueError("iters must be at least 1")
    first = None
    for _ in range(max(warmup, 1)):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        if first is None:
            first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1000)
    return float(first or 0.0), times


def summarize(
    name: str,
    backend: str,
    device: str,
    batch_size: int,
    warmup: int,
    first_ms: float,
    times_ms: Sequence[float],
    environment: dict[str, Any] | None = None,
    rounds_ms: Mapping[int, float] | None = None,
) -> BenchmarkResult:
    return BenchmarkResult(
        **stats_fields(times_ms), name=name, backend=backend, device=device,  # type: ignore[arg-type]
        batch_size=batch_size, warmup=warmup, first_ms=first_ms,
        environment=environment if environment is not None else collect_environment(),
        rounds_ms=dict(rounds_ms or {}), times_ms=tuple(float(t) for t in times_ms),
    )  # fmt: skip


def merge_results(first: BenchmarkResult, more: BenchmarkResult) -> BenchmarkResult:
    """``first`` with the calls and rounds of ``more`` (the same runner timed again, in
    rounds numbered after ``first``'s): the statistics of all the calls together."""
    merged = summarize(
        first.name, first.backend, first.device, first.batch_size, first.warmup,
        first.first_ms, [*first.times_ms, *more.times_ms], first.environment,
        {**first.rounds_ms, **more.rounds_ms},
    )  # fmt: skip
    return dataclasses.replace(merged, flops=first.flops, integer=first.integer, peak=first.peak)


def _named(runners: Runner | Sequence[Runner] | Mapping[str, Runner]) -> list[tuple[str, Runner]]:
    """(result name, runner) pairs. A runner keeps its name, also beside one of the same
    name on another backend (one file on two runtimes: results pair by name); two of one
    name on one backend (two files of one name from two folders) are told apart."""
    if isinstance(runners, Runner):
        return [(runners.name, runners)]
    if isinstance(runners, Mapping):
        return list(runners.items())
    named: list[tuple[str, Runner]] = []
    for r in runners:
        taken = {(label, o.backend) for label, o in named}
        label, n = r.name, 2
        if (label, r.backend) in taken:
            label = f"{r.name} [{r.backend}/{r.device}]"
        while (label, r.backend) in taken:
            label, n = f"{r.name} #{n}", n + 1
        named.append((label, r))
    return named


def benchmark(
    runners: Runner | Sequence[Runner] | Mapping[str, Runner],
    batch_size: int = 1,
    *,
    inputs: Any = None,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
    rounds: int = 1,
    first_round: int = 0,
) -> list[BenchmarkResult]:
    """Time any runners on the same-sized inputs; one result per runner.

    ``inputs``: one batch every runner takes (an array, tuple or dict), or None for
    random inputs of ``batch_size``. ``rounds=1`` times each runner in turn (``warmup``
    untimed calls, then ``iters`` timed ones); ``rounds>1`` interleaves them: after the
    warm-up, the runners take turns, ``iters`` calls each spread over the rounds, so a slow
    spell of a shared machine is spread over all of them; each turn starts with up to
    ``ROUND_WARMUP`` untimed calls, so the previous runner's spinning threads are not
    timed, and every other round runs the runners in reverse order. A mapping names the results. Each result's ``rounds_ms`` holds the median of
    each round, numbered from ``first_round`` (a caller adding rounds later continues the
    numbering, so results of several calls still pair round by round); a run in turn is
    one round.
    Each timed call is what the runner's ``timed_call`` prepared: inputs checked and
    placed once, device work synchronised after each call.
    """
    named = _named(runners)
    with contextlib.ExitStack() as stack:
        for _, runner in named:
            stack.enter_context(runner)
        calls, sizes = [], []
        for _, runner in named:
            feeds = (
                runner.feeds(inputs) if inputs is not None else runner.example_inputs(batch_size)
            )
            sizes.append(batch_size_of(feeds) or batch_size)
            calls.append(runner.timed_call(feeds))
        if rounds <= 1:
            timed = [
                time_callable(call, warmup, iters, runner.synchronize)
                for call, (_, runner) in zip(calls, named, strict=True)
            ]
            first = [t[0] for t in timed]
            times = [list(t[1]) for t in timed]
            by_round = [{first_round: float(np.median(t))} for t in times]
        else:
            first = [
                time_callable(call, warmup, 1, runner.synchronize)[0]
                for call, (_, runner) in zip(calls, named, strict=True)
            ]
            times = [[] for _ in named]
            by_round = [{} for _ in named]
            per_round = [iters // rounds + (i < iters % rounds) for i in range(rounds)]
            turn_warmup = min(ROUND_WARMUP, max(warmup, 1))
            for r, n in enumerate(filter(None, per_round)):  # ``iters`` calls over the rounds
                # every other round in reverse (A B C, C B A): a machine that slows or speeds
                # up within a round favours no position over two rounds
                order = range(len(named)) if (first_round + r) % 2 == 0 else reversed(range(len(named)))  # fmt: skip
                for i in order:
                    runner = named[i][1]
                    got = time_callable(calls[i], turn_warmup, n, runner.synchronize)[1]
                    times[i] += got
                    by_round[i][first_round + r] = float(np.median(got))
        env = collect_environment()
        results = []
        for i, (label, runner) in enumerate(named):
            results.append(
                summarize(
                    label,
                    runner.backend,
                    runner.device,
                    sizes[i],
                    warmup,
                    first[i],
                    times[i],
                    env | runner.environment(),
                    by_round[i],
                )
            )
        return results


def benchmark_onnx(
    model: str | os.PathLike[str] | Runner,
    batch_size: int = 1,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
    name: str | None = None,
    device: str = "auto",
    inputs: dict[str, np.ndarray] | None = None,
    **session_kwargs: Any,
) -> BenchmarkResult:
    """Time ONNX Runtime on random inputs (or ``inputs``) at ``batch_size``."""
    runner = (
        model if isinstance(model, Runner) else OnnxRuntimeRunner(model, device, **session_kwargs)
    )
    key = name or (runner.name if isinstance(model, Runner) else os.path.basename(str(model)))
    return benchmark({key: runner}, batch_size, inputs=inputs, warmup=warmup, iters=iters)[0]


def benchmark_onnx_interleaved(
    models: Mapping[str, str | os.PathLike[str] | Runner],
    batch_size: int = 1,
    warmup: int = 5,
    iters: int = BENCH_ITERS,
    rounds: int = INTERLEAVED_ROUNDS,
    device: str = "cpu",
) -> list[BenchmarkResult]:
    """Time several ONNX models side by side, alternating between them in ``rounds``
    (``benchmark`` with ``rounds > 1``)."""
    runners = {
        name: m if isinstance(m, Runner) else OnnxRuntimeRunner(m, device)
        for name, m in models.items()
    }
    return benchmark(runners, batch_size, warmup=warmup, iters=iters, rounds=rounds)


def sweep(
    bench: Callable[[int], BenchmarkResult], batch_sizes: Iterable[int]
) -> list[BenchmarkResult]:
    """Run ``bench(batch_size)`` for each size, e.g. ``lambda b: benchmark_onnx(p, b)``."""
    return [bench(b) for b in batch_sizes]


def comparison_rows(
    results: Iterable[BenchmarkResult], baseline: str = "torch"
) -> list[dict[str, Any]]:
    """Pair results by (name, device, batch): baseline vs every other backend, with ratio."""
    by_key: dict[tuple[str, int], dict[str, BenchmarkResult]] = {}
    for r in results:
        by_key.setdefault((r.name, r.batch_size), {})[r.backend] = r
    rows = []
    for (name, batch), backends in by_key.items():
        base = backends.get(baseline)
        for backend, r in backends.items():
            if backend == baseline:
                continue
            rows.append(
                {
                    "model": name,
                    "batch": batch,
                    "baseline": baseline,
                    "backend": backend,
                    "baseline_median_ms": base.median_ms if base else None,
                    "median_ms": r.median_ms,
                    "p90_ms": r.p90_ms,
                    "speedup": base.median_ms / r.median_ms if base else None,
                }
            )
    return rows


def comparison_table(results: Iterable[BenchmarkResult], baseline: str = "torch") -> str:
    """A plain-text table: model, batch, baseline median, other median and p90, speed-up."""
    rows = [
        (
            r["model"],
            r["batch"],
            "-" if r["baseline_median_ms"] is None else f"{r['baseline_median_ms']:.2f}",
            r["backend"],
            f"{r['median_ms']:.2f}",
            f"{r['p90_ms']:.2f}",
            "-" if r["speedup"] is None else f"{r['speedup']:.2f}x",
        )
        for r in comparison_rows(results, baseline)
    ]
    return format_table(
        ("model", "batch", f"{baseline} ms", "backend", "ms", "p90", "speed-up"), rows,
        widths=(22, 6, 12, 14, 9, 9, 10), align="<>>>>>>", sep="", rule="-",
    )  # fmt: skip


def relative_table(results: Iterable[BenchmarkResult]) -> str:
    """Each runner's median latency relative to the first runner, per batch size
    (>1 = faster than the first); empty when fewer than two runners were timed. Runners
    timed interleaved in at least ``MIN_ROUNDS_FOR_INTERVAL`` common rounds get the paired
    speed-up with its 95% interval instead (``paired_speedup``): the spread of this run."""
    results = list(results)
    runners = {(r.name, r.backend, r.device) for r in results}
    unique = len({name for name, _, _ in runners}) == len(runners)
    timed = [(r.name if unique else f"{r.name} [{r.backend}/{r.device}]", r) for r in results]
    names = list(dict.fromkeys(label for label, _ in timed))
    if len(names) < 2:
        return ""
    first = names[0]
    lines = [f"Relative to {first} (median latency ratio, >1 = faster):"]
    for b in sorted({r.batch_size for _, r in timed}):
        at_b = {label: r for label, r in timed if r.batch_size == b}
        for name, r in at_b.items():
            if name != first and first in at_b:
                paired = paired_speedup(at_b[first].rounds_ms, r.rounds_ms)
                text = (
                    paired.text()
                    if paired.decided
                    else f"{at_b[first].median_ms / r.median_ms:.2f}x"
                )
                lines.append(f"  batch {b:<4} {name} vs {first}: {text}")
    return "\n".join(lines)


@dataclass(frozen=True)
class BenchmarkReport(Result):
    """Several benchmark results with the environment they ran in: what ``onnx-deploy
    bench`` and ``trt bench`` print (``--json``: results, comparison rows, environment)."""

    COMPUTED = ("comparison",)

    results: tuple[BenchmarkResult, ...]
    environment: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # what was written: json, plot

    @property
    def comparison(self) -> list[dict[str, Any]]:
        """PyTorch vs ONNX Runtime rows (``comparison_rows``)."""
        return comparison_rows(self.results)

    def summary(self, with_results: bool = True) -> str:
        """Each result's line (unless ``with_results`` is off: a CLI logged them as they
        came), the runners relative to the first (ONNX files only, where specs were timed
        too), and the PyTorch vs ONNX Runtime table where both ran."""
        results = self.results
        parts = ["\n".join(r.summary() for r in results)] if with_results else []
        torch_too = any(row["speedup"] for row in self.comparison)
        if relative := relative_table(
            [r for r in results if r.name.endswith(".onnx")] if torch_too else results
        ):
            parts.append(relative)
        if torch_too:
            cpu = self.environment.get("cpu", {})
            parts.append(
                "PyTorch eager vs ONNX Runtime (median latency; speed-up = torch / ORT) on "
                f"{cpu.get('model', '?')}, {cpu.get('logical_cpus', '?')} CPUs\n"
                + comparison_table(results)
            )
        return "\n\n".join(parts)
