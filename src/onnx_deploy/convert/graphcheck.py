"""Two checks every rewritten graph gets before it is written: node order and the checker.

- ``sort_nodes``: ONNX requires nodes in topological order; onnxruntime's float16 converter
  can append the Cast it inserts for a graph input after the nodes that read it, and ONNX
  Runtime loads such a graph while ``onnx.checker`` rejects it.
- ``check_graph``: ``onnx.checker`` on a graph that may hold ONNX Runtime's own ops. Some
  of them are registered by ONNX Runtime in the *default* domain
  (``SimplifiedLayerNormalization``, which onnxscript's RMSNorm fusion emits), so the
  checker, which knows only the standard schemas there, reports "No Op registered". Those
  nodes are set aside (checked by ONNX Runtime when it loads the file); every other node
  is checked as usual.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# ops ONNX Runtime registers in the default ("" / ai.onnx) domain that are not in the ONNX
# standard: onnxruntime/core/graph/contrib_ops/onnx_function_util and contrib_defs.cc
ORT_DEFAULT_DOMAIN_OPS = ("SimplifiedLayerNormalization",)
ASIDE_DOMAIN = "onnx_deploy.ort_default_domain"


def sort_nodes(model: Any) -> bool:
    """Put ``model.graph``'s nodes in topological order (in place, stable: nodes already
    in order keep it). Returns whether anything moved. Subgraphs are left as they are."""
    graph = model.graph
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    known |= {t.name for t in graph.sparse_initializer} | {""}
    pending = list(graph.node)
    ordered: list[Any] = []
    while pending:
        rest = []
        for node in pending:
            needs = [n for n in node.input if n not in known]
            needs += _outer_names(node, known)
            if needs:
                rest.append(node)
            else:
                ordered.append(node)
                known.update(node.output)
        if len(rest) == len(pending):  # a cycle or a missing input: leave it to the checker
            ordered += rest
            break
        pending = rest
    moved = [id(n) for n in ordered] != [id(n) for n in graph.node]
    if moved:
        copies = [type(n)() for n in ordered]
        for copy, node in zip(copies, ordered, strict=True):
            copy.CopyFrom(node)
        del graph.node[:]
        graph.node.extend(copies)
    return moved


def _outer_names(node: Any, known: set[str]) -> list[str]:
    """Names a node's subgraphs (If, Loop, Scan) read from the outer graph, not yet known."""
    import onnx

    missing: list[str] = []
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in graphs:
            local = {i.name for i in sub.input} | {t.name for t in sub.initializer}
            for inner in sub.node:
                local.update(inner.output)
            for inner in sub.node:
                missing += [n for n in inner.input if n and n not in local and n not in known]
    return missing


def check_graph(model: Any | str | os.PathLike[str], full_check: bool = False) -> None:
    """``onnx.checker.check_model`` on ``model`` (a ``ModelProto`` or a path), with the
    default-domain ops of ONNX Runtime (``ORT_DEFAULT_DOMAIN_OPS``) set aside."""
    import onnx

    path = None
    if not isinstance(model, onnx.ModelProto):
        if not any(_has_ort_default_ops(model)):
            onnx.checker.check_model(str(model), full_check=full_check)
            return
        path = Path(model)
        model = onnx.load(str(path), load_external_data=False)
    if not any(n.op_type in ORT_DEFAULT_DOMAIN_OPS and n.domain in ("", "ai.onnx")
               for n in model.graph.node):  # fmt: skip
        onnx.checker.check_model(model, full_check=full_check)
        return
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.op_type in ORT_DEFAULT_DOMAIN_OPS and node.domain in ("", "ai.onnx"):
            node.domain = ASIDE_DOMAIN
    copy.opset_import.add(domain=ASIDE_DOMAIN, version=1)
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in copy.graph.initializer)
    if path is None or not external:
        onnx.checker.check_model(copy, full_check=False)  # full_check: shape inference fails
        return
    # weights in external data: checked by path, beside the file, where they resolve
    beside = path.with_name(f".check.{path.name}")
    try:
        onnx.save_model(copy, str(beside))
        onnx.checker.check_model(str(beside), full_check=False)
    finally:
        beside.unlink(missing_ok=True)


def _has_ort_default_ops(path: str | os.PathLike[str]) -> list[bool]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [n.op_type in ORT_DEFAULT_DOMAIN_OPS for n in model.graph.node]
