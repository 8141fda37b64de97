"""ONNX Runtime's transformer fusions on a dynamo graph: attention, SkipLayerNorm, Gelu
(``convert.fusion.fuse_transformer``, onnxscript's ``ort_fusions``). The fused graph holds
``com.microsoft`` ops, so it runs on ONNX Runtime alone (the runtimes say so). A graph with
no transformer block has nothing to fuse: the candidate is skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Needs
from onnx_deploy.passes import Pass

NOTHING_FUSED = "the fusion pass found no transformer block"


class Fuse(Pass):
    name = "fuse"
    title = "FP32 fused"
    tag = "fused"
    suffix = ".fused"
    follows = ("slim",)
    needs = Needs(packages=("onnxscript", "onnx_ir"))
    command = "fuse"
    order = 40

    def applies(self, facts: Any, ctx: Context) -> str:
        if facts.quantized:
            return "the graph is quantized already"
        if not facts.matmul_heavy:
            return f"not a transformer ({facts.balance()})"
        return ""

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.fusion import fuse_transformer
        from onnx_deploy.core.errors import FusionError

        result = fuse_transformer(
            source.path, output, validate=ctx.validate, validation_inputs=ctx.validation_inputs,
            force=ctx.force,
        )  # fmt: skip
        if not result.fused_ops and not ctx.validate:  # in a search, nothing fused is nothing new
            Path(output).unlink(missing_ok=True)
            raise FusionError(NOTHING_FUSED)
        details = "fused: " + (
            ", ".join(f"{v} {k}" for k, v in result.fused_ops.items()) or "nothing"
        )
        return self.made(source, output, details, result)
