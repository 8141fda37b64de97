"""FP16 weights and compute with float32 inputs and outputs (``convert.quantize.convert_fp16``).

Half the size; faster where the hardware has FP16 arithmetic (GPU tensor cores), not on
ONNX Runtime's CPU provider, where the card measures it like any candidate.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Pass


@dataclass(frozen=True)
class Fp16Options:
    """``keep_io_types``: float32 inputs and outputs (off: callers feed float16, and tiny
    logits can underflow); ``op_block_list``/``node_block_list``: kept in FP32."""

    keep_io_types: bool = True
    op_block_list: tuple[str, ...] | None = None
    node_block_list: tuple[str, ...] | None = None


class Fp16(Pass):
    name = "fp16"
    title = "FP16"
    tag = "FP16"
    suffix = ".fp16"
    precision = "fp16"
    follows = ("slim",)
    options = Fp16Options
    command = "quantize"
    method = "fp16"
    order = 10

    float_input = True

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.quantize import convert_fp16

        result = convert_fp16(source.path, output, **ctx.checks(), **asdict(options))
        return self.made(
            source, output, "float16 weights and compute, float32 inputs and outputs", result
        )
