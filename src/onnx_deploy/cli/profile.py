"""``onnx-deploy profile``: where an ONNX model's time goes on ONNX Runtime's CPU provider."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import emit

HELP = "time per node and op type (ONNX Runtime's profiler), FLOPs, GFLOP/s, share of the machine's peak"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .onnx file")
    p.add_argument("--batch-size", type=int, default=1, help="default 1")
    add_signature(p, data_flag="inputs")
    p.add_argument("--runs", type=int, default=20, help="profiled calls, default 20")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls first, default 5")
    p.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")
    p.add_argument("--top", type=int, default=10, help="op types in the table, default 10")
    p.add_argument(
        "--no-peak", action="store_true",
        help="skip %% of peak (the machine-peak probe: about 5 s once, then cached)",
    )  # fmt: skip
    p.add_argument("--plot", help="write the time-per-op and roofline plot (PNG) here")
    add_force(p, "the --plot file")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.profiling import profile_report

    result = profile_report(
        args.model, batch_size=args.batch_size, data=args.data, dims=args.dims,
        inputs=args.inputs, runs=args.runs, warmup=args.warmup, threads=args.threads,
        peak=not args.no_peak, plot=args.plot, force=args.force,
    )  # fmt: skip
    emit(args, result, None if args.json else result.summary(top=args.top))
    if args.plot and not args.json:
        print(f"wrote {args.plot}")
    return EXIT_OK
