"""``onnx-deploy edit``: graph surgery on an ONNX file, each edit checked and validated."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit

HELP = "edit an ONNX graph (rename, dims, pre/postprocessing, extract, opset, merge, weights)"


def _pair(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old, new


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated tensor names")
    return names


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 224x224, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected HxW such as 224x224, got {text!r}")
    return values[0], values[1]


def _common(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("model", help="the .onnx file to edit (never modified)")
    sp.add_argument("-o", "--output", help="where to write (default: NAME.EDIT.onnx beside it)")
    sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    add_force(sp)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="edit", metavar="EDIT", required=True)

    sp = sub.add_parser("rename", help="rename inputs and outputs: x=image linear=logits")
    _common(sp)
    sp.add_argument("mapping", nargs="+", type=_pair, metavar="OLD=NEW")

    sp = sub.add_parser("dim", help="fix a dim (batch=1) or make one symbolic (x[0]=batch)")
    _common(sp)
    sp.add_argument(
        "dims", nargs="+", metavar="DIM=VALUE",
        help="a symbolic dim's name (every input and output carrying it) or TENSOR[AXIS]; "
        "an integer fixes it, a name makes it symbolic",
    )  # fmt: skip

    sp = sub.add_parser("expose", help="add intermediate tensors as extra outputs")
    _common(sp)
    sp.add_argument("tensors", nargs="+", help="names from `onnx-deploy inspect MODEL --tensors`")

    sp = sub.add_parser("extract", help="cut out the subgraph between named tensors")
    _common(sp)
    sp.add_argument("--inputs", type=_names, required=True, help="comma-separated tensor names")
    sp.add_argument("--outputs", type=_names, required=True, help="comma-separated tensor names")

    sp = sub.add_parser("opset", help="convert to another opset (onnx.version_converter)")
    _common(sp)
    sp.add_argument("opset", type=int)

    sp = sub.add_parser(
        "preprocess", help="embed image preprocessing: the model takes uint8 pixels"
    )
    _common(sp)
    sp.add_argument("--input", dest="input_name", help="the image input (default: the only one)")
    sp.add_argument("--layout", choices=("NHWC", "NCHW"), default="NHWC", help="of the pixels")
    sp.add_argument("--resize", type=int, help="resize so the shorter side is this (bilinear)")
    sp.add_argument(
        "--crop", type=_size, help="center crop HxW (default with --resize: the model's)"
    )
    sp.add_argument("--mean", type=_floats, default=(0.0,), help="per channel, after scaling")
    sp.add_argument("--std", type=_floats, default=(1.0,), help="per channel, after scaling")
    sp.add_argument(
        "--imagenet", action="store_true", help="ImageNet mean and std (torchvision's models)"
    )
    sp.add_argument("--scale", type=float, default=1 / 255, help="pixels are multiplied by this")
    sp.add_argument("--pixels-name", default="pixels", help="name of the new uint8 input")
    sp.add_argument(
        "--no-antialias",
        action="store_true",
        help="resize without antialiasing (the form TensorRT's ONNX parser takes)",
    )
    sp.add_argument(
        "--letterbox", action="store_true",
        help="detector preprocessing: any image size, resized keeping the aspect ratio and "
        "padded to the model's size; boxes are mapped back to the original pixels",
    )  # fmt: skip
    sp.add_argument("--pad-value", type=int, default=114, help="letterbox padding (0-255)")

    sp = sub.add_parser(
        "postprocess", help="append softmax/top-k to a classifier, or NMS to a detector (--nms)"
    )
    _common(sp)
    sp.add_argument(
        "--scores", dest="output_name",
        help="the scores output (default: the only one; with --nms and --boxes: the "
        "[batch, anchors, classes] scores)",
    )  # fmt: skip
    sp.add_argument("--top-k", type=int, help="add scores and int64 labels of the k best")
    sp.add_argument("--no-softmax", action="store_true", help="top-k over the raw scores")
    sp.add_argument("--keep-logits", action="store_true", help="keep the original output too")
    det = sp.add_argument_group("detectors (--nms)")
    det.add_argument(
        "--nms", action="store_true",
        help="decode boxes, class-aware NonMaxSuppression, padded outputs num_detections, "
        "boxes, scores, classes (TensorRT EfficientNMS layout)",
    )  # fmt: skip
    det.add_argument("--head", help="the [batch, 4+classes, anchors] output (default: found)")
    det.add_argument("--boxes", help="a [batch, anchors, 4] boxes output (with --scores)")
    det.add_argument("--box-format", choices=("cxcywh", "xyxy"), help="default: by layout")
    det.add_argument("--classes", dest="num_classes", type=int, help="expected class count")
    det.add_argument("--score-threshold", type=float, default=0.25)
    det.add_argument("--iou-threshold", type=float, default=0.45)
    det.add_argument("--max-detections", type=int, default=100, help="per image")

    sp = sub.add_parser("merge", help="chain two models: MODEL's outputs feed OTHER's inputs")
    _common(sp)
    sp.add_argument("other", help="the second .onnx file")
    sp.add_argument("--first", action="store_true", help="OTHER goes first (preprocessing)")
    sp.add_argument(
        "--map", dest="io_map", action="append", type=_pair, metavar="OUTPUT=INPUT",
        help="which output feeds which input (default: by name, else by position)",
    )  # fmt: skip

    sp = sub.add_parser("external", help="move weights to NAME.onnx.data, or back inline")
    _common(sp)
    sp.add_argument("--to", choices=("external", "inline"), default="external")


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The library options of ``edit_file`` for a parsed command line."""
    e = args.edit
    if e == "rename":
        return {"mapping": dict(args.mapping)}
    if e == "dim":
        return {"dims": list(args.dims)}
    if e == "expose":
        return {"tensors": list(args.tensors)}
    if e == "extract":
        return {"inputs": args.inputs, "outputs": args.outputs}
    if e == "opset":
        return {"opset": args.opset}
    if e == "preprocess" and args.letterbox:
        return {
            "input_name": args.input_name, "letterbox": True, "pad_value": args.pad_value,
            "scale": args.scale, "pixels_name": args.pixels_name,
            "antialias": not args.no_antialias,
        }  # fmt: skip
    if e == "preprocess":
        from onnx_deploy.convert.surgery import IMAGENET_MEAN
        from onnx_deploy.convert.surgery import IMAGENET_STD

        return {
            "input_name": args.input_name, "layout": args.layout, "resize": args.resize,
            "crop": args.crop, "scale": args.scale, "pixels_name": args.pixels_name,
            "mean": IMAGENET_MEAN if args.imagenet else args.mean,
            "std": IMAGENET_STD if args.imagenet else args.std,
            "antialias": not args.no_antialias,
        }  # fmt: skip
    if e == "postprocess" and args.nms:
        return {
            "nms": True, "head": args.head, "boxes": args.boxes, "scores": args.output_name,
            "box_format": args.box_format, "num_classes": args.num_classes,
            "score_threshold": args.score_threshold, "iou_threshold": args.iou_threshold,
            "max_detections": args.max_detections,
        }  # fmt: skip
    if e == "postprocess":
        return {
            "output_name": args.output_name, "top_k": args.top_k,
            "softmax": not args.no_softmax, "keep_logits": args.keep_logits,
        }  # fmt: skip
    if e == "merge":
        return {"other": args.other, "first": args.first, "io_map": args.io_map}
    return {"external": args.to == "external"}


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.convert.surgery import edit_file

    src = Path(args.model)
    output = args.output or src.with_name(f"{src.stem}.{args.edit}.onnx")
    result = edit_file(src, output, args.edit, force=args.force, **options(args))
    emit(args, result)
    return EXIT_OK if result.ok else EXIT_FAIL
