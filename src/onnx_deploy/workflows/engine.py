"""``onnx-deploy trt run|bench|compare``: a TensorRT engine run, timed and checked.

Each is one call on a ``.plan`` built by ``onnx_deploy.convert.tensorrt.build_engine``; the
engine's inputs come from real samples (``data``) or its profile's OPT sizes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from onnx_deploy.convert.runners.tensorrt import TensorRTRunner
from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP
from onnx_deploy.core.defaults import VALIDATE_BATCH_SIZES
from onnx_deploy.core.feeds import load_data
from onnx_deploy.core.results import Result
from onnx_deploy.infer.bench import BenchmarkReport
from onnx_deploy.infer.bench import benchmark
from onnx_deploy.infer.bench import collect_environment
from onnx_deploy.infer.compare import ValidationReport
from onnx_deploy.infer.compare import compare
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
from onnx_deploy.workflows.pipeline import batch_feeds


def engine_feeds(runner: Any, data: str | os.PathLike[str] | None, batch_size: int) -> Any:
    """One batch for the engine: the first ``batch_size`` real samples from ``data``
    (repeated when there are fewer), else random inputs at the profile's OPT sizes."""
    if data is None:
        return runner.example_inputs(batch_size)
    return batch_feeds(load_data(data), None, batch_size, runner.inputs)


@dataclass(frozen=True)
class EngineRun(Result):
    """The outputs of one engine run: name -> shape and dtype."""

    plan: str
    outputs: dict[str, dict[str, Any]]

    def summary(self) -> str:
        return "\n".join(
            f"output    {k}: {v['dtype']}{v['shape']}" for k, v in self.outputs.items()
        )


def run_engine(
    plan: str | os.PathLike[str], data: str | os.PathLike[str] | None = None, batch_size: int = 1
) -> EngineRun:
    """Run the engine once on one batch; the shapes and dtypes it returned."""
    with TensorRTRunner(plan) as runner:
        outputs = runner.infer(engine_feeds(runner, data, batch_size))
    return EngineRun(
        str(plan), {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in outputs.items()}
    )


def bench_engine(
    plan: str | os.PathLike[str],
    *,
    reference: str | os.PathLike[str] | None = None,
    batch_sizes: Sequence[int] = (1,),
    data: str | os.PathLike[str] | None = None,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
    rounds: int = 5,
) -> BenchmarkReport:
    """Time the engine, interleaved with ``reference`` (an ONNX file on ONNX Runtime's CUDA
    provider) when given, at each batch size."""
    runners: list[Any] = [TensorRTRunner(plan)]
    if reference:
        runners.append(OnnxRuntimeRunner(reference, "cuda"))
    results = []
    for b in batch_sizes:
        results += benchmark(
            runners, b, inputs=engine_feeds(runners[0], data, b), warmup=warmup, iters=iters,
            rounds=rounds,
        )  # fmt: skip
    return BenchmarkReport(tuple(results), collect_environment())


def compare_engine(
    plan: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
    batch_sizes: Sequence[int] = VALIDATE_BATCH_SIZES,
) -> ValidationReport:
    """The engine against its ONNX file on ONNX Runtime, on all of ``data`` in one batch or
    on random inputs at sizes inside the engine's profile."""
    engine = TensorRTRunner(plan)
    ref = OnnxRuntimeRunner(reference, "auto", on_fallback="warn")
    inputs = load_data(data) if data is not None else None
    return compare(
        ref, engine, inputs, precision, batch_sizes=batch_sizes, signature=engine.signature()
    )
