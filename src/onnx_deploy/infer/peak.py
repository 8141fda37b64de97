"""How fast this machine can go: FP32 and INT8 matrix-product throughput and memory
bandwidth, measured through ONNX Runtime on these cores, cached per machine.

A latency alone does not say whether a model is near the limit. ``machine_peak`` times the
operations a deep model spends its time in, at sizes where the kernels run flat out:

- **FP32**: a square ``MatMul`` (MLAS's SGEMM, FMA on AVX2/AVX-512), at 256, 512, 1024,
  and a 3x3 ``Conv`` at two ResNet-stage shapes (MLAS's NCHWc convolution kernels, which
  can run above its SGEMM: 371 and 394 GFLOP/s against 319-411 on the AMX Xeon), the best
  of them;
- **INT8**: a square ``MatMulInteger`` (uint8 x int8 -> int32: VNNI's ``VPDPBUSD``, AMX's
  tiles where the CPU has them, ``VPMADDUBSW`` without VNNI), at the same sizes;
- **memory**: an ``Add`` of two 64 MB float tensors (bytes read and written per second),
  the slope of the roofline for ops that compute little per byte.

Each figure is the best size's fast quartile (25th percentile of the call times, so a
busy spell does not lower the ceiling) over about half a second of calls, with ONNX
Runtime's default threads (one per physical core), so it is the ceiling a model's Conv and
MatMul nodes can reach in the same sessions. ``% of peak`` = a model's counted FLOPs
(``onnx_deploy.infer.flops``) per second over this figure.

How the probe was checked (``validate_probe``; notebooks/MEASUREMENTS.md, "Machine
peak"): on the 2-vCPU Intel Xeon with AMX, MLAS's FP32 GEMM at 1024 and numpy's OpenBLAS
SGEMM agreed within 5% on the same cores (348 and 333 GFLOP/s), one thread gave 143 against
348 with two, and the GEMM figure stayed on a plateau from 256 to 2048 (319-411, no trend).
``tests/test_profile.py`` repeats the numpy cross-check, within a factor of 3, on every
machine the tests run on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.results import Result

PROBE_SECONDS = 0.5  # per size: long enough for a stable median on a busy 2-core VM
GEMM_SIZES = (256, 512, 1024)
CONV_SHAPES = ((128, 28), (256, 14))  # (channels, height = width), 3x3, batch 1
FAST_QUANTILE = 0.25  # of the call times: the speed the kernel reaches when undisturbed
BANDWIDTH_ELEMENTS = 1 << 24  # 64 MB per float tensor: far beyond any cache
CACHE_VERSION = 2


@dataclass(frozen=True)
class MachinePeak(Result):
    """Achievable throughput on this machine's cores, through ONNX Runtime."""

    fp32_gflops: float
    int8_gops: float
    memory_gbps: float
    threads: int | None  # intra-op threads the probe ran with (None: ONNX Runtime's default)
    cpu: str
    int8_isa: str
    onnxruntime: str
    measured: str  # date and time (UTC)
    cached: bool = False

    def for_precision(self, integer: bool) -> float:
        """The compute peak (GFLOP/s or GOP/s) for FP32 or integer arithmetic."""
        return self.int8_gops if integer else self.fp32_gflops

    def percent(self, gflops: float, integer: bool = False) -> float:
        """``gflops`` as a percentage of this machine's peak for that arithmetic."""
        return 100.0 * gflops / self.for_precision(integer)

    def summary(self) -> str:
        src = "cached" if self.cached else "measured now"
        return (
            f"peak      FP32 {self.fp32_gflops:.0f} GFLOP/s, INT8 {self.int8_gops:.0f} GOP/s "
            f"({self.int8_isa}), memory {self.memory_gbps:.0f} GB/s on {self.cpu}, "
            f"{self.threads or 'default'} threads ({src} {self.measured}, onnxruntime "
            f"{self.onnxruntime})"
        )


def _session(graph_bytes: bytes, threads: int | None) -> Any:
    from onnx_deploy.infer.sessions import create_session

    return create_session(graph_bytes, "cpu", threads=threads)


def _serialized(graph: Any) -> bytes:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _model(
    op: str, a_type: int, b_type: int, y_type: int, a_shape: list[int], b_shape: list[int]
) -> bytes:
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node(op, ["a", "b"], ["y"])], "peak",
        [helper.make_tensor_value_info("a", a_type, a_shape),
         helper.make_tensor_value_info("b", b_type, b_shape)],
        [helper.make_tensor_value_info("y", y_type, [a_shape[0], b_shape[-1]] if op != "Add" else a_shape)],
    )  # fmt: skip
    return _serialized(graph)


def _fast_seconds(call: Callable[[], Any], seconds: float) -> float:
    """The fast quartile of ``call``'s time, over ``seconds`` of calls (5 at least)."""
    for _ in range(3):
        call()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.quantile(times, FAST_QUANTILE))


def _session_seconds(graph: bytes, feeds: dict[str, np.ndarray], threads: int | None,
                     seconds: float) -> float:  # fmt: skip
    session = _session(graph, threads)
    return _fast_seconds(lambda: session.run(None, feeds), seconds)


def gemm_throughput(
    n: int, integer: bool = False, threads: int | None = None, seconds: float = PROBE_SECONDS
) -> float:
    """GFLOP/s (GOP/s for integers) of one ``n x n x n`` product on ONNX Runtime."""
    from onnx import TensorProto as T

    rng = np.random.default_rng(0)
    if integer:
        graph = _model("MatMulInteger", T.UINT8, T.INT8, T.INT32, [n, n], [n, n])
        feeds = {
            "a": rng.integers(0, 256, (n, n), dtype=np.uint8),
            "b": rng.integers(-127, 128, (n, n), dtype=np.int8),
        }
    else:
        graph = _model("MatMul", T.FLOAT, T.FLOAT, T.FLOAT, [n, n], [n, n])
        feeds = {
            "a": rng.standard_normal((n, n), dtype=np.float32),
            "b": rng.standard_normal((n, n), dtype=np.float32),
        }
    return 2 * n**3 / _session_seconds(graph, feeds, threads, seconds) / 1e9


def conv_throughput(
    channels: int, size: int, threads: int | None = None, seconds: float = PROBE_SECONDS
) -> float:
    """GFLOP/s of one 3x3, stride-1 ``Conv`` (``channels`` in and out, ``size`` x ``size``)."""
    from onnx import TensorProto as T
    from onnx import helper
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    shape = [1, channels, size, size]
    weight = rng.standard_normal((channels, channels, 3, 3), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "peak",
        [helper.make_tensor_value_info("x", T.FLOAT, shape)],
        [helper.make_tensor_value_info("y", T.FLOAT, shape)],
        [numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    feeds = {"x": rng.standard_normal(shape, dtype=np.float32)}
    seconds_per_call = _session_seconds(_serialized(graph), feeds, threads, seconds)
    return 2 * channels * channels * 9 * size * size / seconds_per_call / 1e9


def memory_bandwidth(
    elements: int = BANDWIDTH_ELEMENTS, threads: int | None = None, seconds: float = PROBE_SECONDS
) -> float:
    """GB/s of an elementwise ``Add`` (two tensors read, one written) on ONNX Runtime."""
    from onnx import TensorProto as T

    graph = _model("Add", T.FLOAT, T.FLOAT, T.FLOAT, [elements], [elements])
    feeds = {"a": np.ones(elements, np.float32), "b": np.ones(elements, np.float32)}
    return 3 * 4 * elements / _session_seconds(graph, feeds, threads, seconds) / 1e9


READ_ELEMENTS = 1 << 26  # 256 MB of float32: what a small decoder reads per token


def memory_read_rate(
    elements: int = READ_ELEMENTS, threads: int | None = None, seconds: float = PROBE_SECONDS
) -> float:
    """GB/s of reading memory once, the fastest of two probes on ONNX Runtime (this many
    threads) over ``elements`` float32 (256 MB, far beyond any cache): ``ReduceSum`` of a
    vector, and a matrix-vector product (``MatMul`` [1, K] x [K, N]), the decode step's
    own access pattern, whose kernel prefetches better (on the EPYC it read about a fifth
    faster than ReduceSum). A decoder reads every weight once per new token, so its decode
    rate is bounded by this over its weight bytes (``decode_bound``)."""
    from onnx import TensorProto as T
    from onnx import helper

    reduce = helper.make_graph(
        [helper.make_node("ReduceSum", ["a"], ["y"], keepdims=0)], "read",
        [helper.make_tensor_value_info("a", T.FLOAT, [elements])],
        [helper.make_tensor_value_info("y", T.FLOAT, [])],
    )  # fmt: skip
    rate = (
        4
        * elements
        / _session_seconds(
            _serialized(reduce), {"a": np.ones(elements, np.float32)}, threads, seconds
        )
    )
    k = 4096
    n = elements // k
    gemv = _model("MatMul", T.FLOAT, T.FLOAT, T.FLOAT, [1, k], [k, n])
    feeds = {"a": np.ones((1, k), np.float32), "b": np.ones((k, n), np.float32)}
    rate = max(rate, 4 * k * n / _session_seconds(gemv, feeds, threads, seconds))
    return rate / 1e9


def decode_bound(weight_bytes: int, read_gbps: float) -> float:
    """Tokens/s a decoder cannot pass when every weight byte is read once per token."""
    return read_gbps * 1e9 / weight_bytes if weight_bytes else float("inf")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "onnx-deploy"


def machine_key(threads: int | None = None) -> str:
    """What the peak depends on: the CPU, its flags, the cores this process may use, the
    onnxruntime version and the threads."""
    import onnxruntime

    from onnx_deploy.core.cpu import cpu_info

    info = cpu_info()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = json.dumps(
        [CACHE_VERSION, info["model"], info["flags"], info["logical_cpus"], usable,
         onnxruntime.__version__, threads]
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def machine_peak(
    threads: int | None = None, *, refresh: bool = False, cache: bool = True
) -> MachinePeak:
    """This machine's peak (``MachinePeak``), from the cache when it holds one for this
    CPU, core count, onnxruntime and ``threads``; else measured (about 5 s) and cached in
    ``~/.cache/onnx-deploy/`` (``XDG_CACHE_HOME``). ``refresh`` measures again."""
    import onnxruntime

    from onnx_deploy.core.cpu import cpu_info

    path = cache_dir() / f"peak-{machine_key(threads)}.json"
    if cache and not refresh and path.is_file():
        try:
            return MachinePeak(**{**json.loads(path.read_text()), "cached": True})
        except (ValueError, TypeError):
            pass  # an unreadable or older cache file: measure again
    info = cpu_info()
    peak = MachinePeak(
        fp32_gflops=max(
            *(gemm_throughput(n, threads=threads) for n in GEMM_SIZES),
            *(conv_throughput(c, hw, threads=threads) for c, hw in CONV_SHAPES),
        ),
        int8_gops=max(gemm_throughput(n, integer=True, threads=threads) for n in GEMM_SIZES),
        memory_gbps=memory_bandwidth(threads=threads),
        threads=threads, cpu=info["model"], int8_isa=info["int8_isa"],
        onnxruntime=onnxruntime.__version__,
        measured=time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    )  # fmt: skip
    if cache:
        from onnx_deploy.core.files import write_json

        with contextlib.suppress(OSError):  # a read-only home: the figure stands, not kept
            write_json(path, {k: v for k, v in asdict(peak).items() if k != "cached"}, force=True)
    return peak


def numpy_sgemm_throughput(n: int, seconds: float = PROBE_SECONDS) -> float:
    """GFLOP/s of numpy's ``n x n`` float32 product (its BLAS: OpenBLAS in PyPI's numpy),
    timed like the probe: the independent check of ``gemm_throughput``."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / _fast_seconds(lambda: a @ a, seconds) / 1e9


def validate_probe(seconds: float = PROBE_SECONDS) -> dict[str, Any]:
    """The checks behind the probe (``python -m onnx_deploy.infer.peak``): the FP32 GEMM
    at several sizes (a plateau), with one thread (about half of two on two cores), and
    numpy's BLAS SGEMM on the same cores at the same size (the same order)."""
    sizes = (256, 512, 1024, 2048)
    plateau = {n: gemm_throughput(n, seconds=seconds) for n in sizes}
    one_thread = gemm_throughput(1024, threads=1, seconds=seconds)
    blas = numpy_sgemm_throughput(1024, seconds)
    convs = {f"{c}x{hw}x{hw}": conv_throughput(c, hw, seconds=seconds) for c, hw in CONV_SHAPES}
    return {"gemm_gflops_by_size": plateau, "gemm_1024_one_thread": one_thread,
            "numpy_sgemm_1024": blas, "conv3x3_gflops": convs}  # fmt: skip


if __name__ == "__main__":
    import sys

    print(machine_peak(refresh="--refresh" in sys.argv).summary())
    for key, value in validate_probe().items():
        shown = {k: round(v) for k, v in value.items()} if isinstance(value, dict) else round(value)
        print(f"{key}: {shown}")
