"""Where two models diverge: intermediate tensors compared, for when outputs differ.

- ``intermediate_differences``: PyTorch vs the exported graph, with torch.onnx's own
  verifier (needs the dynamo exporter's ``ONNXProgram``);
- ``onnx_intermediate_differences``: two ONNX graphs (before and after slimming, say),
  every node output exposed and compared in graph order.

``onnx_deploy.infer.compare`` compares outputs; this module finds the first tensor that
explains a difference there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class IntermediateDiff:
    """One intermediate tensor compared between two ONNX graphs (graph order)."""

    name: str
    op_type: str
    max_abs: float
    rel_to_scale: float  # max_abs / max |reference value|


def _expose_all(model: Any) -> tuple[Any, dict[str, str]]:
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    producers: dict[str, str] = {}
    for node in exposed.graph.node:
        for out in node.output:
            if out and out not in have:
                exposed.graph.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
            producers[out] = node.op_type
    return exposed, producers


def onnx_intermediate_differences(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    inputs: dict[str, np.ndarray],
) -> list[IntermediateDiff]:
    """Run both graphs with every node output exposed and compare the tensors they share.

    Both run on ONNX Runtime's CPU provider with graph optimizations off (so tensor names
    survive). The first entry whose ``rel_to_scale`` jumps is where the graphs diverge.
    """
    from onnx_deploy.infer.modelinfo import load_onnx
    from onnx_deploy.infer.sessions import create_session

    results = []
    for path in (reference, candidate):
        exposed, producers = _expose_all(load_onnx(path))
        sess = create_session(
            exposed.SerializeToString(), device="cpu", graph_optimization="disabled"
        )
        names = [o.name for o in sess.get_outputs()]
        results.append((dict(zip(names, sess.run(names, inputs), strict=True)), producers))
    (ref, ref_ops), (cand, _) = results
    diffs = []
    for name, op_type in ref_ops.items():  # graph (topological) order
        r, c = ref.get(name), cand.get(name)
        if r is None or c is None or np.shape(c) != np.shape(r):
            continue
        r64, c64 = np.asarray(r, np.float64), np.asarray(c, np.float64)
        if not r64.size:
            continue
        max_abs = float(np.abs(c64 - r64).max())
        scale = float(np.abs(r64).max())
        diffs.append(
            IntermediateDiff(name, op_type, max_abs, max_abs / scale if scale else max_abs)
        )
    return diffs
