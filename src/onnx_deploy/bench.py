"""Latency and throughput, measured soundly, with the environment recorded.

Each measurement: ``warmup`` untimed runs (the first one's latency is kept, since it
includes lazy allocation and kernel selection), then ``iters`` timed runs; we report
median, p90, p99, mean, std, min and throughput (batch / median). PyTorch on CUDA is
synchronised around every timed call. The ONNX Runtime half needs no torch.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from onnx_deploy.cpu import cpu_info
from onnx_deploy.runtime import Predictor, check_inputs

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class BenchmarkResult:
    name: str
    backend: str
    device: str
    batch_size: int
    warmup: int
    iterations: int
    first_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    environment: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return 1000.0 * self.batch_size / self.median_ms if self.median_ms > 0 else float("inf")

    def summary(self) -> str:
        return (
            f"bench     {self.name} [{self.backend}/{self.device}] batch {self.batch_size}: "
            f"median {self.median_ms:.2f} ms  p90 {self.p90_ms:.2f}  p99 {self.p99_ms:.2f}  "
            f"mean {self.mean_ms:.2f}±{self.std_ms:.2f}  first {self.first_ms:.1f} ms  "
            f"{self.throughput:.0f} samples/s  ({self.warmup} warm-up, {self.iterations} timed)"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["throughput"] = self.throughput
        return d


def _version(dist: str) -> str | None:
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
            d: _version(d)
            for d in ("onnxruntime-gpu", "onnxruntime", "onnx", "onnxslim", "torch", "numpy")
            if _version(d)
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
) -> BenchmarkResult:
    arr = np.asarray(times_ms, dtype=np.float64)
    return BenchmarkResult(
        name=name,
        backend=backend,
        device=device,
        batch_size=batch_size,
        warmup=warmup,
        iterations=len(arr),
        first_ms=first_ms,
        median_ms=float(np.median(arr)),
        p90_ms=float(np.percentile(arr, 90)),
        p99_ms=float(np.percentile(arr, 99)),
        mean_ms=float(arr.mean()),
        std_ms=float(statistics.pstdev(arr)) if len(arr) > 1 else 0.0,
        min_ms=float(arr.min()),
        environment=environment if environment is not None else collect_environment(),
    )


def benchmark_onnx(
    model: str | os.PathLike[str] | Predictor,
    batch_size: int = 1,
    warmup: int = 10,
    iters: int = 50,
    name: str | None = None,
    device: str = "auto",
    inputs: dict[str, np.ndarray] | None = None,
    **session_kwargs: Any,
) -> BenchmarkResult:
    """Time ONNX Runtime on random inputs (or ``inputs``) at ``batch_size``."""
    pred = (
        model if isinstance(model, Predictor) else Predictor(model, device=device, **session_kwargs)
    )
    feeds = inputs if inputs is not None else pred.example_inputs(batch_size=batch_size)
    if pred.uses_cuda:

        def run() -> Any:
            return pred.run(feeds)
    else:
        check_inputs(pred.inputs, feeds)  # once, outside the timed loop
        sess, names = pred.session, pred.output_names

        def run() -> Any:
            return sess.run(names, feeds)

    first, times = time_callable(run, warmup, iters)
    env = collect_environment()
    env["providers"] = pred.providers
    return summarize(
        name or (os.path.basename(str(model)) if not isinstance(model, Predictor) else "onnx"),
        "onnxruntime",
        "cuda" if pred.uses_cuda else "cpu",
        batch_size,
        warmup,
        first,
        times,
        env,
    )


def benchmark_onnx_interleaved(
    models: Mapping[str, str | os.PathLike[str] | Predictor],
    batch_size: int = 1,
    warmup: int = 5,
    iters: int = 50,
    rounds: int = 5,
    device: str = "cpu",
) -> list[BenchmarkResult]:
    """Time several ONNX models side by side, alternating between them in ``rounds``.

    On a shared or throttling machine, timing model A then model B lets a slow spell
    land on one of them; alternating spreads it over all, so their ratio is fairer.
    ``iters`` timed runs per model in total, split over ``rounds``.
    """
    preds = {
        name: m if isinstance(m, Predictor) else Predictor(m, device=device)
        for name, m in models.items()
    }
    feeds = {name: p.example_inputs(batch_size=batch_size) for name, p in preds.items()}
    calls: dict[str, Callable[[], Any]] = {}
    for name, p in preds.items():
        check_inputs(p.inputs, feeds[name])
        calls[name] = functools.partial(p.session.run, p.output_names, feeds[name])
    first = {name: time_callable(fn, warmup, 1)[0] for name, fn in calls.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    per_round = max(1, iters // max(1, rounds))
    for _ in range(max(1, rounds)):
        for name, fn in calls.items():
            times[name] += time_callable(fn, 0, per_round)[1]
    env = collect_environment()
    return [
        summarize(name, "onnxruntime", "cpu", batch_size, warmup, first[name], times[name], env)
        for name in calls
    ]


def benchmark_torch(
    module: torch.nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    warmup: int = 10,
    iters: int = 50,
    name: str | None = None,
    device: str = "cpu",
) -> BenchmarkResult:
    """Time PyTorch eager in inference mode; ``input_shape`` excludes the batch axis."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = module.eval().to(device)
    x = torch.randn((batch_size, *input_shape), device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None

    def run() -> Any:
        with torch.inference_mode():
            return module(x)

    first, times = time_callable(run, warmup, iters, sync=sync)
    env = collect_environment()
    env["torch_threads"] = torch.get_num_threads()
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    return summarize(
        name or type(module).__name__, "torch", device, batch_size, warmup, first, times, env
    )


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
    rows = comparison_rows(results, baseline)
    head = f"{'model':<22}{'batch':>6}{baseline + ' ms':>12}{'backend':>14}{'ms':>9}{'p90':>9}{'speed-up':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        base = f"{r['baseline_median_ms']:.2f}" if r["baseline_median_ms"] is not None else "-"
        speed = f"{r['speedup']:.2f}x" if r["speedup"] is not None else "-"
        lines.append(
            f"{r['model']:<22}{r['batch']:>6}{base:>12}{r['backend']:>14}"
            f"{r['median_ms']:>9.2f}{r['p90_ms']:>9.2f}{speed:>10}"
        )
    return "\n".join(lines)
