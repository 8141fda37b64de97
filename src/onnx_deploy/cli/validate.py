"""``onnx-deploy validate``: an ONNX model against PyTorch or another ONNX model."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import joined
from onnx_deploy.cli._common import model_source
from onnx_deploy.core.defaults import PRECISIONS
from onnx_deploy.core.defaults import VALIDATE_BATCH_SIZES

HELP = "compare an ONNX model with a PyTorch model or another ONNX model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="candidate .onnx")
    p.add_argument("--reference", required=True, help="a model spec (PyTorch) or a reference .onnx")
    p.add_argument("--weights", help="checkpoint for a PyTorch reference")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="tolerance preset")
    p.add_argument(
        "--batch-sizes",
        type=ints,
        default=None,
        help=f"batch sizes to compare (default {joined(VALIDATE_BATCH_SIZES)} for random "
        "inputs, whose other dynamic dims take several sizes across them; with --inputs, "
        "the samples are split into batches of these sizes in turn, default 32 each)",
    )
    add_signature(p, data_flag="inputs")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.validate import validate_model

    source = model_source(args)
    report = validate_model(
        replace(source, weights=None),
        model_source(args, args.reference),  # the weights are the reference's
        batch_sizes=args.batch_sizes, precision=args.precision,
    )  # fmt: skip
    emit(args, report)
    if not report.ok:
        return fail("outputs differ beyond the tolerance (see above)")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return EXIT_OK
