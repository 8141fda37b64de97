"""``onnx-deploy fuse``: ONNX Runtime's transformer fusions on a dynamo graph, validated."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit

HELP = "fuse attention, SkipLayerNorm and Gelu in a transformer graph (onnxscript ort_fusions)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 .onnx of a transformer (from onnx-deploy export hf:DIR)")
    p.add_argument("-o", "--output", help="output path (default: NAME.fused.onnx)")
    p.add_argument(
        "--inputs",
        dest="data",
        metavar="FILE",
        help="real samples to validate on (.npz by input name); default: random valid inputs",
    )
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.convert.fusion import fuse_transformer
    from onnx_deploy.core.feeds import load_data

    src = Path(args.model)
    output = args.output or src.with_name(src.stem + ".fused.onnx")
    data = load_data(args.data) if args.data else None
    result = fuse_transformer(src, output, validation_inputs=data, force=args.force)
    emit(args, result)
    return EXIT_OK
