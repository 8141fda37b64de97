"""``onnx-deploy validate``: an ONNX model against PyTorch or another ONNX model."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK, emit, fail, ints, joined
from onnx_deploy.defaults import PRECISIONS, VALIDATE_BATCH_SIZES

HELP = "compare an ONNX model with a PyTorch model or another ONNX model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="candidate .onnx")
    p.add_argument("--reference", required=True, help="a model spec (PyTorch) or a reference .onnx")
    p.add_argument("--weights", help="checkpoint for a PyTorch reference")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="tolerance preset")
    p.add_argument(
        "--batch-sizes",
        type=ints,
        default=VALIDATE_BATCH_SIZES,
        help=f"random batches to compare (default {joined(VALIDATE_BATCH_SIZES)})",
    )


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.pipeline import is_onnx_path
    from onnx_deploy.validate import compare_onnx, compare_torch_onnx

    if is_onnx_path(args.reference):
        report = compare_onnx(
            args.reference, args.model, batch_sizes=args.batch_sizes, precision=args.precision
        )
    else:
        from onnx_deploy.zoo import load_model

        module = load_model(args.reference, weights=args.weights)
        report = compare_torch_onnx(
            module, args.model, batch_sizes=args.batch_sizes, precision=args.precision
        )
    emit(args, report)
    if not report.ok:
        return fail("outputs differ beyond the tolerance (see above)")
    return EXIT_OK
