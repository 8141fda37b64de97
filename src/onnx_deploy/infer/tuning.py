"""Session settings, measured: what each ONNX Runtime CPU knob does to one model here.

``study_settings`` times the same model and inputs under each ``SessionSettings`` in
``SETTINGS`` (or the ones given) and reports each one's median relative to ONNX Runtime's
defaults. Each setting gets its own session and is timed in turn, not interleaved: with
spinning on (the default), a session's idle pool threads keep busy-waiting after its call
and take the cores from the next session timed beside it, which is exactly the effect being
measured (``spinning=False`` in ``SETTINGS``).

The settings are the ones that change CPU latency (onnxruntime's "Thread management" and
"Tune performance" pages): intra-op threads, inter-op threads with the parallel executor,
spinning, the memory arena and the memory pattern. Which one helps depends on the model and
the machine, so the answer is a measurement, never a rule: see notebook 04.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table
from onnx_deploy.infer.sessions import SessionSettings


def default_settings() -> dict[str, SessionSettings]:
    """The settings ``study_settings`` measures by default, by label."""
    cpus = os.cpu_count() or 1
    grid = {
        "defaults": SessionSettings(),
        "1 intra-op thread": SessionSettings(threads=1),
        f"{cpus} intra-op threads": SessionSettings(threads=cpus),
        "no spinning": SessionSettings(spinning=False),
        "parallel executor, 2 inter-op": SessionSettings(
            execution_mode="parallel", inter_op_threads=2
        ),
        "no memory arena": SessionSettings(memory_arena=False),
        "no memory pattern": SessionSettings(memory_pattern=False),
    }
    return grid


@dataclass(frozen=True)
class SettingTiming:
    label: str
    settings: str  # SessionSettings.describe()
    batch_size: int
    median_ms: float
    p90_ms: float
    ratio: float  # defaults' median / this median (>1: faster than the defaults)
    contention: str = ""


@dataclass(frozen=True)
class SettingsStudy(Result):
    """Each setting's latency relative to ONNX Runtime's defaults, per batch size."""

    model: str
    rows: tuple[SettingTiming, ...]
    environment: dict[str, Any] = field(default_factory=dict, compare=False)

    def ratio(self, label: str, batch_size: int | None = None) -> float:
        for r in self.rows:
            if r.label == label and (batch_size is None or r.batch_size == batch_size):
                return r.ratio
        raise KeyError(f"no setting {label!r}; settings: {sorted({r.label for r in self.rows})}")

    def summary(self) -> str:
        rows = [
            (r.label, r.batch_size, f"{r.median_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.ratio:.2f}x",
             "busy" if r.contention else "")
            for r in self.rows
        ]  # fmt: skip
        return f"session settings on {self.model} (ratio = defaults / setting, >1 faster)\n" + (
            format_table(
                ("setting", "batch", "median ms", "p90", "vs defaults", ""), rows, align="<>>>><"
            )
        )


def study_settings(
    model: str | os.PathLike[str],
    settings: Mapping[str, SessionSettings] | None = None,
    *,
    batch_sizes: tuple[int, ...] = (1,),
    inputs: Mapping[int, Any] | None = None,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
) -> SettingsStudy:
    """Time ``model`` under each of ``settings`` (default ``default_settings()``; the first
    is the baseline) at each batch size, one session after the other. ``inputs``: feeds by
    batch size (default: valid random inputs)."""
    from onnx_deploy.infer.bench import benchmark
    from onnx_deploy.infer.bench import collect_environment
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    grid = dict(settings or default_settings())
    if not grid:
        raise ValueError("no settings to study")
    baseline = next(iter(grid))
    rows = []
    for b in batch_sizes:
        timed = {}
        for label, s in grid.items():
            with OnnxRuntimeRunner(model, "cpu", settings=s, name=label) as runner:
                batch = (inputs or {}).get(b)
                timed[label] = benchmark(runner, b, inputs=batch, warmup=warmup, iters=iters)[0]
        base = timed[baseline].median_ms
        for label, r in timed.items():
            rows.append(
                SettingTiming(
                    label,
                    grid[label].describe(),
                    b,
                    r.median_ms,
                    r.p90_ms,
                    base / r.median_ms,
                    r.contention,
                )
            )
    return SettingsStudy(str(model), tuple(rows), collect_environment())
