"""``onnx-deploy triton export``: a Triton model repository, its config checked."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import ints

HELP = "write a Triton Inference Server model repository (config.pbtxt checked against Triton's schema)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    e = sub.add_parser("export", help="an .onnx file or a TensorRT .plan -> REPO/NAME/")
    e.add_argument(
        "model", help="an .onnx file (with its .data file) or a .plan with its .plan.json"
    )
    e.add_argument("--repo", required=True, help="the model repository folder")
    e.add_argument("--name", help="the model's name (default: the file's stem)")
    e.add_argument("--model-version", type=int, default=1, help="version folder, default 1")
    e.add_argument("--max-batch-size", type=int, default=64, help="default 64")
    e.add_argument("--preferred", type=ints, default=(4, 8, 16), help="default 4,8,16")
    e.add_argument("--queue-delay-us", type=int, default=100, help="default 100")
    e.add_argument("--no-batching", action="store_true", help="no dynamic_batching block")
    e.add_argument("--kind", choices=("cpu", "gpu"), default="cpu", help="instance kind")
    e.add_argument("--instances", type=int, default=1, help="instances per model, default 1")
    e.add_argument(
        "--tensorrt-fp16", action="store_true",
        help="ONNX on GPU: onnxruntime's TensorRT accelerator in FP16 with an engine cache",
    )  # fmt: skip
    e.add_argument("--no-warmup", action="store_true", help="no model_warmup block")
    e.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    add_force(e, "an existing model folder")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.serve.triton import export_repository

    result = export_repository(
        args.model, args.repo, name=args.name, version=args.model_version,
        max_batch_size=args.max_batch_size, preferred_batch_sizes=args.preferred,
        queue_delay_us=None if args.no_batching else args.queue_delay_us, kind=args.kind,
        instances=args.instances, tensorrt_fp16=args.tensorrt_fp16, warmup=not args.no_warmup,
        force=args.force,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK
