"""``onnx-deploy quantize``: one pass of the registry (static INT8 QDQ, dynamic INT8, FP16,
TensorRT's INT8 QDQ), run alone and validated against the FP32 model."""

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


def _methods() -> dict[str, Any]:
    """The quantize passes by their --method (``passes.by_command``)."""
    from onnx_deploy.passes import by_command

    return by_command("quantize")


def add_arguments(q: argparse.ArgumentParser) -> None:
    methods = _methods()
    q.add_argument(
        "model",
        help="FP32 .onnx, or an encoder-decoder folder from export hf:DIR --with-cache (each "
        "file quantized; judge it with generate OUT --reference hf:DIR)",
    )
    q.add_argument(
        "-o", "--output",
        help="output path (default: NAME" + ", NAME".join(p.suffix + ".onnx" for p in methods.values()) + ")",
    )  # fmt: skip
    q.add_argument(
        "--method",
        choices=tuple(methods),
        default="static",
        help="; ".join(f"{m}: {p.title}" for m, p in methods.items())
        + " (the passes of `onnx-deploy optimize --list-passes`)",
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
    q.add_argument(
        "--block-size", type=int, default=32, help="int4/int8-weight: weights per scale; default 32"
    )
    q.add_argument(
        "--algorithm",
        choices=("rtn", "hqq"),
        default="rtn",
        help="int4/int8-weight: rtn rounds to nearest; hqq (4 bits) fits the scales to the "
        "weights; neither needs data. Default rtn",
    )
    q.add_argument("--exclude", help="comma-separated node names to keep in float")
    q.add_argument(
        "--op-types",
        help="static/dynamic: comma-separated op types to quantize, or 'all'; default: every "
        f"op for static, {','.join(DYNAMIC_OP_TYPES)} for dynamic",
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


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """Every option a quantize pass may take, by the name of its option field; each pass
    takes the ones it declares (``Pass.options``)."""
    return {
        "activation_type": auto(args.activation_type),
        "weight_type": auto(args.weight_type),
        "reduce_range": args.reduce_range,
        "target_isa": auto(args.target_isa),
        "per_channel": not args.per_tensor,
        "quant_format": args.format,
        "calibration_method": args.calibration_method,
        "nodes_to_exclude": tuple(n for n in (args.exclude or "").split(",") if n),
        **({} if args.op_types is None else {"op_types": _op_types(args.op_types)}),
        "block_size": args.block_size,
        "algorithm": args.algorithm,
    }


def _op_types(value: str) -> tuple[str, ...] | None:
    """``--op-types``: 'all' is every op; absent, each method keeps its own default (static
    INT8 quantizes every op it can, dynamic MatMul and Gemm)."""
    return None if value == "all" else tuple(t for t in value.split(",") if t)


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import run_pass

    step = _methods()[args.method]
    flags = _flags(args)
    options = step.options(
        **{f.name: flags[f.name] for f in step.option_fields() if f.name in flags}
    )
    src = Path(args.model)
    if src.is_dir():
        return _folder(args, step.name, options)

    def data(path: str | None) -> Any:
        return load_data(path) if path else None

    ctx = Context(
        calibration=args.calibration, calibration_size=args.calibration_size, validate=True,
        validation_inputs=data(args.validation_data), labels=data(args.labels), force=args.force,
    )  # fmt: skip
    output = args.output or src.with_name(src.stem + step.suffix + step.extension)
    result = run_pass(step.name, src, output, ctx, options).result
    emit(args, result)
    if result.validation is not None and not result.validation.ok:
        return fail(
            "the quantized model fails its tolerance against the FP32 model (see above); "
            "it was written for inspection"
        )
    return EXIT_OK


def _folder(args: argparse.Namespace, method: str, options: Any) -> int:
    """An encoder-decoder folder (``export hf:DIR --with-cache``): each file quantized."""
    from onnx_deploy.workflows.generation import quantize_seq2seq

    if args.method not in ("dynamic", "int4", "int8-weight", "fp16"):
        return fail(f"--method {args.method} takes one file; a folder takes dynamic, int4, "
                    "int8-weight or fp16")  # fmt: skip
    inputs = None
    if args.validation_data:  # the encoder's inputs by name, one row per input
        from onnx_deploy.core.feeds import load_data

        data = load_data(args.validation_data)
        if not isinstance(data, dict):
            return fail(f"{args.validation_data}: an .npz with the encoder's inputs by name")
        rows = len(next(iter(data.values())))
        inputs = [{k: v[i : i + 1] for k, v in data.items()} for i in range(rows)]
    output = args.output or f"{Path(args.model).name}-{args.method}"
    result = quantize_seq2seq(args.model, output, method, options, inputs=inputs, force=args.force)
    emit(args, result)
    if not result.ok:
        return fail(
            "the quantized folder's tokens differ from its parent's on more inputs than "
            "allowed (above); it was written for inspection"
        )
    return EXIT_OK
