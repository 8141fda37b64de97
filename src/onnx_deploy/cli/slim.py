"""``onnx-deploy slim``: the slim pass alone, its numerics checked before anything is written."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit

HELP = "slim an ONNX model with onnxslim and check its numerics"
PASS = "slim"  # passes/slim.py


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="input .onnx")
    p.add_argument("-o", "--output", help="output path (default: INPUT.slim.onnx)")
    p.add_argument("--no-check", action="store_true", help="skip the before/after numerics check")
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import get_pass
    from onnx_deploy.passes import run_pass

    src = Path(args.model)
    output = args.output or src.with_name(src.stem + get_pass(PASS).suffix + ".onnx")
    ctx = Context(validate=not args.no_check, force=args.force)
    emit(args, run_pass(PASS, src, output, ctx).result)
    return EXIT_OK
