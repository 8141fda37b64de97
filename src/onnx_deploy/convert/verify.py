"""PyTorch against its export: the torch side of comparing and timing.

``compare`` and ``benchmark`` (``onnx_deploy.infer``) take any runners and never import
torch; these build the ``TorchRunner`` for the common torch-vs-ONNX questions, and ask
torch.onnx's own verifier where inside the graph the two diverge.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.convert.runners.pytorch import TorchRunner
from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP
from onnx_deploy.core.errors import ValidationError
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.bench import BenchmarkResult
from onnx_deploy.infer.bench import benchmark
from onnx_deploy.infer.compare import Tolerance
from onnx_deploy.infer.compare import ValidationReport
from onnx_deploy.infer.compare import compare
from onnx_deploy.infer.compare import onnx_runner
from onnx_deploy.infer.runners.base import Runner

if TYPE_CHECKING:
    import torch


def compare_torch_onnx(
    module: torch.nn.Module,
    onnx_model: str | os.PathLike[str] | Runner,
    inputs: Iterable[Any] | None = None,
    precision: str | Tolerance = "fp32",
    *,
    device: str = "cpu",
    **options: Any,
) -> ValidationReport:
    """PyTorch (eager) vs ONNX Runtime on the same inputs: ``compare`` (its ``options``:
    ``batch_sizes``, ``seed``, ``signature``) with a ``TorchRunner`` fed the ONNX model's
    input names (by keyword when they are ``forward``'s parameters), outputs in order."""
    candidate = onnx_runner(onnx_model, device)
    reference = TorchRunner(module, candidate.inputs, candidate.output_names, device=device)
    return compare(reference, candidate, inputs, precision, **options)


def benchmark_torch(
    module: torch.nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
    name: str | None = None,
    device: str = "cpu",
) -> BenchmarkResult:
    """Time PyTorch eager in inference mode; ``input_shape`` excludes the batch axis.
    The caller's module is not moved: a copy runs on another device."""
    spec = TensorSpec("input", "float32", ("batch", *input_shape))
    runner = TorchRunner(module, [spec], device=device, name=name or type(module).__name__)
    return benchmark(runner, batch_size, warmup=warmup, iters=iters)[0]


def intermediate_differences(
    program: Any, example_inputs: Any, top: int = 10
) -> list[tuple[str, float]]:
    """Where do PyTorch and the exported graph diverge? Uses torch.onnx's own verifier.

    ``program`` is ``ExportResult.program`` (a dynamo ``ONNXProgram``). Returns the
    ``top`` intermediate values with the largest max-abs difference, largest first.
    """
    from onnx_deploy.core.extras import require

    torch = require("torch", "comparing PyTorch intermediates")
    from torch.onnx.verification import verify_onnx_program

    if program is None:
        raise ValidationError("intermediate comparison needs the dynamo exporter's ONNXProgram")
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    args = tuple(torch.as_tensor(a) for a in args)
    import onnxruntime

    # torch's verifier asks for every available provider; silence the CUDA load errors.
    onnxruntime.set_default_logger_severity(4)
    try:
        infos = verify_onnx_program(program, args=args, compare_intermediates=True)
    finally:
        onnxruntime.set_default_logger_severity(3)
    ranked = sorted(((i.name, float(i.max_abs_diff)) for i in infos), key=lambda t: -t[1])
    return ranked[:top]
