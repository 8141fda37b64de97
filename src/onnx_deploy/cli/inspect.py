"""``onnx-deploy inspect``: an ONNX file's signature, opset, IR version, ops and size."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit
from onnx_deploy.core.tables import format_table

HELP = "print an ONNX model's inputs, outputs, opset, IR version, ops and size"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .onnx file")
    p.add_argument(
        "--tensors",
        action="store_true",
        help="also list every intermediate tensor with its op and inferred shape (the names "
        "`onnx-deploy edit expose` and `edit extract` take)",
    )


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.infer.modelinfo import describe

    info = describe(args.model, runtime_check=True)
    if not args.tensors:
        emit(args, info)
        return EXIT_OK
    from onnx_deploy.convert.surgery import list_tensors
    from onnx_deploy.infer.modelinfo import load_onnx

    tensors = list_tensors(load_onnx(args.model))
    rows = [
        {"tensor": name, "op": op, "spec": None if spec is None else spec.describe()}
        for name, op, spec in tensors
    ]
    table = format_table(
        ("tensor", "op", "type"),
        [(r["tensor"], r["op"], (r["spec"] or "?").split(": ", 1)[-1]) for r in rows],
        widths=(None, 16, None), sep="  ",
    )  # fmt: skip
    emit(args, {**info.to_dict(), "tensors": rows}, info.summary() + "\n\n" + table)
    return EXIT_OK
