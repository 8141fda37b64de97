"""``onnx-deploy targets``: the model on onnxruntime-node, in a browser and in the ORT
format, each compared with Python onnxruntime."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit

HELP = (
    "check the model beyond Python: onnxruntime-node, a browser (onnxruntime-web), the ORT format"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an .onnx file")
    p.add_argument(
        "--out", default="artifacts/targets", help="where the page, .ort and screenshot go"
    )
    p.add_argument(
        "--only", choices=("node", "browser", "ort"), action="append",
        help="run only these checks (repeatable; default all)",
    )  # fmt: skip
    p.add_argument("--inputs", help="real samples (.npy/.npz/.pt) instead of random inputs")
    p.add_argument(
        "--force", action="store_true", help="replace files from an earlier run in --out"
    )


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.targets.parity import check_targets

    result = check_targets(
        args.model, args.out, only=tuple(args.only or ("node", "browser", "ort")),
        inputs=args.inputs, force=args.force,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK if result.ok else EXIT_FAIL
