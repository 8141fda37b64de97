"""Floating-point (or integer) operations of the nodes that do the arithmetic.

One rule for every place that counts: ``node_flops(op_type, input_shapes, output_shape)``
gives the multiply-adds of a convolution or matrix product as 2 operations each (the
convention of papers and of peak-throughput figures), and ``None`` for any other op.
The shapes come from ONNX shape inference at concrete input sizes (``model_flops``, for
``bench``) or from the shapes ONNX Runtime's profiler records for the nodes it really ran
(``onnx_deploy.infer.profile``, where Conv+Relu is one fused node). Bias adds, activations
and normalisations are left out: next to the products they are noise, and they are limited
by memory, not arithmetic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# op type -> (index of the weight input whose trailing dims are the reduction, or None for
# a matrix product whose reduction is the last dim of input 0). ONNX Runtime's fused and
# quantized forms count like the op they replace.
CONV_OPS: dict[str, int] = {
    "Conv": 1, "FusedConv": 1, "NhwcFusedConv": 1, "ConvInteger": 1, "QLinearConv": 3,
    "NhwcConv": 1,
}  # fmt: skip
MATMUL_OPS: dict[str, int] = {
    "MatMul": 0, "FusedMatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0,
    "DynamicQuantizeMatMul": 0, "MatMulIntegerToFloat": 0, "FusedGemm": 0, "Gemm": 0,
    "QGemm": 0,
}  # fmt: skip
COUNTED_OPS = frozenset(CONV_OPS) | frozenset(MATMUL_OPS) | {"ConvTranspose"}
INTEGER_OPS = frozenset(
    {"ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul",
     "MatMulIntegerToFloat", "QGemm"}
)  # fmt: skip

Shape = Sequence[int]


def node_flops(
    op_type: str,
    input_shapes: Sequence[Shape | None],
    output_shape: Shape | None,
    attributes: Mapping[str, Any] | None = None,
) -> int | None:
    """2 x the multiply-adds of one Conv/MatMul/Gemm-like node, or ``None`` (another op,
    or a shape that is not known)."""
    attributes = attributes or {}
    if output_shape is None or any(not isinstance(d, int) for d in output_shape):
        return None
    out = math.prod(output_shape)
    if op_type in CONV_OPS:
        weight = _get(input_shapes, CONV_OPS[op_type])
        if weight is None or len(weight) < 2:
            return None
        return 2 * out * math.prod(weight[1:])  # [C_out, C_in / group, k...]
    if op_type == "ConvTranspose":
        x, weight = _get(input_shapes, 0), _get(input_shapes, 1)
        if x is None or weight is None or len(weight) < 2:
            return None  # weight [C_in, C_out / group, k...]: every input value fans out
        return 2 * math.prod(x) * math.prod(weight[1:])
    if op_type in MATMUL_OPS:
        a = _get(input_shapes, MATMUL_OPS[op_type])
        if a is None or not a:
            return None
        trans_a = op_type in ("Gemm", "QGemm", "FusedGemm") and attributes.get("transA", 0)
        k = a[0] if trans_a and len(a) == 2 else a[-1]
        return 2 * out * k
    return None


def _get(shapes: Sequence[Shape | None], i: int) -> Shape | None:
    if i >= len(shapes) or shapes[i] is None:
        return None
    shape = shapes[i]
    return shape if all(isinstance(d, int) for d in shape) else None  # type: ignore[union-attr]


@dataclass(frozen=True)
class ModelFlops:
    """The counted operations of a model at one set of input shapes."""

    total: int  # over the nodes that were counted
    by_op_type: dict[str, int]
    counted: int  # Conv/MatMul/Gemm-like nodes with known shapes
    unknown: int  # such nodes whose shapes shape inference could not give
    integer: bool  # the products run on integers (a quantized graph)

    @property
    def gflop(self) -> float:
        return self.total / 1e9


def model_flops(
    model: str | os.PathLike[str] | Any, input_shapes: Mapping[str, Shape]
) -> ModelFlops:
    """The FLOPs of ``model`` (a path or ``ModelProto``) for these input shapes, from ONNX
    shape inference (with data propagation, so shapes computed by Shape/Reshape chains
    resolve), or onnxruntime's symbolic shape inference where that leaves fewer shapes
    unknown. Nodes inside subgraphs (If, Loop) are not counted."""
    import onnx

    from onnx_deploy.infer.modelinfo import load_onnx

    # shapes need the weights' dims, not their values: a file's external data stays on disk
    # (a 2.4 GB decoder's bench peaked at 7.4x its size with the weights loaded and copied)
    if isinstance(model, (str, os.PathLike)):
        proto = load_onnx(model, load_external_data=False)
    else:
        proto = model
    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    graph = fixed.graph
    for value in graph.input:
        if value.name not in input_shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, input_shapes[value.name], strict=False):
            dim.ClearField("dim_param")
            dim.dim_value = int(size)
    del graph.value_info[:]  # an exporter's stale entries would fix the old sizes
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, data_prop=True)
    except Exception:  # a custom-domain op shape inference does not know: count what resolves
        inferred = fixed
    counted = _count(inferred)
    if counted.unknown:
        # ONNX's inference loses a dim broadcast from 1 against an unknown one (batch 1 of
        # an HF encoder); onnxruntime's symbolic inference (it needs sympy) resolves them
        symbolic = _symbolic(fixed)
        if symbolic is not None:
            better = _count(symbolic)
            if better.unknown < counted.unknown:
                counted = better
    return counted


def _symbolic(model: Any) -> Any:
    try:
        from onnx_deploy.core.extras import symbolic_shape_infer

        inference = symbolic_shape_infer().SymbolicShapeInference
        return inference.infer_shapes(model, auto_merge=True)
    except Exception:  # no sympy, or an op it does not know
        return None


def _count(inferred: Any) -> ModelFlops:
    import onnx

    shapes: dict[str, Shape | None] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(
                d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim
            )
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    total, by_op, counted, unknown, integer = 0, {}, 0, 0, False
    for node in inferred.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        ins = [_known(shapes.get(n)) for n in node.input]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        flops = node_flops(node.op_type, ins, _known(shapes.get(node.output[0])), attrs)
        if flops is None:
            unknown += 1
            continue
        counted += 1
        total += flops
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
        integer = integer or node.op_type in INTEGER_OPS
    if not integer:  # a QDQ graph: its products run on int8 where the runtime fuses them
        ops = {n.op_type for n in inferred.graph.node}
        integer = {"QuantizeLinear", "DequantizeLinear"} <= ops
    return ModelFlops(total, by_op, counted, unknown, integer)


def _known(shape: Shape | None) -> Shape | None:
    if shape is None or any(d < 0 for d in shape):
        return None
    return shape
