"""``onnx-deploy bench``: ONNX files on ONNX Runtime, or model specs on PyTorch vs ONNX Runtime."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_runtimes
from onnx_deploy.cli._common import add_session_settings
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import add_timing
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import model_source
from onnx_deploy.cli._common import step
from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP

HELP = "benchmark .onnx files on ONNX Runtime (and OpenVINO), or model specs on PyTorch vs them"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "models", nargs="+", help=".onnx paths or model specs (specs are exported to a temp dir)"
    )
    add_timing(p, BENCH_WARMUP, BENCH_ITERS)
    add_session_settings(p)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--input-shape", type=ints, help="sample shape for non-torchvision specs")
    add_signature(p, data_flag="inputs")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="interleave the .onnx files given together in this many rounds, so machine "
        "noise hits all alike, and show each ratio with its 95%% interval over the rounds "
        "(3 or more); default 1 (in turn). PyTorch vs ONNX Runtime always runs in "
        "turn: their spinning thread pools slow each other when interleaved on few cores",
    )
    add_runtimes(p, "each .onnx file")
    p.add_argument(
        "--no-peak", action="store_true",
        help="skip %% of peak (the machine-peak probe: about 5 s once, then cached)",
    )  # fmt: skip
    p.add_argument("--weights", help="checkpoint for spec targets")
    p.add_argument("--output", help="write all results as JSON here")
    p.add_argument("--plot", help="write a latency/throughput plot (PNG) here")
    add_force(p, "--output/--plot files")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.pipeline import benchmark_report

    report = benchmark_report(
        [model_source(args, m) for m in args.models], output=args.output, plot=args.plot,
        force=args.force, batch_sizes=args.batch_sizes, warmup=args.warmup, iters=args.iters,
        device=args.device, threads=args.threads, spinning=args.spinning, rounds=args.rounds,
        runtimes=args.runtimes, peak=not args.no_peak, log=step(args),
    )  # fmt: skip
    if args.json:
        emit(args, report)
    elif text := report.summary(with_results=False):  # each result was logged as it came
        print("\n" + text)
    return EXIT_OK
