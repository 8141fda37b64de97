"""``onnx-deploy slim``: onnxslim with a numerics check before anything is written."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit

HELP = "slim an ONNX model with onnxslim and check its numerics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="input .onnx")
    p.add_argument("-o", "--output", help="output path (default: INPUT.slim.onnx)")
    p.add_argument("--no-check", action="store_true", help="skip the before/after numerics check")
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.convert.slim import slim_model

    src = Path(args.model)
    output = args.output or src.with_name(src.stem + ".slim.onnx")
    emit(args, slim_model(src, output, force=args.force, check_numerics=not args.no_check))
    return EXIT_OK
