"""Where two models diverge: intermediate tensors compared, for when outputs differ.

- ``expose_tensors`` / ``intermediate_outputs``: the one way the package exposes and reads
  intermediate tensors (the surgery edit, FP16 overflow and INT8 saturation checks use it);
- ``onnx_intermediate_differences``: two ONNX graphs (before and after slimming, say),
  every node output exposed and compared in graph order with ``compare_results``.

PyTorch vs the exported graph is ``onnx_deploy.convert.verify.intermediate_differences``
(torch.onnx's own verifier; it needs torch).

``onnx_deploy.infer.compare`` compares outputs; this module finds the first tensor that
explains a difference there.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnx_deploy.core.feeds import Feeds


@dataclass(frozen=True)
class IntermediateDiff:
    """One intermediate tensor compared between two ONNX graphs (graph order)."""

    name: str
    op_type: str
    max_abs: float
    rel_to_scale: float  # max_abs / max |reference value|


def expose_tensors(
    model: Any, names: Sequence[str] | None = None, value_infos: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, str]]:
    """A copy of ``model`` with intermediate tensors as extra graph outputs, and the op type
    that produces each node output. ``names``: the tensors (default: every node output);
    ``value_infos``: typed ``ValueInfoProto`` by name (default: untyped, which onnxruntime
    accepts). The one way the package exposes intermediates."""
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    producers = {out: node.op_type for node in exposed.graph.node for out in node.output if out}
    for name in producers if names is None else names:
        if name not in have:
            info = (value_infos or {}).get(name)
            exposed.graph.output.append(
                onnx.ValueInfoProto(name=name) if info is None else copy.deepcopy(info)
            )
            have.add(name)
    return exposed, producers


def intermediate_outputs(
    model: Any, feeds: Feeds | Sequence[Feeds], names: Sequence[str] | None = None
) -> Any:
    """Every graph output and the intermediate tensors ``names`` (default: all) on ONNX
    Runtime's CPU provider, graph optimizations off so tensor names survive: a dict for one
    batch of ``feeds``, a list of dicts for a list of batches (one session for all)."""
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    exposed, _ = expose_tensors(model, names)
    batches = [feeds] if isinstance(feeds, Mapping) else list(feeds)
    with OnnxRuntimeRunner(
        exposed.SerializeToString(), "cpu", graph_optimization="disabled"
    ) as runner:
        results = [runner.infer(dict(b)) for b in batches]
    return results[0] if isinstance(feeds, Mapping) else results


def onnx_intermediate_differences(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    inputs: dict[str, np.ndarray],
) -> list[IntermediateDiff]:
    """Run both graphs with every node output exposed and compare the tensors they share.

    Both run on ONNX Runtime's CPU provider with graph optimizations off (so tensor names
    survive). The first entry whose ``rel_to_scale`` jumps is where the graphs diverge.
    """
    from onnx_deploy.infer.compare import compare_results
    from onnx_deploy.infer.modelinfo import load_onnx

    ref_model = load_onnx(reference)
    _, producers = expose_tensors(ref_model)
    ref = intermediate_outputs(ref_model, inputs)
    cand = intermediate_outputs(load_onnx(candidate), inputs)
    shared = [  # graph (topological) order
        n for n in producers
        if n in ref and n in cand and np.shape(ref[n]) == np.shape(cand[n]) and np.size(ref[n])
    ]  # fmt: skip
    report = compare_results(
        {n: ref[n] for n in shared}, {n: cand[n] for n in shared}, "same-graph"
    )
    return [
        IntermediateDiff(
            o.name,
            producers[o.name],
            o.max_abs,
            o.max_abs / o.ref_scale if o.ref_scale else o.max_abs,
        )
        for o in report.outputs
    ]
