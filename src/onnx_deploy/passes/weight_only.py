"""Weight-only quantization (``convert.weightonly``): ``MatMulNBits`` 4- or 8-bit weights in
blocks, activations in float; a 4-bit token embedding (``GatherBlockQuantized``) too.
For decoders, whose decode speed is bounded by the bytes of weights read per token; the
file holds ``com.microsoft`` ops (ONNX Runtime only). A decoder is judged by its tokens.
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
class WeightOnlyOptions:
    """Block size along the input dim, symmetric scales (no zero point), ONNX Runtime's
    ``accuracy_level`` (4: int8 dot products on the CPU), the token embedding in 4 bits
    too, and the algorithm (``rtn`` or ``hqq``; both need no data)."""

    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int | None = 4
    embeddings: bool = True
    algorithm: str = "rtn"
    nodes_to_exclude: tuple[str, ...] = ()


class Int4Weights(Pass):
    name = "int4"
    title = "INT4 weights"
    tag = "INT4w"
    suffix = ".int4"
    precision = "int8"  # the tolerance preset outside decoders (a decoder: its tokens)
    follows = ("slim", "fuse")
    options = WeightOnlyOptions
    command = "quantize"
    method = "int4"
    order = 34
    float_input = True
    bits = 4

    def applies(self, facts: Any, ctx: Context) -> str:
        return super().applies(facts, ctx) or facts.not_matmul_heavy(
            "weight-only quantization suits transformers and decoders"
        )

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.weightonly import quantize_weight_only

        result = quantize_weight_only(
            source.path, output, bits=self.bits, **ctx.checks(), **asdict(options)
        )
        details = (
            f"{self.bits}-bit weights, blocks of {options.block_size}: {result.details['nodes']}"
        )
        return self.made(source, output, details, result)


class Int8Weights(Int4Weights):
    name = "int8-weight"
    title = "INT8 weights"
    tag = "INT8w"
    suffix = ".int8w"
    method = "int8-weight"
    order = 35
    bits = 8
