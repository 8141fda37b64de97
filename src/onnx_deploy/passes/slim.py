"""onnxslim: constant folding, dead nodes and redundant ops removed (``convert.slim``).

The first step of every chain: it never costs accuracy when its output matches its input
(which the card checks like any candidate), it shrinks what the exporter left behind, and
the file that ships is the smaller one (a DistilBERT export: 766 KB as exported, 575 KB
slimmed, in the issue that made slimming a pass). Optional: where onnxslim fails (it
returns None on its own model check, OnnxSlim issues 277, 321), chains go on from the
unslimmed file and say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Needs
from onnx_deploy.passes import Pass


class Slim(Pass):
    name = "slim"
    title = "FP32 slim"
    suffix = ".slim"
    needs = Needs(packages=("onnxslim",))
    command = "slim"
    optional = True
    order = 0

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.slim import slim_model

        result = slim_model(source.path, output, force=ctx.force, check_numerics=ctx.validate)
        details = f"{result.nodes_before} -> {result.nodes_after} nodes"
        return self.made(source, output, details, result)
