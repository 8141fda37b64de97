"""``onnx-deploy trt build | run | bench | compare``: TensorRT engines from ONNX files.

``build`` prints the equivalent trtexec and polygraphy commands first, so they are there
even where TensorRT is not (a machine without it exits 1 with what to install); then it
checks the graph against the ONNX parser's documented rules (``check``, which needs no
TensorRT) and refuses a graph that breaks one, naming the node and the rule.
"""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_timing
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import step
from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP
from onnx_deploy.core.defaults import PRECISIONS
from onnx_deploy.core.defaults import TRT_PRECISIONS
from onnx_deploy.core.defaults import TRT_WORKSPACE
from onnx_deploy.core.defaults import VALIDATE_BATCH_SIZES

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
    from onnx_deploy.cli._common import add_repeatable

    sub = p.add_subparsers(dest="trt_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build (or reuse) an engine from an ONNX file")
    b.add_argument("model", help=".onnx file (FP32, an FP16 graph, or a QDQ INT8 graph)")
    b.add_argument("-o", "--output", help="engine path (default: MODEL.plan)")
    add_repeatable(
        b, "--shapes", "shapes", "parse_dim", "DIM=MIN:OPT:MAX",
        "profile range of a dynamic dim, repeatable (batch=1:8:64, seq=1:128:512); "
        "every dynamic dim needs one except a batch on axis 0 (default 1:8:64)",
    )  # fmt: skip
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
    b.add_argument(
        "--nms-plugin", action="store_true",
        help="a detector with NMS in its graph (edit postprocess --nms): build its NMS as "
        "TensorRT's EfficientNMS plugin (default: the parser's INMSLayer)",
    )  # fmt: skip
    b.add_argument(
        "--skip-static-check", action="store_true",
        help="do not refuse a graph that breaks the ONNX parser's documented rules (for a "
        "TensorRT newer than them that takes it)",
    )  # fmt: skip
    add_force(b, "an engine without metadata, or rebuild a cached one")
    k = sub.add_parser(
        "check", help="check an ONNX file against TensorRT's ONNX parser's documented rules "
        "(no TensorRT or GPU needed)",
    )  # fmt: skip
    k.add_argument("model", help=".onnx file")
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
    actions = {"build": _build, "check": _check, "run": _run, "bench": _bench}
    return {**actions, "compare": _compare}[args.trt_command](args)


def _check(args: argparse.Namespace) -> int:
    from onnx_deploy.convert.tensorrt_rules import check_tensorrt

    report = check_tensorrt(args.model)
    emit(args, report)
    return EXIT_OK if report.ok else fail("the graph breaks TensorRT's documented ONNX rules")


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from onnx_deploy.convert.tensorrt import build_engine

    result = build_engine(
        args.model, args.output or str(Path(args.model).with_suffix(".plan")), dims=args.shapes,
        precision=args.precision, workspace=args.workspace, timing_cache=args.timing_cache,
        force=args.force, log=step(args), explain=True, nms_plugin=args.nms_plugin,
        static_check=not args.skip_static_check,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.engine import run_engine

    emit(args, run_engine(args.plan, args.data, args.batch_size))
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.engine import bench_engine

    report = bench_engine(
        args.plan, reference=args.reference, batch_sizes=args.batch_sizes, data=args.data,
        warmup=args.warmup, iters=args.iters,
    )  # fmt: skip
    emit(args, report)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.engine import compare_engine

    report = compare_engine(
        args.plan, args.reference, data=args.data, precision=args.precision,
        batch_sizes=args.batch_sizes,
    )  # fmt: skip
    emit(args, report)
    return EXIT_OK if report.ok else fail("the engine's outputs differ beyond the tolerance")
