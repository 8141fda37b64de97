"""``onnx-deploy quantize``: static INT8 (QDQ), dynamic INT8 or FP16, validated."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import auto
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.core.cpu import ISAS
from onnx_deploy.core.defaults import CALIBRATION_METHODS
from onnx_deploy.core.defaults import CALIBRATION_SIZE
from onnx_deploy.core.defaults import DYNAMIC_OP_TYPES
from onnx_deploy.core.defaults import QUANT_TYPES

HELP = "quantize an ONNX model (static INT8 QDQ, dynamic INT8, FP16, TensorRT INT8) and validate it"
SUFFIXES = {
    "static": ".int8.onnx",
    "dynamic": ".dynint8.onnx",
    "fp16": ".fp16.onnx",
    "tensorrt": ".trt-int8.onnx",
}


def add_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("model", help="FP32 .onnx")
    q.add_argument(
        "-o", "--output", help="output path (default: NAME.int8.onnx / .dynint8.onnx / .fp16.onnx)"
    )
    q.add_argument(
        "--method",
        choices=tuple(SUFFIXES),
        default="static",
        help="static: INT8 QDQ for CPUs (types per --target-isa); tensorrt: symmetric int8 "
        "QDQ with float bias, the graph TensorRT builds as INT8",
    )
    q.add_argument("--calibration", help="static: .npy/.npz/.pt of inputs, or a folder of images")
    q.add_argument(
        "--calibration-size",
        type=int,
        default=CALIBRATION_SIZE,
        help=f"samples used for calibration (default {CALIBRATION_SIZE})",
    )
    q.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax")
    q.add_argument(
        "--activation-type",
        choices=("auto", *QUANT_TYPES),
        default="auto",
        help="auto: from the target CPU (uint8 on x86, int8 on ARM; see `onnx-deploy doctor`)",
    )
    q.add_argument(
        "--weight-type",
        choices=("auto", *QUANT_TYPES),
        default="auto",
        help="auto: int8 (uint8 weights also avoid saturation on x86 without VNNI, slower)",
    )
    q.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights; default: on for x86 without VNNI, where int8 weights saturate",
    )
    q.add_argument(
        "--target-isa",
        choices=("auto", *ISAS),
        default="auto",
        help="the CPU the model will run on (default: this one); x86-no-vnni makes a file "
        "that is safe on every x86 CPU",
    )
    q.add_argument(
        "--per-tensor", action="store_true", help="per-tensor instead of per-channel weights"
    )
    q.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    q.add_argument("--exclude", help="comma-separated node names to keep in float")
    q.add_argument(
        "--op-types",
        default=",".join(DYNAMIC_OP_TYPES),
        help="dynamic: op types to quantize, or 'all'",
    )
    q.add_argument(
        "--validation-data", help=".npy/.npz/.pt inputs to validate on (default: calibration data)"
    )
    q.add_argument(
        "--labels",
        help=".npy labels for --validation-data: adds accuracy (top-1 agreement with FP32 "
        "needs no labels: --validation-data alone reports it)",
    )
    add_force(q)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The flags each method takes, by method."""
    exclude = [n for n in (args.exclude or "").split(",") if n]
    calibration = {
        "calibration_method": args.calibration_method,
        "calibration_size": args.calibration_size,
        "nodes_to_exclude": exclude,
    }
    types = {
        "weight_type": auto(args.weight_type), "reduce_range": args.reduce_range,
        "target_isa": auto(args.target_isa),
    }  # fmt: skip
    return {
        "tensorrt": calibration,
        "static": {
            **calibration,
            **types,
            "activation_type": auto(args.activation_type),
            "per_channel": not args.per_tensor,
            "quant_format": args.format,
        },
        "dynamic": {
            **types,
            "op_types": None if args.op_types == "all" else tuple(args.op_types.split(",")),
        },
        "fp16": {},
    }[args.method]


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.convert.quantize import quantize_model

    src = Path(args.model)
    result = quantize_model(
        src, args.output or src.with_name(src.stem + SUFFIXES[args.method]), args.method,
        calibration=args.calibration, validation_inputs=args.validation_data,
        labels=args.labels, force=args.force, **_options(args),
    )  # fmt: skip
    emit(args, result)
    if result.validation is not None and not result.validation.ok:
        return fail(
            "the quantized model fails its tolerance against the FP32 model (see above); "
            "it was written for inspection"
        )
    return EXIT_OK
