"""Dynamic INT8: MatMul/Gemm weights quantized ahead, activations at run time
(``convert.quantize.quantize_dynamic_model``). For MatMul-heavy models (transformers, MLPs,
RNNs); on convolutions ONNX Runtime's ConvInteger was 5-7x slower than FP32, so the card
does not try it on a CNN. ``int8-dynamic`` uses this CPU's weight types, ``int8-dynamic-x86``
the ones that hold on every x86 CPU (7-bit weights), as in static INT8.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.core.defaults import DYNAMIC_OP_TYPES
from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Pass
from onnx_deploy.passes.int8_static import X86Types


@dataclass(frozen=True)
class Int8DynamicOptions:
    """The op types to quantize (``None``: every supported op, convolutions included),
    the weight type and ``reduce_range`` (``None``: from ``target_isa``'s row), per-channel
    weights, and onnxruntime's pre-processing."""

    op_types: tuple[str, ...] | None = DYNAMIC_OP_TYPES
    weight_type: str | None = None
    reduce_range: bool | None = None
    target_isa: str | None = None
    per_channel: bool = False
    preprocess: bool = True


class Int8Dynamic(Pass):
    name = "int8-dynamic"
    title = "INT8 dynamic"
    tag = "INT8"
    suffix = ".dynint8"
    precision = "int8"
    follows = ("slim", "fuse")
    options = Int8DynamicOptions
    command = "quantize"
    method = "dynamic"
    order = 30

    float_input = True

    def applies(self, facts: Any, ctx: Context) -> str:
        return super().applies(facts, ctx) or facts.not_matmul_heavy(
            "dynamic INT8 suits transformers and MLPs"
        )

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.quantize import quantize_dynamic_model

        result = quantize_dynamic_model(source.path, output, **ctx.checks(), **asdict(options))
        ops = "/".join(options.op_types) if options.op_types else "every op"
        return self.made(source, output, f"{ops} weights {result.types.short}", result)


class Int8DynamicX86(X86Types, Int8Dynamic):
    name = "int8-dynamic-x86"
    order = 31
    title = "INT8 dynamic x86"
    suffix = ".dynint8x86"
    dynamic = True
