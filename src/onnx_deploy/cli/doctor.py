"""``onnx-deploy doctor``: what this machine can really do."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit

HELP = "show versions, working providers, GPU, TensorRT, what INT8 does on this CPU, its peak"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-torch", action="store_true", help="skip importing torch (faster)")
    p.add_argument(
        "--no-peak", action="store_true",
        help="skip this machine's FP32/INT8 peak probe (about 5 s the first time, then cached)",
    )  # fmt: skip
    p.add_argument("--refresh-peak", action="store_true", help="measure the peak again")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.doctor import run_doctor

    report = run_doctor(
        probe_torch=not args.no_torch, peak=not args.no_peak, refresh_peak=args.refresh_peak
    )
    emit(args, report)
    return EXIT_OK if report.ok else EXIT_FAIL
