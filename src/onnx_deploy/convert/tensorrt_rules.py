"""TensorRT's ONNX parser's documented rules, checked on a graph without TensorRT or a GPU.

The rules are onnx/onnx-tensorrt's operator support matrix (``docs/operators.md`` at the
TensorRT 10.1 GA release, commit 96e7811, 2024-06-17; the matrix TensorRT 10.x and 11 build
on): which operators the parser imports, the input types each takes, the attribute
restrictions (``Resize``: no ``antialias``, four coordinate modes, ``nearest``/``linear``
only, ``stretch`` only; ``TopK``: ``sorted``, ``K`` under 3840; pooling without dilations;
``axes`` that must be initializers; zero zero-points on Q/DQ), the opset range (9 to 20),
and ``UINT8`` only at the network's inputs and outputs. Nodes in another domain (ONNX
Runtime's ``com.microsoft`` contrib ops such as ``MatMulNBits`` or ``GroupQueryAttention``)
are not ONNX operators: the parser would look for a plugin of that name, and none ships,
except TensorRT's own ``*_TRT`` plugins.

The check can refuse a graph, not certify it: a graph that passes has only not broken a
documented rule; whether it builds (and how fast) only a TensorRT build on a GPU shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from typing import ClassVar

from onnx_deploy.core.results import Result

MATRIX = "onnx/onnx-tensorrt docs/operators.md, TensorRT 10.1 GA (commit 96e7811)"
VERSION = "10.1"
OPSETS = (9, 20)
TOPK_MAX = 3840

_ALL = ("FP32", "FP16", "BF16", "INT32", "INT64", "BOOL")
_NUM = ("FP32", "FP16", "BF16", "INT32", "INT64")
_FLOAT = ("FP32", "FP16", "BF16")


def _ops(names: str) -> list[str]:
    return names.split()


# operator -> the types its first input may have (the matrix's "Supported Types")
TYPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        _ops(
            "Abs Add ArgMax ArgMin DepthToSpace Div Equal Greater GreaterOrEqual IsNaN Less "
            "LessOrEqual Max Min Mod Mul Neg Pad Range ReduceL1 ReduceL2 ReduceLogSum "
            "ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare "
            "Relu Scatter ScatterElements ScatterND Shrink Sign SpaceToDepth Sub Sum TopK"
        ),
        _NUM,
    ),
    **dict.fromkeys(
        _ops(
            "Acos Acosh Asin Asinh Atan Atanh AveragePool BatchNormalization Ceil Celu Clip Conv "
            "ConvTranspose Cos Cosh CumSum Dropout Einsum Elu Erf Exp Floor Gemm GlobalAveragePool "
            "GlobalLpPool GlobalMaxPool GroupNormalization GRU HardSigmoid HardSwish Hardmax "
            "ImageScaler InstanceNormalization IsInf LayerNormalization LeakyRelu Log LogSoftmax "
            "LRN LSTM LpNormalization LpPool MatMul MaxPool MeanVarianceNormalization "
            "ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike "
            "RandomUniform RandomUniformLike Reciprocal Resize RNN Round ScaledTanh Scan Selu "
            "Sigmoid Sin Sinh Softmax Softplus Softsign Sqrt Tan Tanh ThresholdedRelu "
            "Upsample"
        ),
        _FLOAT,
    ),
    **dict.fromkeys(_ops("And Not Or Xor"), ("BOOL",)),
    **dict.fromkeys(("Cast", "CastLike"), (*_ALL, "UINT8")),
    **dict.fromkeys(
        _ops(
            "Concat Constant ConstantOfShape Expand EyeLike Flatten Gather GatherElements GatherND "
            "Identity If Loop OneHot Reshape ReverseSequence Shape Size Slice Split Squeeze Tile "
            "Transpose Trilu Unsqueeze Where"
        ),
        _ALL,
    ),
    **dict.fromkeys(
        _ops("DeformConv GridSample Mish NonMaxSuppression NonZero RoiAlign"), ("FP32", "FP16")
    ),
    "DequantizeLinear": ("INT8", "FP8", "INT4"),
    "Gelu": (*_FLOAT, "INT8", "INT32", "INT64"),
    "Mean": (*_FLOAT, "FP8", "INT32", "INT64"),
}
UNSUPPORTED = frozenset(
    _ops(
        "AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor BlackmanWindow "
        "Col2Im CenterCropPad Compress ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear "
        "HammingWindow HannWindow ImageDecoder MatMulInteger MaxRoiPool MaxUnpool MelWeightMatrix "
        "Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement "
        "QLinearConv QLinearMatMul RegexFullMatch STFT SequenceAt SequenceConstruct SequenceEmpty "
        "SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss "
        "SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique"
    )
)
# operator -> input index that "must be an initializer" (a build-time constant)
CONSTANT_INPUT = {
    **dict.fromkeys(
        _ops(
            "ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin "
            "ReduceProd ReduceSum ReduceSumSquare Squeeze Unsqueeze"
        ),
        (1, "axes"),
    ),
    "Slice": (3, "axes"),
    "Pad": (3, "axes"),
    "CumSum": (1, "axis"),
}
RESIZE_COORDINATES = (
    "half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners",
)  # fmt: skip
RESIZE_MODES = ("nearest", "linear")
# onnx.TensorProto element types -> the matrix's names
_ELEM = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16",
         11: "DOUBLE", 16: "BF16", 17: "FP8", 22: "INT4"}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    node: str
    op_type: str
    rule: str

    def describe(self) -> str:
        return f"node {self.node!r} ({self.op_type}): {self.rule}"


@dataclass(frozen=True)
class TensorRTCheck(Result):
    """What the static check found: ``ok`` means no documented rule is broken, not that
    TensorRT builds the graph."""

    model: str
    version: str
    nodes: int
    findings: tuple[Finding, ...]

    COMPUTED: ClassVar[tuple[str, ...]] = ("ok",)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        head = f"TensorRT {self.version} static check  {self.model}: {self.nodes} nodes, "
        if self.ok:
            return head + (
                f"no documented rule broken (passes the static check for TensorRT "
                f"{self.version}; only a build on a GPU shows it builds)"
            )
        lines = [head + f"{len(self.findings)} broken"]
        lines += [f"  {f.describe()}" for f in self.findings]
        lines.append(f"  rules: {MATRIX}")
        return "\n".join(lines)


def check_tensorrt(model: str | os.PathLike[str] | Any, name: str | None = None) -> TensorRTCheck:
    """Check an ONNX file (or ``ModelProto``) against TensorRT's ONNX parser's documented
    support. Weights are not read (an external ``.onnx.data`` file stays on disk)."""
    import onnx

    from onnx_deploy.infer.modelinfo import load_onnx

    if name is None:
        name = model.graph.name if isinstance(model, onnx.ModelProto) else str(model)
    proto = (
        model if isinstance(model, onnx.ModelProto) else load_onnx(model, load_external_data=False)
    )
    findings: list[Finding] = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and not OPSETS[0] <= opset <= OPSETS[1]:
        findings.append(
            Finding("(model)", "opset", f"opset {opset} is outside {OPSETS[0]}-{OPSETS[1]}")
        )
    types = _types(proto)
    boundary = {i.name for i in proto.graph.input} | {o.name for o in proto.graph.output}
    functions = {(f.domain, f.name): f for f in proto.functions}
    count = 0
    for graph_nodes, constants in _graphs(proto.graph, functions):
        for node in graph_nodes:
            count += 1
            findings += _check_node(node, types, constants)
            for out in node.output:
                if types.get(out) == "UINT8" and out not in boundary:
                    rule = f"output {out!r} is UINT8: only a network input or output may be"
                    findings.append(Finding(_label(node), node.op_type, rule))
    findings += _constant_values(proto)
    return TensorRTCheck(name, VERSION, count, tuple(findings))


def _graphs(graph: Any, functions: dict, outer: frozenset[str] = frozenset()) -> Any:
    """(nodes, constant names) for the graph, its subgraphs (which see the constants of the
    graphs around them) and the local functions it calls."""
    import onnx

    constants = (
        outer
        | {t.name for t in graph.initializer}
        | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    )
    plain = []
    for node in graph.node:
        fn = functions.get((node.domain, node.op_type))
        if fn is not None:  # a local function: the parser imports its body
            yield from _graphs(onnx.helper.make_graph(fn.node, fn.name, [], []), functions)
            continue
        plain.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g, functions, frozenset(constants))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g, functions, frozenset(constants))
    yield plain, constants


def _types(proto: Any) -> dict[str, str]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False)
    except Exception:  # types are a bonus; the op and attribute rules still run
        inferred = proto
    g = inferred.graph
    out: dict[str, str] = {}
    for v in [*g.input, *g.output, *g.value_info]:
        elem = v.type.tensor_type.elem_type
        if elem in _ELEM:
            out[v.name] = _ELEM[elem]
    for t in g.initializer:
        if t.data_type in _ELEM:
            out[t.name] = _ELEM[t.data_type]
    return out


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _check_node(node: Any, types: dict[str, str], constants: set[str]) -> list[Finding]:
    op = node.op_type
    found: list[str] = []
    if node.domain not in ("", "ai.onnx"):
        if op.endswith("_TRT"):  # TensorRT's own plugins (EfficientNMS_TRT, ...)
            return []
        found.append(
            f"domain {node.domain!r} is not ONNX's: the parser would need a TensorRT plugin "
            f"named {op}, and none ships"
        )
        return [Finding(_label(node), op, r) for r in found]
    if op in UNSUPPORTED:
        found.append("not supported by TensorRT's ONNX parser")
    elif op not in TYPES:
        found.append("not in TensorRT's ONNX operator matrix")
    else:
        first = types.get(node.input[0]) if node.input and node.input[0] else None
        if first and first != "DOUBLE" and first not in TYPES[op]:
            found.append(f"input {node.input[0]!r} is {first}; {op} takes {', '.join(TYPES[op])}")
    a = _attrs(node)
    if op == "Resize":
        if a.get("antialias", 0):
            found.append("antialias=1: antialiasing is not supported (resize without it)")
        mode = _text(a.get("mode", b"nearest"))
        if mode not in RESIZE_MODES:
            found.append(f"mode {mode!r}: only {' and '.join(RESIZE_MODES)}")
        coord = _text(a.get("coordinate_transformation_mode", b"half_pixel"))
        if coord not in RESIZE_COORDINATES:
            found.append(
                f"coordinate_transformation_mode {coord!r}: only {', '.join(RESIZE_COORDINATES)}"
            )
        policy = _text(a.get("keep_aspect_ratio_policy", b"stretch"))
        if policy != "stretch":
            found.append(f"keep_aspect_ratio_policy {policy!r}: only 'stretch'")
    if op == "TopK" and a.get("sorted", 1) != 1:
        found.append("sorted=0: TopK must be sorted")
    if op in ("AveragePool", "MaxPool", "LpPool") and any(d != 1 for d in a.get("dilations", [])):
        found.append(f"dilations {a['dilations']}: must be empty or all ones")
    if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
        found.append("the Indices output is not supported")
    if op == "LSTM" and (a.get("input_forget", 0) or a.get("layout", 0)):
        found.append("input_forget and layout must be 0")
    if op == "ScatterND" and _text(a.get("reduction", b"none")) != "none":
        found.append("reduction is not supported")
    if op == "LayerNormalization" and any(o for o in node.output[1:]):
        found.append("only the first output (Y) is supported")
    if op == "Constant" and {"sparse_value", "value_string", "value_strings"} & set(a):
        found.append("sparse_value and string values are not supported")
    if op in CONSTANT_INPUT:
        index, what = CONSTANT_INPUT[op]
        if len(node.input) > index and node.input[index] and node.input[index] not in constants:
            found.append(f"{what} ({node.input[index]!r}) must be an initializer")
    zero_point = node.input[2] if len(node.input) > 2 else ""
    if op in ("QuantizeLinear", "DequantizeLinear") and zero_point and zero_point not in constants:
        found.append("the zero point must be an initializer (and zero)")
    return [Finding(_label(node), op, r) for r in found]


def _label(node: Any) -> str:
    """A node's name, or (unnamed nodes are legal) the tensor it makes."""
    return node.name or f"unnamed, output {node.output[0] if node.output else '?'}"


def _constant_values(proto: Any) -> list[Finding]:
    """The rules on constants' values: Q/DQ zero points of zero, TopK's K under 3840."""
    import numpy as np
    import onnx

    values = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = node.attribute[0].t
    found = []

    def value(name: str) -> Any:
        t = values.get(name)
        if t is None or t.data_location == onnx.TensorProto.EXTERNAL:
            return None
        return onnx.numpy_helper.to_array(t)

    for node in proto.graph.node:
        op = node.op_type
        if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = value(node.input[2])
            if zp is not None and np.any(zp != 0):
                found.append(Finding(_label(node), op, "the zero point must be 0 (symmetric)"))
        if op == "TopK" and len(node.input) > 1:
            k = value(node.input[1])
            if k is not None and int(np.max(k)) >= TOPK_MAX:
                found.append(
                    Finding(_label(node), op, f"K={int(np.max(k))}: must be under {TOPK_MAX}")
                )
    return found
