"""The QDQ graph TensorRT builds as INT8 (``convert.quantize.quantize_for_tensorrt``):
symmetric int8 activations per tensor and weights per output channel, float bias. Made
on any machine; for the TensorRT engine pass (an x86 CPU's fast path is ``int8-static``).
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Needs
from onnx_deploy.passes import Pass


@dataclass(frozen=True)
class TensorRTQdqOptions:
    calibration_method: str = "minmax"
    nodes_to_exclude: tuple[str, ...] = ()


class TensorRTQdq(Pass):
    name = "tensorrt-qdq"
    title = "INT8 QDQ for TensorRT"
    tag = "INT8"
    suffix = ".trt-int8"
    precision = "int8"
    follows = ("slim",)
    needs = Needs(calibration=True)
    options = TensorRTQdqOptions
    command = "quantize"
    method = "tensorrt"
    order = 60

    float_input = True

    def applies(self, facts: Any, ctx: Context) -> str:
        # in a search, only for a TensorRT target: on a CPU, int8-static is the INT8 file
        for_here = ctx.target == "cuda" or ctx.validate
        return super().applies(facts, ctx) or ("" if for_here else "for TensorRT (--target cuda)")

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.quantize import quantize_for_tensorrt

        result = quantize_for_tensorrt(
            source.path, output, ctx.calibration, calibration_size=ctx.calibration_size,
            **ctx.checks(), **asdict(options),
        )  # fmt: skip
        return self.made(source, output, "symmetric int8 QDQ, float bias (TensorRT)", result)
