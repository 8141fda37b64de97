"""Timing statistics: the one place latencies become median, p90, p99, and two sets of
latencies become a speed-up with an interval.

``LatencyStats`` is the one latency record: a benchmark's result
(``infer.bench.BenchmarkResult``) and a load test's level (``serve.loadtest.Level``) are
``LatencyStats`` with what was timed added, so the fields are declared once.

``paired_speedup`` decides "faster" the way the report card needs it: two runners timed
in the same rounds (interleaved, so a slow spell of a shared machine hits both) give one
ratio per round; the geometric mean of those ratios is the speed-up, and a Student t
interval on their logarithms says how sure it is. A candidate is faster beyond this run's
noise when the whole interval lies above 1 (or above a margin the user asks for).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Latencies in milliseconds: count, median, p90, p99, mean, population std, min.
    No samples give NaN everywhere (count 0): a level where every request failed."""

    count: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float


def latency_stats(times_ms: Iterable[float]) -> LatencyStats:
    """Median, p90 and p99 (numpy's linear interpolation), mean, std and min of ``times_ms``."""
    arr = np.asarray(list(times_ms), dtype=np.float64)
    if not arr.size:
        nan = math.nan
        return LatencyStats(0, nan, nan, nan, nan, nan, nan)
    return LatencyStats(
        count=int(arr.size),
        median_ms=float(np.median(arr)),
        p90_ms=float(np.percentile(arr, 90)),
        p99_ms=float(np.percentile(arr, 99)),
        mean_ms=float(arr.mean()),
        std_ms=float(statistics.pstdev(arr)) if arr.size > 1 else 0.0,
        min_ms=float(arr.min()),
    )


def stats_fields(times_ms: Iterable[float]) -> dict[str, float | int]:
    """``latency_stats`` as keyword arguments for a record built on ``LatencyStats``."""
    st = latency_stats(times_ms)
    return {name: getattr(st, name) for name in LatencyStats.__dataclass_fields__}


CONFIDENCE = 0.95
# Student t's two-sided 95% quantiles (t_0.975) for 1..30 degrees of freedom, from the
# standard table (scipy.stats.t.ppf(0.975, df) agrees to 3 decimals: tests/test_core.py);
# beyond 30 the Cornish-Fisher expansion around the normal quantile is within 0.001.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964
MIN_ROUNDS_FOR_INTERVAL = 3


def t_quantile_975(df: int) -> float:
    """Student t's 0.975 quantile with ``df`` degrees of freedom (a 95% two-sided interval)."""
    if df < 1:
        raise ValueError("a t interval needs at least one degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Speedup:
    """How much faster a candidate ran than a baseline, from rounds timed side by side:
    ``estimate`` (geometric mean of the per-round median ratios, baseline / candidate: above
    1 is faster), its 95% interval ``low``..``high`` and the ``rounds`` it rests on (NaN
    bounds below ``MIN_ROUNDS_FOR_INTERVAL`` rounds: no interval yet)."""

    estimate: float
    low: float
    high: float
    rounds: int

    @property
    def decided(self) -> bool:
        return not math.isnan(self.low)

    def above(self, threshold: float) -> bool:
        """The whole interval lies above ``threshold``: faster beyond noise (and margin)."""
        return self.decided and self.low > threshold

    def below(self, threshold: float) -> bool:
        """The whole interval lies below ``threshold``: slower beyond noise."""
        return self.decided and self.high < threshold

    def within(self, threshold: float, band: float) -> bool:
        """The whole interval lies within a factor ``band`` of ``threshold``: no difference
        larger than that, whichever way (``band`` 1.05: within 5%)."""
        return self.decided and self.low >= threshold / band and self.high <= threshold * band

    def text(self, threshold: float = 1.0, what: str = "") -> str:
        """``1.19x its speed (95% interval 1.12-1.26, 9 rounds)``: each bound with as many
        decimals as it takes to be on its true side of ``threshold`` (1.003 is not shown
        as 1.00); ``what`` follows the estimate."""
        head = f"{self.estimate:.2f}x" + (f" {what}" if what else "")
        if not self.decided:
            return f"{head} ({self.rounds} rounds: too few for an interval)"
        return (
            f"{head} (95% interval {decisive(self.low, threshold)}-"
            f"{decisive(self.high, threshold)}, {self.rounds} rounds)"
        )


def decisive(value: float, threshold: float, decimals: int = 2) -> str:
    """``value`` rounded to ``decimals`` places, or to more (up to 4) where fewer would put
    it on the other side of ``threshold`` or on it: no shown number contradicts a rule that
    compares it with ``threshold``."""
    for d in range(decimals, 5):
        shown = round(value, d)
        if value == threshold or (
            (shown > threshold) == (value > threshold) and shown != threshold
        ):
            return f"{value:.{d}f}"
    return f"{value:.4f}"


def paired_speedup(
    baseline_rounds: Mapping[int, float], candidate_rounds: Mapping[int, float]
) -> Speedup:
    """The speed-up of a candidate over a baseline from the rounds both ran in (round id ->
    median ms of that round): per-round ratios baseline / candidate, their geometric mean,
    and a 95% Student t interval on the mean of their logarithms."""
    common = sorted(set(baseline_rounds) & set(candidate_rounds))
    logs = np.array(
        [math.log(baseline_rounds[r] / candidate_rounds[r]) for r in common], dtype=np.float64
    )
    if not logs.size:
        nan = math.nan
        return Speedup(nan, nan, nan, 0)
    mean = float(logs.mean())
    if logs.size < MIN_ROUNDS_FOR_INTERVAL:
        return Speedup(math.exp(mean), math.nan, math.nan, int(logs.size))
    half = t_quantile_975(logs.size - 1) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return Speedup(math.exp(mean), math.exp(mean - half), math.exp(mean + half), int(logs.size))
