"""``onnx-deploy pipeline``: export, slim, validate and benchmark one model spec."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import add_timing
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import model_source
from onnx_deploy.cli._common import step
from onnx_deploy.core.defaults import PIPELINE_ITERS
from onnx_deploy.core.defaults import PIPELINE_WARMUP

HELP = "export, slim, validate and benchmark one model, with a summary"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default="torchvision:resnet18")
    p.add_argument("--out-dir", default="artifacts/pipeline")
    p.add_argument("--weights")
    p.add_argument("--input-shape", type=ints, help="one float input's sample shape")
    add_signature(p)
    add_timing(p, PIPELINE_WARMUP, PIPELINE_ITERS)
    add_force(p, "existing files in --out-dir")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.pipeline import run_pipeline

    result = run_pipeline(
        model_source(args), args.out_dir,
        batch_sizes=args.batch_sizes, warmup=args.warmup, iters=args.iters,
        force=args.force, log=step(args),
    )  # fmt: skip
    if args.json:
        emit(args, result)
    else:
        print()
        print(result.summary())
    return EXIT_OK if result.ok else EXIT_FAIL
