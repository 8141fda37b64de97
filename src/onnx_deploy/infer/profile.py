"""Where the time goes: ONNX Runtime's own profiler, per node and per op type, with FLOPs,
achieved GFLOP/s and the share of this machine's peak.

``profile_model`` opens a session with ``enable_profiling``, runs ``warmup`` untimed calls
and ``runs`` profiled ones, and reads the trace ONNX Runtime writes (Chrome trace JSON:
one ``model_run`` event per call and one ``<node>_kernel_time`` event per node and call,
with the input and output shapes the node saw). The trace file is removed afterwards.
The nodes are the ones that really ran: after graph optimisation, so ``Conv`` + ``Relu``
is one fused node and the op type is what ONNX Runtime reports.

The figures add up: per call, the nodes' kernel times sum to a little under the
``model_run`` time (the rest is the executor's bookkeeping, recorded as ``unaccounted``),
and the profiled ``model_run`` is compared with the same calls timed without the profiler
(``overhead``), so what the table shows can be held to the latency ``bench`` reports.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table
from onnx_deploy.infer.bench import ROUND_WARMUP
from onnx_deploy.infer.bench import time_callable
from onnx_deploy.infer.flops import INTEGER_OPS
from onnx_deploy.infer.flops import MATMUL_OPS
from onnx_deploy.infer.flops import model_flops
from onnx_deploy.infer.flops import node_flops

KERNEL_SUFFIX = "_kernel_time"
PROFILE_ROUNDS = 4  # turns of the profiled and the plain session


@dataclass(frozen=True)
class NodeTime:
    """One node of the optimised graph: its mean time per call and what it computed."""

    name: str
    op_type: str
    mean_ms: float
    flops: int | None  # per call; None for ops that are not products (or unknown shapes)
    input_shapes: tuple[tuple[int, ...], ...] = ()
    output_shapes: tuple[tuple[int, ...], ...] = ()
    recorded_bytes: int | None = None  # activations + parameters + outputs, as ORT records them

    @property
    def integer(self) -> bool:
        return self.op_type in INTEGER_OPS

    @property
    def gflops(self) -> float | None:
        return None if not self.flops or self.mean_ms <= 0 else self.flops / self.mean_ms / 1e6

    @property
    def bytes(self) -> int:
        """Bytes the node reads and writes once: its activations, parameters and outputs as
        the profiler records them (weights prepacked by MLAS appear only there), else its
        listed shapes as float32. A lower bound of its memory traffic."""
        listed = self.recorded_bytes or 4 * sum(
            int(np.prod(s)) for s in (*self.input_shapes, *self.output_shapes)
        )
        matrices = [s for s in self.input_shapes if len(s) >= 2]
        if self.op_type in MATMUL_OPS and len(matrices) == 1 and self.output_shapes:
            # MLAS prepacked the weight: the profiler lists neither its shape nor its size
            listed += 4 * matrices[0][-1] * self.output_shapes[0][-1]
        return listed


@dataclass(frozen=True)
class OpTypeTime:
    """All the nodes of one op type."""

    op_type: str
    count: int
    ms: float  # per call
    share: float  # of the nodes' total
    flops: int | None
    gflops: float | None
    percent_of_peak: float | None


@dataclass(frozen=True)
class ProfileResult(Result):
    """``onnx-deploy profile``: per node and op type times of one model at one input size."""

    COMPUTED = (
        "by_op_type", "node_ms", "unaccounted_ms", "overhead", "overhead_per_node_us", "gflops",
        "percent_of_peak", "total_flops", "useful_flops", "integer",
    )  # fmt: skip

    model: str
    input_shapes: dict[str, tuple[int, ...]]
    runs: int
    warmup: int
    run_ms: float  # mean profiled model_run, per call (the nodes' times are means too)
    latency_ms: float  # mean of the same calls timed without the profiler
    latency_median_ms: float  # their median (what ``bench`` reports)
    run_median_ms: float  # the profiled calls' median
    nodes: tuple[NodeTime, ...]
    threads: int | None
    peak: Any = None  # MachinePeak, or None when not probed
    environment: dict[str, Any] = field(default_factory=dict, compare=False)
    model_flops: int | None = None  # the model's own count (``flops.model_flops``)

    @property
    def node_ms(self) -> float:
        """The nodes' kernel times summed, per call."""
        return float(sum(n.mean_ms for n in self.nodes))

    @property
    def unaccounted_ms(self) -> float:
        """``run_ms`` not inside any node: the executor's scheduling and allocation."""
        return self.run_ms - self.node_ms

    @property
    def overhead(self) -> float:
        """Profiled over unprofiled call (medians, robust to one slow call), minus 1:
        0.05 = the profiler added 5%."""
        if self.latency_median_ms <= 0:
            return 0.0
        return (self.run_median_ms or self.run_ms) / self.latency_median_ms - 1

    @property
    def overhead_per_node_us(self) -> float:
        """What the profiler added per node and call (medians), in microseconds."""
        added = (self.run_median_ms or self.run_ms) - self.latency_median_ms
        return 1000 * added / max(len(self.nodes), 1)

    @property
    def total_flops(self) -> int:
        """FLOPs the nodes' kernels executed, from the shapes the profiler recorded. Above
        ``model_flops`` where ONNX Runtime's NCHWc layout pads channels to its block size
        (8 or 16): a Conv with 8 output channels computes 16."""
        return sum(n.flops or 0 for n in self.nodes)

    @property
    def useful_flops(self) -> int:
        """The model's FLOPs (shape inference on the file), else the executed ones."""
        return self.model_flops or self.total_flops

    @property
    def gflops(self) -> float:
        """The model's FLOPs per second over the whole unprofiled call."""
        return self.useful_flops / self.latency_ms / 1e6 if self.latency_ms > 0 else 0.0

    @property
    def integer(self) -> bool:
        """Most counted FLOPs run on integers (a quantized graph)."""
        ints = sum(n.flops or 0 for n in self.nodes if n.integer)
        return ints > self.total_flops / 2

    @property
    def percent_of_peak(self) -> float | None:
        if self.peak is None or not self.total_flops:
            return None
        return float(self.peak.percent(self.gflops, self.integer))

    @property
    def by_op_type(self) -> list[OpTypeTime]:
        """Op types by time, slowest first."""
        total = self.node_ms or 1.0
        groups: dict[str, list[NodeTime]] = {}
        for n in self.nodes:
            groups.setdefault(n.op_type, []).append(n)
        rows = []
        for op, nodes in groups.items():
            ms = sum(n.mean_ms for n in nodes)
            flops = sum(n.flops for n in nodes if n.flops) or None
            gflops = flops / ms / 1e6 if flops and ms > 0 else None
            pct = None
            if gflops is not None and self.peak is not None:
                pct = float(self.peak.percent(gflops, op in INTEGER_OPS))
            rows.append(OpTypeTime(op, len(nodes), ms, ms / total, flops, gflops, pct))
        return sorted(rows, key=lambda r: -r.ms)

    def top_nodes(self, n: int = 10) -> list[NodeTime]:
        return sorted(self.nodes, key=lambda x: -x.mean_ms)[:n]

    def table(self, top: int = 10) -> str:
        rows = [
            (r.op_type, r.count, f"{r.ms:.3f}", f"{100 * r.share:.1f}%",
             "-" if r.flops is None else f"{r.flops / 1e9:.3f}",
             "-" if r.gflops is None else f"{r.gflops:.1f}",
             "-" if r.percent_of_peak is None else f"{r.percent_of_peak:.0f}%")
            for r in self.by_op_type[:top]
        ]  # fmt: skip
        return format_table(
            ("op type", "nodes", "ms/call", "share", "GFLOP", "GFLOP/s", "% of peak"), rows,
            align="<>>>>>>",
        )  # fmt: skip

    def summary(self, top: int = 10) -> str:
        shapes = ", ".join(f"{k} {list(v)}" for k, v in self.input_shapes.items())
        pct = self.percent_of_peak
        lines = [
            f"profile   {self.model} ({shapes}): {self.runs} profiled calls after "
            f"{self.warmup} warm-up, {self.threads or 'default'} threads",
            self.table(top),
            f"nodes {self.node_ms:.2f} ms + executor {self.unaccounted_ms:.2f} ms = profiled "
            f"call {self.run_ms:.2f} ms (means); medians: profiled {self.run_median_ms:.2f} ms, "
            f"unprofiled {self.latency_median_ms:.2f} ms (profiler overhead "
            f"{100 * self.overhead:+.0f}%, {self.overhead_per_node_us:.0f} us per node: large in "
            "the profiles of small models)",
            f"{self.useful_flops / 1e9:.2f} GFLOP per call in Conv/MatMul/Gemm "
            f"({self.total_flops / 1e9:.2f} executed, channel padding included): "
            f"{self.gflops:.1f} {'GOP' if self.integer else 'GFLOP'}/s over the whole call"
            + ("" if pct is None else f", {pct:.0f}% of this machine's "
               f"{'INT8' if self.integer else 'FP32'} peak"),
        ]  # fmt: skip
        if self.peak is not None:
            lines.append(self.peak.summary())
        return "\n".join(lines)


def _shapes(entries: Any) -> tuple[tuple[int, ...], ...]:
    """``[{"float": [1, 3, 224, 224]}, ...]`` -> ``((1, 3, 224, 224), ...)``."""
    out = []
    for entry in entries or []:
        for dims in entry.values():
            out.append(tuple(int(d) for d in dims))
    return tuple(out)


def parse_trace(
    events: list[dict[str, Any]], skip_runs: int = 0, keep: Any = None
) -> tuple[list[float], list[NodeTime]]:
    """Per-call ``model_run`` times (ms) and per-node mean times over the calls after the
    first ``skip_runs`` (or the calls whose index is in ``keep``), from an ONNX Runtime
    profile (a list of trace events)."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    kept = [e for i, e in enumerate(runs) if (i in keep if keep is not None else i >= skip_runs)]
    if not kept:
        raise ValueError("the profile holds no model_run after the warm-up calls")
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in kept]
    per_node: dict[str, dict[str, Any]] = {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX):
            continue
        ts = e["ts"]
        if not any(lo <= ts <= hi for lo, hi in windows):
            continue  # a warm-up call
        args = e.get("args", {})
        node = per_node.setdefault(
            name[: -len(KERNEL_SUFFIX)],
            {"op": args.get("op_name", "?"), "us": 0.0,
             "ins": _shapes(args.get("input_type_shape")),
             "outs": _shapes(args.get("output_type_shape")),
             "bytes": sum(int(args.get(k, 0) or 0)
                          for k in ("activation_size", "parameter_size", "output_size"))},
        )  # fmt: skip
        node["us"] += float(e["dur"])
    calls = len(kept)
    nodes = []
    for name, n in per_node.items():
        flops = node_flops(n["op"], n["ins"], n["outs"][0] if n["outs"] else None)
        nodes.append(
            NodeTime(
                name,
                n["op"],
                n["us"] / calls / 1000,
                flops,
                n["ins"],
                n["outs"],
                n["bytes"] or None,
            )
        )
    return [e["dur"] / 1000 for e in kept], nodes


def profile_model(
    model: str | os.PathLike[str],
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    batch_size: int = 1,
    runs: int = 20,
    warmup: int = 5,
    threads: int | None = None,
    peak: bool = True,
) -> ProfileResult:
    """Profile ``model`` on ONNX Runtime's CPU provider (``ProfileResult``).

    ``inputs``: the feeds (default: valid random inputs at ``batch_size``). The same inputs
    are timed ``runs`` times in a second session without the profiler, the two sessions
    taking turns, for the unprofiled latency. ``peak``: also report % of this machine's peak
    (``machine_peak``, cached after its first probe).
    """
    from onnx_deploy.infer.bench import collect_environment
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.infer.sessions import session_options

    if runs < 1:
        raise ValueError("runs must be at least 1")
    # the profiled session and a plain one, timed in alternating turns (ROUND_WARMUP
    # untimed calls first in each), so a slow spell of the machine hits both alike
    plain = OnnxRuntimeRunner(model, "cpu", threads=threads)
    feeds = plain.feeds(inputs) if inputs is not None else plain.example_inputs(batch_size)
    env = plain.environment()
    warm = max(warmup, 1)
    turn_warmup = min(ROUND_WARMUP, warm)
    per_round = [
        runs // PROFILE_ROUNDS + (i < runs % PROFILE_ROUNDS) for i in range(PROFILE_ROUNDS)
    ]
    with tempfile.TemporaryDirectory(prefix="onnx-deploy-profile-") as tmp:
        options = session_options(threads=threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        runner = OnnxRuntimeRunner(model, "cpu", options=options)
        calls = {"plain": plain.timed_call(feeds), "profiled": runner.timed_call(feeds)}
        times: list[float] = []
        keep: set[int] = set()
        count = 0  # profiled calls so far: their index in the trace
        for name, call in calls.items():
            time_callable(call, warm, 1)
            count += warm + 1 if name == "profiled" else 0
        for n in filter(None, per_round):
            times += time_callable(calls["plain"], turn_warmup, n)[1]
            time_callable(calls["profiled"], turn_warmup, n)
            keep.update(range(count + turn_warmup, count + turn_warmup + n))
            count += turn_warmup + n
        trace = runner.session.end_profiling()
        events = json.loads(Path(trace).read_text())
        runner.close()
    plain.close()
    run_ms, nodes = parse_trace(events, keep=keep)
    try:
        useful: int | None = model_flops(model, {k: v.shape for k, v in feeds.items()}).total
    except Exception:
        useful = None  # counting is a bonus: the executed FLOPs still stand
    machine = None
    if peak:
        from onnx_deploy.infer.peak import machine_peak

        machine = machine_peak(threads)
    return ProfileResult(
        model=str(model), input_shapes={k: tuple(v.shape) for k, v in feeds.items()},
        runs=runs, warmup=warm, run_ms=float(np.mean(run_ms)),
        run_median_ms=float(np.median(run_ms)),
        latency_ms=float(np.mean(times)), latency_median_ms=float(np.median(times)), nodes=tuple(nodes), threads=threads, peak=machine,
        environment=collect_environment() | env, model_flops=useful or None,
    )  # fmt: skip
