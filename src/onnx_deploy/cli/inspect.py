"""``onnx-deploy inspect``: an ONNX file's signature, opset, IR version, ops and size."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit

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
    from onnx_deploy.build.surgery import list_tensors
    from onnx_deploy.infer.modelinfo import load_onnx

    tensors = list_tensors(load_onnx(args.model))
    rows = [
        {"tensor": name, "op": op, "spec": None if spec is None else spec.describe()}
        for name, op, spec in tensors
    ]
    width = max((len(name) for name, _, _ in tensors), default=6)
    lines = [f"{'tensor':<{width}}  {'op':<18}type"] + [
        f"{r['tensor']:<{width}}  {r['op']:<18}{(r['spec'] or '?').split(': ', 1)[-1]}"
        for r in rows
    ]
    emit(args, {**info.to_dict(), "tensors": rows}, info.summary() + "\n\n" + "\n".join(lines))
    return EXIT_OK
