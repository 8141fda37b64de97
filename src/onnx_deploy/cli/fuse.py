"""``onnx-deploy fuse``: the fuse pass alone (ONNX Runtime's transformer fusions on a dynamo
graph), validated against its input before it is written."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit

HELP = "fuse attention, SkipLayerNorm and Gelu in a transformer graph (onnxscript ort_fusions)"
PASS = "fuse"  # passes/fuse.py


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="FP32 .onnx of a transformer (from onnx-deploy export hf:DIR)")
    p.add_argument("-o", "--output", help="output path (default: NAME.fused.onnx)")
    p.add_argument(
        "--inputs",
        dest="data",
        metavar="FILE",
        help="real samples to validate on (.npz by input name); default: random valid inputs",
    )
    p.add_argument(
        "--gqa",
        action="store_true",
        help="a decoder's rotary embedding and grouped-query attention too "
        "(GroupQueryAttention: checked by tokens at batch 1; left-padded batches measured)",
    )
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import get_pass
    from onnx_deploy.passes import run_pass
    from onnx_deploy.passes.fuse import FuseOptions

    src = Path(args.model)
    output = args.output or src.with_name(src.stem + get_pass(PASS).suffix + ".onnx")
    data = load_data(args.data) if args.data else None
    ctx = Context(validate=True, validation_inputs=data, force=args.force)
    emit(args, run_pass(PASS, src, output, ctx, FuseOptions(gqa=args.gqa)).result)
    return EXIT_OK
