"""ONNX Runtime's transformer fusions on a dynamo graph: attention, SkipLayerNorm, Gelu
(``convert.fusion.fuse_transformer``, onnxscript's ``ort_fusions``). The fused graph holds
``com.microsoft`` ops, so it runs on ONNX Runtime alone (the runtimes say so). A graph with
no transformer block has nothing to fuse: the candidate is skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Needs
from onnx_deploy.passes import NothingToDo
from onnx_deploy.passes import Pass

NOTHING_FUSED = "the fusion pass found no transformer block"


@dataclass(frozen=True)
class FuseOptions:
    """``gqa``: a decoder's rotary embedding and grouped-query attention too
    (``GroupQueryAttention``: right for batch 1 and right padding, measured in left-padded
    batches and named; ``convert.fusion.fuse_transformer``)."""

    gqa: bool = False


class Fuse(Pass):
    name = "fuse"
    title = "FP32 fused"
    tag = "fused"
    suffix = ".fused"
    follows = ("slim",)
    options = FuseOptions
    needs = Needs(packages=("onnxscript", "onnx_ir"))
    command = "fuse"
    order = 40
    float_input = True

    def applies(self, facts: Any, ctx: Context) -> str:
        return super().applies(facts, ctx) or facts.not_matmul_heavy("not a transformer")

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.fusion import fuse_transformer

        checks = {k: v for k, v in ctx.checks().items() if k != "labels"}
        result = fuse_transformer(source.path, output, gqa=options.gqa, **checks)
        if not result.fused_ops and not ctx.validate:  # in a search, nothing fused is nothing new
            Path(output).unlink(missing_ok=True)
            raise NothingToDo(NOTHING_FUSED)
        details = "fused: " + (
            ", ".join(f"{v} {k}" for k, v in result.fused_ops.items()) or "nothing"
        )
        return self.made(source, output, details, result)
