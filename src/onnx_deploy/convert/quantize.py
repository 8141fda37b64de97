"""INT8 and FP16 with onnxruntime, validated against the FP32 parent.

The raw calls this wraps::

    from onnxruntime.quantization import (QuantFormat, QuantType, quant_pre_process,
                                          quantize_dynamic, quantize_static)
    quant_pre_process("model.onnx", "model.pre.onnx")        # shape inference + folding
    quantize_static("model.pre.onnx", "model.int8.onnx", reader,  # a CalibrationDataReader
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)

Whether INT8 is faster, and even whether it is accurate, depends on the CPU: on x86 with
VNNI, uint8 activations with int8 weights ran resnet18 about 3x faster than FP32; without
VNNI the same file loses accuracy, because ONNX Runtime's U8S8 kernels there add pairs of
products into saturating 16-bit sums (``onnx_deploy.core.cpu``). So the types and
``reduce_range`` are chosen per instruction set (``choose_types``), the choice and its
reason are recorded in the result, every result is validated against its parent, and
notebook 05 measures rather than assumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np

from onnx_deploy.convert.calibration import calibration_reader
from onnx_deploy.core import defaults
from onnx_deploy.core.cpu import ISAS
from onnx_deploy.core.cpu import int8_profile
from onnx_deploy.core.cpu import types_label
from onnx_deploy.core.errors import QuantizationWarning
from onnx_deploy.core.errors import QuantizeError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.feeds import as_batches
from onnx_deploy.core.feeds import concatenate
from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
from onnx_deploy.core.files import PROTOBUF_LIMIT
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import copy_external_data
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import has_external_data
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import write_onnx
from onnx_deploy.core.results import Result
from onnx_deploy.infer.compare import ValidationReport
from onnx_deploy.infer.compare import compare
from onnx_deploy.infer.modelinfo import load_onnx
from onnx_deploy.infer.runners.base import Runner
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
from onnx_deploy.infer.tokens import check_against_parent
from onnx_deploy.infer.tokens import is_cached_decoder

if TYPE_CHECKING:
    import onnx


QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
        "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd",
    }
)  # fmt: skip
CALIBRATION_METHODS = defaults.CALIBRATION_METHODS
TYPES = defaults.QUANT_TYPES


@dataclass(frozen=True)
class TypeChoice(Result):
    """The INT8 types a model was quantized with, for which CPU, and why.

    ``isa``: the ``onnx_deploy.core.cpu.ISAS`` row the choice was made for; ``target``:
    ``"this CPU"`` or ``"target"`` (named by the caller); ``chosen_by``: which settings
    came from the profile (``auto``) and which from the caller. ``saturates``: this
    combination can saturate on that ISA (int8 weights without reduce_range, no VNNI).
    """

    COMPUTED = ("short",)

    activation_type: str
    weight_type: str
    reduce_range: bool
    isa: str
    target: str
    chosen_by: str
    reason: str
    saturates: bool = False

    @property
    def short(self) -> str:
        return types_label(self.activation_type, self.weight_type, self.reduce_range)

    def summary(self) -> str:
        return f"{self.short} for {self.isa} ({self.target}, {self.chosen_by}): {self.reason}"


def choose_types(
    activation_type: str | None = None,
    weight_type: str | None = None,
    reduce_range: bool | None = None,
    target_isa: str | None = None,
    *,
    dynamic: bool = False,
) -> TypeChoice:
    """Activation and weight types and ``reduce_range`` for a target CPU.

    ``None`` takes the value from the target's profile (``onnx_deploy.core.cpu.PROFILES``):
    uint8/int8 on x86 with VNNI; uint8/int8 with ``reduce_range`` on x86 without VNNI
    (saturation); int8/int8 on ARM64. ``target_isa`` names a row of
    ``onnx_deploy.core.cpu.ISAS`` to quantize for another machine; default: this CPU.
    ``dynamic``: dynamic quantization, whose activations are always uint8.
    """
    if target_isa is not None and target_isa not in ISAS:
        raise QuantizeError(f"unknown target ISA {target_isa!r}; use one of {', '.join(ISAS)}")
    profile = int8_profile(target_isa)
    if dynamic and activation_type is not None:
        raise QuantizeError(
            "dynamic quantization computes uint8 activations; only weights are chosen"
        )
    act = "uint8" if dynamic else activation_type or profile.activation_type
    wt = weight_type or profile.weight_type
    for value in (act, wt):
        if value not in TYPES:
            raise QuantizeError(f"types must be one of {TYPES}, got {value!r}")
    if act == "int8" and wt == "uint8":
        raise QuantizeError(
            "int8 activations with uint8 weights (S8U8) have no ONNX Runtime CPU kernel; "
            "use uint8/int8, uint8/uint8 or int8/int8"
        )
    rr = profile.reduce_range and wt == "int8" if reduce_range is None else bool(reduce_range)
    saturates = profile.u8s8_saturates and wt == "int8" and not rr
    by_user = [
        name
        for name, value in (
            ("activations", activation_type),
            ("weights", weight_type),
            ("reduce_range", reduce_range),
        )
        if value is not None
    ]
    chosen_by = "auto" if not by_user else f"{', '.join(by_user)} set by the caller"
    reason = profile.reason
    if saturates:
        reason = (
            f"int8 weights without reduce_range on {profile.title}: VPMADDUBSW's 16-bit pair "
            "sums can saturate and cost accuracy (digits: 97.6% vs 98.2% FP32); pass "
            "reduce_range=True or weight_type='uint8'"
        )
    elif wt == "uint8" and profile.u8s8_saturates:
        reason = "uint8 weights (U8U8) avoid VPMADDUBSW's saturation, on a slower kernel"
    elif rr and not profile.u8s8_saturates:
        reason = (
            "7-bit weights (reduce_range) keep the file free of saturation on CPUs without "
            "VNNI; with VNNI it ran as fast as plain u8/s8 (notebooks/MEASUREMENTS.md, 'INT8 "
            "speed by type on x86') and costs some precision (notebook 05, section 4)"
        )
    target = "target" if target_isa is not None else "this CPU"
    features = f"; {', '.join(profile.features)}" if profile.features else ""
    return TypeChoice(act, wt, rr, profile.isa, target + features, chosen_by, reason, saturates)


def default_types(machine: str | None = None) -> tuple[str, str]:
    """(activation, weight) types for this CPU, or for ``machine`` (``"x86_64"``,
    ``"aarch64"``). ``choose_types`` adds ``reduce_range`` and the reason."""
    if machine is None:
        choice = choose_types()
        return choice.activation_type, choice.weight_type
    from onnx_deploy.core.cpu import classify_isa

    profile = int8_profile(classify_isa((), machine))
    return profile.activation_type, profile.weight_type


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QUANTIZED_OPS for n in model.graph.node)


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizeResult(Result):
    COMPUTED = ("compression",)

    input_path: str
    output_path: str
    method: str  # "static", "dynamic", "fp16"
    details: dict[str, Any]
    size_before: int
    size_after: int
    seconds: float
    validation: ValidationReport | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    types: TypeChoice | None = None  # INT8 methods: the types, the ISA and why
    tokens: Any = None  # weight-only on a decoder: its ``infer.tokens.TokenCheck``

    @property
    def compression(self) -> float:
        return self.size_before / self.size_after if self.size_after else float("inf")

    def summary(self) -> str:
        desc = ", ".join(f"{k} {v}" for k, v in self.details.items() if v not in (None, (), []))
        lines = [
            f"quantize  {self.output_path}  {human_size(self.size_after)}  {self.seconds:.1f} s  "
            f"({self.method}: {desc}; {human_size(self.size_before)} -> "
            f"{human_size(self.size_after)}, {self.compression:.1f}x smaller)"
        ]
        if self.types is not None:
            lines.append(f"  types   {self.types.summary()}")
        dets = self.validation.detections if self.validation is not None else None
        if dets is not None:
            lines.append(
                f"  vs FP32 {'PASS' if self.validation.ok else 'FAIL'} "  # type: ignore[union-attr]
                f"({self.validation.tolerance.name} preset): {dets.line().split(maxsplit=1)[1]}"  # type: ignore[union-attr]
            )
        elif self.validation is not None and self.validation.outputs:
            out = self.validation.outputs[0]
            top1 = (
                ""
                if out.top1_agreement is None
                else f", top-1 agreement {100 * out.top1_agreement:.1f}%"
            )
            lines.append(
                f"  vs FP32 {'PASS' if self.validation.ok else 'FAIL'} ({self.validation.tolerance.name} "
                f"preset): cosine {out.min_cosine:.4f}{top1}, max abs {out.max_abs:.2e}"
            )
        if self.tokens is not None:
            lines.append(self.tokens.summary())
        if self.metrics:
            lines.append("  metrics " + ", ".join(f"{k} {v:.4f}" for k, v in self.metrics.items()))
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def _qtype(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    if name not in TYPES:
        raise QuantizeError(f"type must be one of {TYPES}, got {name!r}")
    return QuantType.QUInt8 if name == "uint8" else QuantType.QInt8


def _check_exclusions(model: onnx.ModelProto, nodes: Sequence[str]) -> None:
    names = {n.name for n in model.graph.node}
    unknown = [n for n in nodes if n not in names]
    if unknown:
        import difflib

        hints = {u: difflib.get_close_matches(u, names, n=3) for u in unknown}
        raise QuantizeError(
            f"nodes to exclude not found in the graph: {hints} (name: closest matches). "
            "Names come from the pre-processed model; list them with quantize.node_names(path)."
        )


def node_names(model: str | os.PathLike[str], op_types: Sequence[str] | None = None) -> list[str]:
    """Node names after ``quant_pre_process`` (the names quantization sees)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proto = load_onnx(preprocessed_copy(model, Path(tmp) / "pre.onnx"))
    return [n.name for n in proto.graph.node if op_types is None or n.op_type in op_types]


def task_metrics(
    reference: Runner, candidate: Runner, inputs: Any, labels: np.ndarray
) -> dict[str, float]:
    """Accuracy of both models on labelled ``inputs`` (``infer.judge.task_accuracy``: top-1,
    or mAP@0.5 with box labels) and, for a classifier, how often their top-1 answers agree
    (the candidate's accuracy against the reference's answers)."""
    from onnx_deploy.infer.judge import is_box_labels
    from onnx_deploy.infer.judge import task_accuracy

    batches = as_batches(inputs, reference.inputs)
    if not is_box_labels(labels) and len(np.asarray(labels)) != sum(
        len(next(iter(b.values()))) for b in batches
    ):
        n = sum(len(next(iter(b.values()))) for b in batches)
        raise QuantizeError(f"{len(np.asarray(labels))} labels for {n} validation samples")
    metrics = {
        "accuracy_fp32": task_accuracy(reference, batches, labels),
        "accuracy_quantized": task_accuracy(candidate, batches, labels),
    }
    if not is_box_labels(labels):
        answers = reference.infer(concatenate(batches))[reference.output_names[0]].argmax(1)
        metrics["agreement"] = task_accuracy(candidate, batches, answers)
    return metrics


def check_quantized(
    input_path: str | os.PathLike[str],
    tmp: Path,
    output_path: str | os.PathLike[str],
    precision: str,
    validate: bool,
    validation_inputs: Any,
    labels: np.ndarray | None,
    graph_optimization: str = "all",
) -> tuple[ValidationReport | None, dict[str, float]]:
    """Validate the written temporary model against its parent (before it is moved in);
    ``graph_optimization`` is the level the quantized model is opened with."""
    if labels is not None and validation_inputs is None:
        raise QuantizeError("labels need validation_inputs (the samples they label)")
    if not validate and labels is None:
        return None, {}
    with (
        OnnxRuntimeRunner(input_path, "cpu", name=str(input_path)) as parent,
        OnnxRuntimeRunner(
            tmp, "cpu", name=str(output_path), graph_optimization=graph_optimization
        ) as child,
    ):
        report = compare(parent, child, validation_inputs, precision) if validate else None
        metrics = (
            task_metrics(parent, child, validation_inputs, labels) if labels is not None else {}
        )
    return report, metrics


def quantize_static_model(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    calibration: Any,
    *,
    activation_type: str | None = None,
    weight_type: str | None = None,
    per_channel: bool = True,
    quant_format: Literal["qdq", "qoperator"] = "qdq",
    calibration_method: str = "minmax",
    calibration_size: int | None = defaults.CALIBRATION_SIZE,
    nodes_to_exclude: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    preprocess: bool = True,
    reduce_range: bool | None = None,
    target_isa: str | None = None,
    validate: bool = True,
    validation_inputs: Sequence[Any] | None = None,
    labels: np.ndarray | None = None,
    force: bool = False,
    _for_tensorrt: bool = False,
) -> QuantizeResult:
    """Static INT8 (QDQ by default) with ``quant_pre_process`` first.

    ``calibration``: arrays, dict, iterable, ``.npy``/``.npz`` or image folder (see
    ``calibration_reader``), of which the first ``calibration_size`` samples are used
    (``None``: all). ``activation_type``/``weight_type`` (``"uint8"``/``"int8"``)
    and ``reduce_range`` (7-bit weights): ``None`` takes them from ``choose_types`` for
    ``target_isa`` (default: this CPU), e.g. ``reduce_range`` on x86 without VNNI, where
    int8 weights otherwise saturate. ``validation_inputs`` (batches) and ``labels`` add a
    task metric; without them the model is compared on calibration data.
    """
    if calibration_method not in CALIBRATION_METHODS:
        raise QuantizeError(f"calibration_method must be one of {CALIBRATION_METHODS}")
    choice = choose_types(activation_type, weight_type, reduce_range, target_isa)
    if not _for_tensorrt:  # a TensorRT graph never runs on the CPU's integer kernels
        _warn_if_saturating(choice)
    parent = load_onnx(input_path)
    if is_quantized(parent):
        raise QuantizeError(
            f"{input_path} is already quantized (it has Q/DQ or integer ops); quantize the FP32 model"
        )
    reader = calibration_reader(parent, calibration, limit=calibration_size)
    start = time.perf_counter()
    with atomic_output(output_path, force=force) as tmp:
        source, pre_notes = _prepared_source(input_path, tmp, preprocess, nodes_to_exclude)
        _run_quantize_static(
            source, tmp, reader, choice, quant_format=quant_format, per_channel=per_channel,
            calibration_method=calibration_method, nodes_to_exclude=nodes_to_exclude,
            op_types=op_types, for_tensorrt=_for_tensorrt,
        )  # fmt: skip
        if Path(source) != Path(input_path):
            Path(source).unlink()
        seconds = time.perf_counter() - start
        val_inputs = (
            validation_inputs if validation_inputs is not None else [f for f in reader.feeds[:64]]
        )
        report, metrics = check_quantized(
            input_path, tmp, output_path, "int8", validate, val_inputs, labels,
            TENSORRT_CHECK_OPTIMIZATION if _for_tensorrt else "all",
        )  # fmt: skip
    details = {
        "target": "tensorrt" if _for_tensorrt else None,
        "format": quant_format, "activations": choice.activation_type,
        "weights": choice.weight_type, "reduce_range": choice.reduce_range,
        "per_channel": per_channel, "calibration": f"{calibration_method} x {len(reader)}",
        "excluded": tuple(nodes_to_exclude),
    }  # fmt: skip
    return QuantizeResult(
        str(input_path), str(output_path), "static", details, file_size(input_path),
        file_size(output_path), seconds, report, metrics,
        _static_notes(pre_notes, choice, quant_format, _for_tensorrt), choice,
    )  # fmt: skip


def _prepared_source(
    input_path: str | os.PathLike[str],
    tmp: Path,
    preprocess: bool,
    nodes_to_exclude: Sequence[str],
) -> tuple[Path | str, tuple[str, ...]]:
    """Step 1: the graph to quantize (``quant_pre_process``'s, or the file without stale
    value_info) beside the output, and the nodes to exclude checked against it."""
    pre_notes: tuple[str, ...] = ()
    source: Path | str = tmp.with_name("preprocessed.onnx")
    if preprocess:
        pre_notes = preprocess_model(input_path, source)
    else:
        source = _without_value_info(input_path, source)
    _check_exclusions(load_onnx(source, load_external_data=False), nodes_to_exclude)
    return source, pre_notes


def _run_quantize_static(
    source: Path | str,
    tmp: Path,
    reader: Any,
    choice: TypeChoice,
    *,
    quant_format: str,
    per_channel: bool,
    calibration_method: str,
    nodes_to_exclude: Sequence[str],
    op_types: Sequence[str] | None,
    for_tensorrt: bool,
) -> None:
    """Step 2: onnxruntime's ``quantize_static``, its chatter silenced."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import quantize_static

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[calibration_method]
    fmt = QuantFormat.QDQ if quant_format == "qdq" else QuantFormat.QOperator
    src_abs, tmp_abs = str(Path(source).resolve()), str(tmp.resolve())
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        _scratch_dir(),
    ):
        warnings.simplefilter("ignore")  # ORT's own advice printed as warnings
        quantize_static(
            src_abs, tmp_abs, reader, quant_format=fmt, per_channel=per_channel,
            activation_type=_qtype(choice.activation_type),
            weight_type=_qtype(choice.weight_type), calibrate_method=method,
            reduce_range=choice.reduce_range,
            nodes_to_exclude=list(nodes_to_exclude) or None, op_types_to_quantize=op_types,
            calibration_providers=["CPUExecutionProvider"],
            extra_options=TENSORRT_OPTIONS if for_tensorrt else None,
        )  # fmt: skip


def _static_notes(
    pre_notes: tuple[str, ...], choice: TypeChoice, quant_format: str, for_tensorrt: bool
) -> tuple[str, ...]:
    """Step 3: what the user should know about the file written."""
    notes = [*pre_notes, *([] if for_tensorrt else _saturation_notes(choice))]
    if for_tensorrt:
        notes.append(
            "for TensorRT: symmetric int8 activations and weights (zero point 0), float bias; "
            "build it with `onnx-deploy trt build` (strongly typed), not for x86 CPUs"
        )
    if quant_format == "qoperator":
        notes.append("QOperator format has no CUDA kernels; use QDQ for GPUs and TensorRT")
    return tuple(notes)


# TensorRT reads explicit Q/DQ only as *symmetric* int8 (zero point 0), with per-tensor
# activation scales and per-channel weight scales on the output-channel axis, and keeps bias
# in float (it fuses bias into its own int8 kernels). onnxruntime's quantizer makes that graph
# with these options (its documented extra_options).
TENSORRT_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
# The level a TensorRT QDQ graph is checked at on ONNX Runtime's CPU provider: "basic" runs
# each Q/DQ pair as written (fake quantization, as TensorRT's INT8 layers compute it). At
# "all" onnxruntime fuses int8 activations into its x86 integer kernels, which saturate on
# CPUs without VNNI: the digits graph agreed with FP32 on 39% of test images on an emulated
# AVX2 CPU (notebooks/MEASUREMENTS.md), 100% at "basic".
TENSORRT_CHECK_OPTIMIZATION = "basic"


def quantize_for_tensorrt(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    calibration: Any,
    *,
    calibration_method: str = "minmax",
    calibration_size: int | None = defaults.CALIBRATION_SIZE,
    nodes_to_exclude: Sequence[str] = (),
    validate: bool = True,
    validation_inputs: Sequence[Any] | None = None,
    labels: np.ndarray | None = None,
    force: bool = False,
) -> QuantizeResult:
    """A QDQ graph TensorRT builds as INT8: symmetric int8 activations (per tensor) and
    weights (per output channel), float bias. ``tensorrt_qdq_problems`` checks the result;
    the file is validated on ONNX Runtime's CPU provider with graph optimizations at
    ``TENSORRT_CHECK_OPTIMIZATION`` (each Q/DQ as written, the same on every CPU). It is not
    the file for x86 CPUs, where uint8 activations are ONNX Runtime's fast path."""
    result = quantize_static_model(
        input_path, output_path, calibration, activation_type="int8", weight_type="int8",
        per_channel=True, quant_format="qdq", calibration_method=calibration_method,
        calibration_size=calibration_size, nodes_to_exclude=nodes_to_exclude,
        reduce_range=False, validate=validate, validation_inputs=validation_inputs,
        labels=labels, force=force, _for_tensorrt=True,
    )  # fmt: skip
    result = dataclasses.replace(result, types=None)  # the CPU's type table does not apply
    problems = tensorrt_qdq_problems(output_path)
    if problems:  # a quantizer change upstream: say so rather than hand TensorRT a bad graph
        Path(output_path).unlink()
        raise QuantizeError(
            "the quantized graph breaks TensorRT's Q/DQ rules, so it was removed: "
            + "; ".join(problems[:5])
        )
    return result


# the weight input of each op and the axis of its output channels in that weight
_WEIGHT_AXIS = {"Conv": (1, 0), "ConvTranspose": (1, 1), "MatMul": (1, 1), "Gemm": (1, None)}


def tensorrt_qdq_problems(model: str | os.PathLike[str] | onnx.ModelProto) -> list[str]:
    """Every way the graph's Q/DQ nodes break TensorRT's explicit-quantization rules
    (empty: none): int8 only, zero point 0, scales positive, activations per tensor, weights
    per tensor or per output channel, bias not quantized."""
    import onnx
    import onnx.numpy_helper

    proto = model if isinstance(model, onnx.ModelProto) else load_onnx(model)
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    consts = {
        n.output[0]: n.attribute[0].t
        for n in graph.node
        if n.op_type == "Constant"
        and n.attribute
        and n.attribute[0].type == onnx.AttributeProto.TENSOR
    }
    tensors = {**consts, **inits}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    problems: list[str] = []
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        return ["no QuantizeLinear/DequantizeLinear nodes: not an explicitly quantized graph"]
    for n in qdq:
        where = f"{n.op_type} {n.name or n.output[0]}"
        scale = tensors.get(n.input[1]) if len(n.input) > 1 else None
        zero = tensors.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None:
            problems.append(f"{where}: scale is not a constant")
            continue
        scale_v = onnx.numpy_helper.to_array(scale)
        is_bias = (
            n.op_type == "DequantizeLinear"
            and n.input[0] in tensors
            and tensors[n.input[0]].data_type == onnx.TensorProto.INT32
        )
        if is_bias:
            problems.append(f"{where}: quantized bias (int32); TensorRT wants float bias")
            continue
        if scale.data_type != onnx.TensorProto.FLOAT or (scale_v <= 0).any():
            problems.append(f"{where}: scale must be positive float32")
        if zero is not None:
            zv = onnx.numpy_helper.to_array(zero)
            if zero.data_type != onnx.TensorProto.INT8:
                problems.append(
                    f"{where}: zero point is {onnx.TensorProto.DataType.Name(zero.data_type)}, "
                    "TensorRT takes int8 only"
                )
            elif zv.any():
                problems.append(
                    f"{where}: zero point {zv.ravel()[:4].tolist()} is not 0 (asymmetric)"
                )
        is_weight = n.op_type == "DequantizeLinear" and n.input[0] in tensors
        if is_weight:
            data = tensors[n.input[0]]
            if scale_v.size > 1:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                dims = list(data.dims)
                axis = axis % len(dims) if dims else axis
                for user in consumers.get(n.output[0], []):
                    slot = _WEIGHT_AXIS.get(user.op_type)
                    if slot is None or list(user.input).index(n.output[0]) != slot[0]:
                        continue
                    expected = slot[1]
                    if user.op_type == "Gemm":
                        trans_b = next((a.i for a in user.attribute if a.name == "transB"), 0)
                        expected = 0 if trans_b else 1
                    if axis != expected:
                        problems.append(
                            f"{where}: per-channel axis {axis}, {user.op_type} wants its output "
                            f"channels (axis {expected})"
                        )
                    if scale_v.size != dims[axis]:
                        problems.append(f"{where}: {scale_v.size} scales for {dims[axis]} channels")
        elif scale_v.size > 1:
            problems.append(f"{where}: per-channel scales on an activation; TensorRT wants one")
    return problems


SHAPE_INFERENCE_FAILED = "Incomplete symbolic shape inference"


@contextlib.contextmanager
def _scratch_dir() -> Any:
    """A temporary working directory for onnxruntime's quantization tools, removed after
    (and their root-logger warnings held back: the result is validated instead): its
    symbolic shape inference writes ``sym_shape_infer_temp.onnx`` and a
    ``<uuid>.data`` file into the current directory when it fails, and those must not be
    left in the user's folder."""
    import logging
    import tempfile

    here = os.getcwd()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's quantizers warn on the root logger
    with tempfile.TemporaryDirectory(prefix="onnx-deploy-quant.") as work:
        os.chdir(work)
        try:
            yield Path(work)
        finally:
            os.chdir(here)
            root.setLevel(level)


def _first_unshaped(path: Path) -> str:
    """The first node whose outputs symbolic shape inference left without a shape, from
    the partial model it saves (``node 'name' (OpType)``), or ''."""
    import onnx

    if not path.exists():
        return ""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return ""
    known = {v.name for v in (*proto.graph.value_info, *proto.graph.input, *proto.graph.output)}
    known |= {i.name for i in proto.graph.initializer}
    for node in proto.graph.node:
        if any(o and o not in known for o in node.output):
            return f"node {node.name!r} ({node.op_type})"
    return ""


def preprocess_model(
    input_path: str | os.PathLike[str], output_path: str | os.PathLike[str]
) -> tuple[str, ...]:
    """``quant_pre_process`` (shape inference, constant folding) that works on
    transformer graphs; returns notes on what it had to do.

    The dynamo exporter's DistilBERT/BERT graphs slice a position buffer with
    ``Min(max_positions, seq)``, which onnxruntime's symbolic shape inference cannot
    resolve ("Incomplete symbolic shape inference"). ``auto_merge=True`` lets it merge
    such dims; the result is validated against the parent like every quantized model.
    What still fails names the node it stopped at and the fixes. The tool's scratch files
    never land in the working directory (``_scratch_dir``)."""
    from onnxruntime.quantization import quant_pre_process

    from onnx_deploy.core.extras import symbolic_shape_infer

    symbolic_shape_infer()  # what quant_pre_process imports, without torch's import
    src, dst = str(Path(input_path).resolve()), str(Path(output_path).resolve())
    with _scratch_dir() as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            quant_pre_process(src, dst)
            return ()
        except Exception as e:
            if SHAPE_INFERENCE_FAILED not in str(e):
                raise QuantizeError(
                    f"onnxruntime's quantization pre-processing failed on {input_path}: "
                    f"{type(e).__name__}: {first_line(e)}"
                ) from e
        where = _first_unshaped(work / "sym_shape_infer_temp.onnx")
        try:
            quant_pre_process(src, dst, auto_merge=True)
        except Exception as e:
            raise QuantizeError(
                f"onnxruntime's symbolic shape inference cannot infer the shapes of "
                f"{input_path} (it stops at {where or 'an unnamed node'}), even with "
                "auto_merge=True. Try: export with a fixed sequence length (--dim seq=N:N), "
                "or skip pre-processing (preprocess=False; CLI: --no-preprocess), which "
                f"quantizes the graph as it is. ({type(e).__name__}: {first_line(e)})"
            ) from e
    return (
        f"symbolic shape inference stopped at {where or 'a node'}; pre-processed with "
        "auto_merge=True (merges symbolic dims it cannot prove equal, such as a position "
        "slice Min(max_positions, seq) and seq), validated against the parent",
    )


def _without_value_info(path: str | os.PathLike[str], out: Path) -> str:
    """``path`` with its intermediate ``value_info`` cleared, written to ``out``: the
    dynamo exporter records the example's sizes there (2, where the batch is dynamic),
    and onnxruntime's quantizers then stop at "Inferred shape and existing shape differ"."""
    external = has_external_data(path)
    proto = load_onnx(path, load_external_data=not external)
    if not len(proto.graph.value_info):
        return str(path)
    del proto.graph.value_info[:]
    if external:  # the weights stay on disk, copied a chunk at a time
        copy_external_data(proto, Path(path).resolve().parent, out)
    else:
        write_onnx(proto, out)
    return str(out)


def _warn_if_saturating(choice: TypeChoice) -> None:
    if choice.saturates:
        warnings.warn(choice.reason, QuantizationWarning, stacklevel=3)


def _saturation_notes(choice: TypeChoice) -> list[str]:
    if not choice.saturates:
        return []
    return [f"{choice.short} on {choice.isa} can saturate: see types above"]


def quantize_dynamic_model(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    op_types: Sequence[str] | None = defaults.DYNAMIC_OP_TYPES,
    weight_type: str | None = None,
    per_channel: bool = False,
    reduce_range: bool | None = None,
    target_isa: str | None = None,
    preprocess: bool = True,
    validate: bool = True,
    validation_inputs: Sequence[Any] | None = None,
    labels: np.ndarray | None = None,
    force: bool = False,
) -> QuantizeResult:
    """Dynamic INT8: weights quantized ahead, activations at run time. For MatMul/Gemm
    heavy models (transformers, MLPs, RNNs). ``op_types=None`` quantizes every supported
    op, convolutions included, which ran resnet18 5-7x slower than FP32 here: it warns.
    Activations are always uint8 at run time; ``weight_type`` and ``reduce_range`` default
    to ``choose_types`` for ``target_isa`` (this CPU by default), as in static INT8."""
    from onnxruntime.quantization import quantize_dynamic

    choice = choose_types(None, weight_type, reduce_range, target_isa, dynamic=True)
    _warn_if_saturating(choice)

    parent = load_onnx(input_path, load_external_data=False)  # the graph, not its weights
    if is_quantized(parent):
        raise QuantizeError(f"{input_path} is already quantized; quantize the FP32 model")
    convs = sum(n.op_type == "Conv" for n in parent.graph.node)
    large = file_size(input_path) > PROTOBUF_LIMIT
    decoder = is_cached_decoder(parent)
    del parent
    if convs and (op_types is None or "Conv" in op_types):
        warnings.warn(
            f"dynamic quantization of {convs} Conv nodes: ONNX Runtime runs ConvInteger with "
            "run-time activation quantization, which was 5-7x slower than FP32 on resnet18 "
            "(notebook 05). Use static quantization for CNNs, or op_types=('MatMul', 'Gemm').",
            QuantizationWarning,
            stacklevel=2,
        )
    start = time.perf_counter()
    with atomic_output(output_path, force=force) as tmp:
        pre = tmp.with_name("preprocessed.onnx")
        pre_notes: tuple[str, ...] = ()
        if preprocess and not large:
            pre_notes = preprocess_model(input_path, pre)
            source = str(pre)
        else:
            source = _without_value_info(input_path, pre)
            if preprocess:  # its shape inference parses the model as one protobuf
                pre_notes = (
                    "past protobuf's 2 GB: quantized without onnxruntime's pre-processing "
                    "(quant_pre_process parses the model as one protobuf and fails)",
                )
        src_abs, tmp_abs = str(Path(source).resolve()), str(tmp.resolve())
        with warnings.catch_warnings(), _scratch_dir():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                src_abs, tmp_abs,
                weight_type=_qtype(choice.weight_type),
                per_channel=per_channel, reduce_range=choice.reduce_range,
                op_types_to_quantize=list(op_types) if op_types is not None else None,
                use_external_data_format=large,
            )  # fmt: skip
        for scratch in (pre, pre.with_name(pre.name + EXTERNAL_DATA_SUFFIX)):
            scratch.unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        tokens = None
        if validate and decoder and validation_inputs is None:  # a decoder: by its tokens
            report, metrics = None, {}
            tokens = check_against_parent(input_path, tmp, str(output_path))
            if not tokens.ok:
                raise QuantizeError(
                    tokens.summary() + "\ndynamic INT8 changes the greedy tokens; nothing was "
                    "written. Try --method int8-weight (activations stay float)."
                )
        else:
            report, metrics = check_quantized(
                input_path, tmp, output_path, "int8", validate, validation_inputs, labels
            )
    details = {
        "weights": choice.weight_type, "reduce_range": choice.reduce_range,
        "op_types": tuple(op_types) if op_types else "all",
    }  # fmt: skip
    return QuantizeResult(
        str(input_path), str(output_path), "dynamic", details, file_size(input_path),
        file_size(output_path), seconds, report, metrics,
        (*pre_notes, *_saturation_notes(choice)), choice, tokens,
    )  # fmt: skip


def convert_fp16(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    keep_io_types: bool = True,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] | None = None,
    validate: bool = True,
    validation_inputs: Sequence[Any] | None = None,
    labels: np.ndarray | None = None,
    force: bool = False,
) -> QuantizeResult:
    """FP16 weights and compute, float32 inputs/outputs by default (``keep_io_types``).

    Without ``keep_io_types`` callers must feed float16, and tiny logits can underflow.
    ``node_block_list``: nodes kept in FP32, e.g. ``fp16_overflow_nodes``'s answer.
    FP16 pays off on GPUs (tensor cores); on a CPU it runs but is not faster.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from onnx_deploy.convert.graphcheck import check_graph
    from onnx_deploy.convert.graphcheck import sort_nodes

    # weights in external data never enter memory: the graph is converted without them
    # and each FP32 weight is converted a chunk at a time on its way to the output's file
    external = has_external_data(input_path)
    parent = load_onnx(input_path, load_external_data=not external)
    if is_quantized(parent):
        raise QuantizeError(f"{input_path} is quantized; convert the FP32 model to FP16")
    start = time.perf_counter()
    with atomic_output(output_path, force=force) as tmp:
        kwargs: dict[str, Any] = {"op_block_list": list(op_block_list)} if op_block_list else {}
        if node_block_list:
            kwargs["node_block_list"] = list(node_block_list)
        decoder = is_cached_decoder(parent)
        stored_fp32: set[str] = set()
        if external:  # the converter's own shape inference would need the weights
            import onnx

            inferred = onnx.shape_inference.infer_shapes(parent).graph.value_info
            del parent.graph.value_info[:]
            parent.graph.value_info.extend(inferred)
            stored_fp32 = {
                t.name
                for t in parent.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL
                and t.data_type == onnx.TensorProto.FLOAT
            }
        with warnings.catch_warnings(), _shapes_from_dims():
            warnings.simplefilter("ignore")
            fp16 = convert_float_to_float16(
                parent, keep_io_types=keep_io_types, disable_shape_infer=external, **kwargs
            )
        del parent
        if node_block_list:
            drop_cast_round_trips(fp16)
        sort_nodes(fp16)  # the converter can append a graph input's Cast after its readers
        if external:
            halved = {t.name for t in fp16.graph.initializer if t.data_type == 10}
            copy_external_data(
                fp16,
                Path(input_path).resolve().parent,
                tmp,
                convert=dict.fromkeys(stored_fp32 & halved, _fp32_bytes_to_fp16),
            )
        else:
            write_onnx(fp16, tmp)
        check_graph(tmp)  # by path: it may hold external data
        seconds = time.perf_counter() - start
        tokens = None
        if validate and keep_io_types and decoder and validation_inputs is None:
            report, metrics = None, {}  # a decoder: by its greedy tokens
            tokens = check_against_parent(input_path, tmp, str(output_path))
            if not tokens.ok:
                raise QuantizeError(
                    tokens.summary() + "\nFP16 changes the greedy tokens; nothing was "
                    "written. Keep the FP32 file, or block the overflowing nodes "
                    "(fp16_overflow_nodes)."
                )
        else:
            report, metrics = check_quantized(
                input_path, tmp, output_path, "fp16", validate and keep_io_types,
                validation_inputs, labels,
            )  # fmt: skip
    details: dict[str, Any] = {"keep_io_types": keep_io_types}
    if node_block_list:
        details["kept_fp32"] = tuple(node_block_list)
    return QuantizeResult(
        str(input_path), str(output_path), "fp16", details, file_size(input_path),
        file_size(output_path), seconds, report, metrics, (), None, tokens,
    )  # fmt: skip


FP16_MAX, FP16_TINY = 65504.0, 5.96e-08  # onnxruntime's converter's clamps


def _fp32_bytes_to_fp16(chunk: bytes) -> bytes:
    """FP32 bytes as FP16 bytes, as onnxruntime's converter (``convert_np_to_float16``)
    turns a weight it holds, bit for bit: finite values past FP16's range clamp to +-65504
    and nonzero ones under 5.96e-8 to +-5.96e-8, never to inf or 0; NaN, inf and 0 stay.
    One cast and two masks: 0.18 s per 64 MB chunk against its ten passes of
    ``np.where``'s 0.42 s (about 14 s of the 2.2 GB test graph's 30 s command)."""
    values = np.frombuffer(chunk, dtype=np.float32)
    half = values.astype(np.float16)
    magnitude = np.abs(values)
    for clamp, where in (
        (FP16_TINY, (magnitude > 0) & (magnitude < FP16_TINY)),
        (FP16_MAX, (magnitude > FP16_MAX) & np.isfinite(magnitude)),
    ):
        if where.any():
            half[where] = np.copysign(np.float32(clamp), values[where]).astype(np.float16)
    return half.tobytes()


@contextlib.contextmanager
def _shapes_from_dims() -> Any:
    """onnxruntime's float16 converter reads a converted weight's values only to learn its
    shape (``make_value_info_from_tensor``); a weight left in external data has no values
    in memory, and its ``dims`` say the same. Restored on exit."""
    from onnx import helper
    from onnxruntime.transformers import float16

    original = float16.make_value_info_from_tensor
    float16.make_value_info_from_tensor = lambda t: helper.make_tensor_value_info(
        t.name, t.data_type, list(t.dims)
    )
    try:
        yield
    finally:
        float16.make_value_info_from_tensor = original


def drop_cast_round_trips(model: Any) -> int:
    """Remove the FP32 -> FP16 -> FP32 casts that onnxruntime's float16 converter puts
    between two nodes it was told to keep in FP32: the round trip would overflow exactly
    the values those nodes were kept for (``Cast(to=float16)`` then ``Cast(to=float)``,
    rewired to the original FP32 tensor). Edits ``model`` in place; returns the count."""
    graph = model.graph
    outputs = {o.name for o in graph.output}

    def cast_to(node: Any) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed = 0
    for down in [n for n in graph.node if cast_to(n) == 10]:
        src = down.input[0]
        for up in [c for c in consumers.get(down.output[0], []) if cast_to(c) == 1]:
            if up.output[0] in outputs:
                continue
            for consumer in consumers.get(up.output[0], []):
                for i, name in enumerate(consumer.input):
                    if name == up.output[0]:
                        consumer.input[i] = src
            graph.node.remove(up)
            removed += 1
        still_used = any(down.output[0] in n.input for n in graph.node) or down.output[0] in outputs
        if not still_used:
            graph.node.remove(down)
    return removed


FP16_MAX = 65504.0
# Activations above this share of FP16's largest value are kept in FP32: calibration data
# seldom shows the worst case, so leave headroom.
FP16_HEADROOM = 0.25


@dataclass(frozen=True)
class OverflowNode:
    """A node whose FP32 activations come too close to FP16's range."""

    node: str
    op_type: str
    tensor: str
    max_abs: float


def fp16_overflow_nodes(
    model: str | os.PathLike[str], inputs: Any, headroom: float = FP16_HEADROOM
) -> list[OverflowNode]:
    """Nodes to keep in FP32 for an FP16 graph: every node that produces or consumes a
    tensor whose largest |value| on ``inputs`` (real samples) exceeds ``headroom`` x 65504.
    Both sides: a producer kept in FP32 still overflows in the Cast to FP16 before an FP16
    consumer. Runs the FP32 model with every intermediate tensor exposed."""
    from onnx_deploy.core.feeds import as_batches
    from onnx_deploy.infer.intermediates import intermediate_outputs
    from onnx_deploy.infer.modelinfo import graph_io

    proto = load_onnx(model)
    limit = headroom * FP16_MAX
    peak: dict[str, float] = {}
    for values in intermediate_outputs(proto, as_batches(inputs, graph_io(proto)[0])):
        for name, value in values.items():
            if np.issubdtype(np.asarray(value).dtype, np.floating) and np.size(value):
                peak[name] = max(peak.get(name, 0.0), float(np.abs(value).max()))
    hot = {name for name, v in peak.items() if v > limit}
    found = []
    for node in proto.graph.node:
        touched = [t for t in (*node.output, *node.input) if t in hot]
        if touched:
            worst = max(touched, key=lambda t: peak[t])
            found.append(OverflowNode(node.name, node.op_type, worst, peak[worst]))
    return found


# --- per-layer debugging ---------------------------------------------------------------------


@dataclass(frozen=True)
class LayerError:
    """Quantization error at one activation tensor, as SQNR in dB (higher is better).

    ``sqnr``: the tensor in the quantized model vs the float model (error accumulated up
    to here). ``sqnr_drop``: how much SQNR this layer loses relative to its input tensor,
    i.e. the error the layer itself adds. ``nodes``: the float-model nodes between the
    input tensor and this one (a Conv and the Relu fused with it, say), the names to pass
    to ``nodes_to_exclude``.
    """

    tensor: str
    op_type: str
    nodes: tuple[str, ...]
    input_tensor: str
    sqnr: float
    sqnr_drop: float


def layer_errors(
    float_model: str | os.PathLike[str],
    qdq_model: str | os.PathLike[str],
    data: Any,
    limit: int | None = 32,
) -> list[LayerError]:
    """Per-layer SQNR with onnxruntime's ``qdq_loss_debug`` helpers, largest drop first.

    ``float_model`` must be the graph quantization started from: the pre-processed model
    when ``quantize_static_model`` pre-processed it (write one with ``preprocessed_copy``),
    so tensor and node names match.
    """
    import contextlib
    import io
    import tempfile

    from onnxruntime.quantization.qdq_loss_debug import collect_activations
    from onnxruntime.quantization.qdq_loss_debug import compute_activation_error
    from onnxruntime.quantization.qdq_loss_debug import create_activation_matching
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    reader = calibration_reader(float_model, data, limit=limit)
    float_proto = load_onnx(float_model)
    producers = {o: n for n in float_proto.graph.node for o in n.output}
    weights = {i.name for i in float_proto.graph.initializer}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        aug_f, aug_q = Path(tmp) / "float_aug.onnx", Path(tmp) / "qdq_aug.onnx"
        modify_model_output_intermediate_tensors(str(float_model), str(aug_f))
        modify_model_output_intermediate_tensors(str(qdq_model), str(aug_q))
        providers = ["CPUExecutionProvider"]
        float_acts = collect_activations(str(aug_f), reader, execution_providers=providers)
        reader.rewind()
        qdq_acts = collect_activations(str(aug_q), reader, execution_providers=providers)
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    sqnr = {t: float(e.get("xmodel_err", float("nan"))) for t, e in errors.items()}

    def activation_input(node: Any) -> str | None:
        return next((i for i in node.input if i and i not in weights), None)

    rows = []
    for tensor, value in sqnr.items():
        node = producers.get(tensor)
        if node is None:
            continue  # a graph input: its error is the input's own quantization
        chain, source = [node.name], activation_input(node)
        while source is not None and source not in sqnr and source in producers:
            upstream = producers[source]
            chain.append(upstream.name)
            source = activation_input(upstream)
        before = sqnr.get(source, float("nan")) if source else float("nan")
        rows.append(
            LayerError(
                tensor, node.op_type, tuple(reversed(chain)), source or "?", value, before - value
            )
        )
    return sorted(rows, key=lambda r: -np.nan_to_num(r.sqnr_drop, nan=-np.inf))


def preprocessed_copy(
    input_path: str | os.PathLike[str], output_path: str | os.PathLike[str], force: bool = False
) -> str:
    """Write ``quant_pre_process(input)``: the graph static quantization actually sees."""
    with atomic_output(output_path, force=force) as tmp:
        preprocess_model(input_path, tmp)
    return str(output_path)


def worst_nodes(errors: Sequence[LayerError], count: int = 1) -> list[str]:
    """Nodes of the ``count`` layers that add the most error, for ``nodes_to_exclude``."""
    ranked = sorted(errors, key=lambda e: -np.nan_to_num(e.sqnr_drop, nan=-np.inf))
    return list(dict.fromkeys(n for e in ranked[:count] for n in e.nodes))
