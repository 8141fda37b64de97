"""``onnx-deploy doctor``: what this machine can really do."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit

HELP = "show versions, working providers, GPU, TensorRT, and what INT8 does on this CPU"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-torch", action="store_true", help="skip importing torch (faster)")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.doctor import run_doctor

    report = run_doctor(probe_torch=not args.no_torch)
    emit(args, report)
    return EXIT_OK if report.ok else EXIT_FAIL
