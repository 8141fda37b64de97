"""``onnx-deploy trt build | run | bench | compare``: TensorRT engines from ONNX files.

``build`` prints the equivalent trtexec and polygraphy commands first, so they are there
even where TensorRT is not (a machine without it exits 1 with what to install).
"""

from __future__ import annotations

import argparse
from typing import Any

from onnx_deploy.cli._common import (
    EXIT_OK,
    add_force,
    add_timing,
    emit,
    fail,
    ints,
    step,
)
from onnx_deploy.core.defaults import (
    BENCH_ITERS,
    BENCH_WARMUP,
    PRECISIONS,
    TRT_PRECISIONS,
    TRT_WORKSPACE,
    VALIDATE_BATCH_SIZES,
)

HELP = "TensorRT engines: build (with profiles and caches), run, bench and compare"


def _size(text: str) -> int:
    """``4G``, ``512M`` or bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if text[-1:].upper() in units:
            return int(float(text[:-1]) * units[text[-1].upper()])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 4G or 512M, got {text!r}"
        ) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    from onnx_deploy.cli._common import _signature_part

    sub = p.add_subparsers(dest="trt_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build (or reuse) an engine from an ONNX file")
    b.add_argument("model", help=".onnx file (FP32, an FP16 graph, or a QDQ INT8 graph)")
    b.add_argument("-o", "--output", help="engine path (default: MODEL.plan)")
    b.add_argument(
        "--shapes",
        action="append",
        type=_signature_part("parse_dim"),
        default=[],
        metavar="DIM=MIN:OPT:MAX",
        help="profile range of a dynamic dim, repeatable (batch=1:8:64, seq=1:128:512); "
        "every dynamic dim needs one except a batch on axis 0 (default 1:8:64)",
    )
    b.add_argument(
        "--precision",
        choices=TRT_PRECISIONS,
        default="auto",
        help="auto: what the graph holds (TensorRT 11's only way); fp16/int8 on an FP32 "
        "graph use 10.x's builder flags and are refused on 11",
    )
    b.add_argument(
        "--workspace",
        type=_size,
        default=TRT_WORKSPACE,
        help=f"builder workspace, e.g. 4G (default {TRT_WORKSPACE >> 30}G)",
    )
    b.add_argument("--timing-cache", help="timing cache file, read before and written after")
    add_force(b, "an engine without metadata, or rebuild a cached one")
    for name, text in (("run", "run an engine on inputs"), ("bench", "time an engine")):
        r = sub.add_parser(name, help=text)
        r.add_argument("plan", help="engine built by `onnx-deploy trt build`")
        r.add_argument("--inputs", dest="data", help=".npz/.npy/.pt inputs (default random)")
        if name == "bench":
            add_timing(r, BENCH_WARMUP, BENCH_ITERS)
            r.add_argument("--reference", help="an .onnx file to time beside it (CUDA)")
        else:
            r.add_argument("--batch-size", type=int, default=1)
    c = sub.add_parser("compare", help="compare an engine with ONNX Runtime on the ONNX file")
    c.add_argument("plan")
    c.add_argument("reference", help="the .onnx file it was built from (or its FP32 parent)")
    c.add_argument("--precision", choices=PRECISIONS, default="fp32", help="tolerance preset")
    c.add_argument("--batch-sizes", type=ints, default=VALIDATE_BATCH_SIZES)
    c.add_argument("--inputs", dest="data", help="real samples instead of random ones")
    for sp in sub.choices.values():  # after the action, as every other command takes it
        sp.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    return {"build": _build, "run": _run, "bench": _bench, "compare": _compare}[args.trt_command](
        args
    )


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from onnx_deploy.build.tensorrt import (
        build_engine,
        derive_profile,
        polygraphy_commands,
        trtexec_command,
    )
    from onnx_deploy.infer.modelinfo import describe

    output = args.output or str(Path(args.model).with_suffix(".plan"))
    profile, notes = derive_profile(describe(args.model).inputs, args.shapes)
    log = step(args)
    for note in notes:
        log(f"  note    {note}")
    log(
        f"the same build outside Python:\n  {trtexec_command(args.model, output, profile, args.workspace, args.timing_cache)}"
    )
    for cmd in polygraphy_commands(args.model, output, profile, args.workspace):
        log(f"  {cmd}")
    result = build_engine(
        args.model, output, dims=args.shapes, precision=args.precision,
        workspace=args.workspace, timing_cache=args.timing_cache, force=args.force, log=log,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK


def _feeds(runner: Any, data: str | None, batch_size: int) -> Any:
    """One batch for the engine: the first ``batch_size`` real samples from ``data``
    (repeated when there are fewer), else random inputs at the profile's OPT sizes."""
    if data is None:
        return runner.example_inputs(batch_size)
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.workflows.pipeline import batch_feeds

    return batch_feeds(load_data(data), None, batch_size, runner.inputs)


def _run(args: argparse.Namespace) -> int:
    import json

    from onnx_deploy.build.runners.tensorrt import TensorRTRunner

    with TensorRTRunner(args.plan) as runner:
        feeds = _feeds(runner, args.data, args.batch_size)
        outputs = runner.infer(feeds)
    summary = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in outputs.items()}
    print(json.dumps(summary, indent=2) if args.json else "\n".join(
        f"output    {k}: {v['dtype']}{v['shape']}" for k, v in summary.items()
    ))  # fmt: skip
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from onnx_deploy.build.runners.tensorrt import TensorRTRunner
    from onnx_deploy.infer.bench import benchmark, relative_table
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    runners = [TensorRTRunner(args.plan)]
    if args.reference:
        runners.append(OnnxRuntimeRunner(args.reference, "cuda"))
    results = []
    for b in args.batch_sizes:
        results += benchmark(runners, b, inputs=_feeds(runners[0], args.data, b),
                             warmup=args.warmup, iters=args.iters, rounds=5)  # fmt: skip
    for r in results:
        print(r.summary())
    if len(runners) > 1:
        print(relative_table(results))
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from onnx_deploy.build.runners.tensorrt import TensorRTRunner
    from onnx_deploy.infer.compare import compare
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    engine = TensorRTRunner(args.plan)
    reference = OnnxRuntimeRunner(args.reference, "auto", on_fallback="warn")
    inputs = None
    if args.data is not None:
        from onnx_deploy.core.feeds import load_data

        inputs = load_data(args.data)  # all the samples, in one batch
    report = compare(
        reference, engine, inputs, args.precision, batch_sizes=args.batch_sizes,
        signature=engine.signature(),  # sizes inside the engine's profile
    )  # fmt: skip
    emit(args, report)
    return EXIT_OK if report.ok else fail("the engine's outputs differ beyond the tolerance")
