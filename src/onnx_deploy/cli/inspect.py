"""``onnx-deploy inspect``: an ONNX file's signature, opset, IR version, ops and size."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK, emit

HELP = "print an ONNX model's inputs, outputs, opset, IR version, ops and size"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .onnx file")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.modelinfo import describe

    emit(args, describe(args.model))
    return EXIT_OK
