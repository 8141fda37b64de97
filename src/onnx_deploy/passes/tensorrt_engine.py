"""A TensorRT engine from an FP32, FP16 or INT8 QDQ graph (``convert.tensorrt.build_engine``):
TensorRT 11 builds the precision the graph holds, so the engine of each graph is its own
candidate. One profile covers every dynamic batch dim from 1 to the largest batch timed.
Needs an NVIDIA GPU and TensorRT; without them the candidate says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Needs
from onnx_deploy.passes import Pass


class TensorRTEngine(Pass):
    name = "tensorrt-engine"
    title = "TensorRT"
    suffix = ""
    extension = ".plan"
    follows = ("slim", "fp16", "tensorrt-qdq")
    needs = Needs(gpu=True, packages=("tensorrt",))
    runtimes = ("tensorrt",)
    order = 70

    def title_in(self, chain: tuple[Pass, ...]) -> str:
        made = next((p.precision for p in reversed(chain[:-1]) if p.precision), "fp32")
        return f"TensorRT {made.upper()}"

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.tensorrt import build_engine
        from onnx_deploy.core.signature import DimRange
        from onnx_deploy.core.signature import Signature
        from onnx_deploy.infer.modelinfo import describe

        sig = Signature.from_specs(describe(source.path).inputs)
        hi = max(max(ctx.batch_sizes), 2)
        dims = [DimRange(d, 1, hi, opt=min(hi, 8)) for d in sig.batch_dims]
        result = build_engine(
            source.path, output, dims=dims, force=True, trt=ctx.hooks.get("tensorrt"),
            gpu=ctx.hooks.get("gpu"), log=ctx.log,
        )  # fmt: skip
        return self.made(source, result.plan_path, f"engine from {Path(source.path).name}", result)
