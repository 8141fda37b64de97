"""Timing statistics: the one place latencies become median, p90, p99."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
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
