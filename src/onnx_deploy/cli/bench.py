"""``onnx-deploy bench``: ONNX files on ONNX Runtime, or model specs on PyTorch vs ONNX Runtime."""

from __future__ import annotations

import argparse
import json
import tempfile

from onnx_deploy.cli._common import (
    EXIT_OK,
    add_force,
    add_signature,
    add_timing,
    ints,
    model_source,
    step,
)
from onnx_deploy.core.defaults import BENCH_ITERS, BENCH_WARMUP

HELP = "benchmark .onnx files on ONNX Runtime, or model specs on PyTorch vs ONNX Runtime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "models", nargs="+", help=".onnx paths or model specs (specs are exported to a temp dir)"
    )
    add_timing(p, BENCH_WARMUP, BENCH_ITERS)
    p.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads (default: physical cores)"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--input-shape", type=ints, help="sample shape for non-torchvision specs")
    add_signature(p, data_flag="inputs")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="interleave the .onnx files given together in this many rounds, so machine "
        "noise hits all alike; default 1 (in turn). PyTorch vs ONNX Runtime always runs in "
        "turn: their spinning thread pools slow each other when interleaved on few cores",
    )
    p.add_argument("--weights", help="checkpoint for spec targets")
    p.add_argument("--output", help="write all results as JSON here")
    p.add_argument("--plot", help="write a latency/throughput plot (PNG) here")
    add_force(p, "--output/--plot files")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.core.files import atomic_output, check_output_path
    from onnx_deploy.infer.bench import (
        collect_environment,
        comparison_rows,
        comparison_table,
        relative_table,
    )
    from onnx_deploy.workflows.pipeline import benchmark_targets

    for path in (args.output, args.plot):
        if path:
            check_output_path(path, force=args.force)  # before the slow part
    with tempfile.TemporaryDirectory(prefix="onnx-deploy-bench-") as tmp:
        results = benchmark_targets(
            [model_source(args, m) for m in args.models], tmp, batch_sizes=args.batch_sizes,
            warmup=args.warmup, iters=args.iters, device=args.device, threads=args.threads,
            rounds=args.rounds, log=step(args),
        )  # fmt: skip
    env = collect_environment()
    payload = {
        "results": [r.to_dict() for r in results],
        "comparison": comparison_rows(results),
        "environment": env,
    }
    if args.output:
        with atomic_output(args.output, force=args.force) as tmp_out:
            tmp_out.write_text(json.dumps(payload, indent=2, default=str))
    if args.plot:
        from onnx_deploy.present.plots import plot_latency, save_figure

        save_figure(plot_latency(results), args.plot, force=args.force)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
        return EXIT_OK
    relative = relative_table(r for r in results if r.name.endswith(".onnx"))  # files only
    if relative:
        print("\n" + relative)
    if any(row["speedup"] for row in payload["comparison"]):
        print(
            f"\nPyTorch eager vs ONNX Runtime (median latency; speed-up = torch / ORT) on "
            f"{env['cpu']['model']}, {env['cpu']['logical_cpus']} CPUs"
        )
        print(comparison_table(results))
    return EXIT_OK
