"""``onnx-deploy``: doctor, export, slim, validate, quantize, bench, inspect, pipeline.

Only the standard library is imported at start-up, so ``onnx-deploy --help`` stays fast;
each command imports what it needs when it runs. Exit codes: 0 success, 1 failure (with
a one-line reason on stderr), 2 bad command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _batch_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    try:
        lo_i, hi_i = (int(lo), int(hi)) if sep else (1, int(lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX such as 1:64, got {text!r}") from None
    if not 1 <= lo_i <= hi_i:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, got {text!r}")
    return lo_i, hi_i


def _emit(args: argparse.Namespace, result: Any, text: str | None = None) -> None:
    if getattr(args, "json", False):
        print(
            json.dumps(
                result.to_dict() if hasattr(result, "to_dict") else result, indent=2, default=str
            )
        )
    else:
        print(text if text is not None else result.summary())


def _model_and_shape(
    spec: str, weights: str | None, input_shape: tuple[int, ...] | None, pretrained: bool = False
) -> tuple[Any, tuple[int, ...]]:
    from onnx_deploy.errors import ModelSpecError
    from onnx_deploy.zoo import DEFAULT_IMAGE_SHAPE, load_model, recalibrate_batchnorm

    if input_shape is None:
        if not spec.startswith("torchvision:"):
            raise ModelSpecError(
                f"--input-shape is required for {spec} (e.g. --input-shape 3,224,224)"
            )
        input_shape = DEFAULT_IMAGE_SHAPE
    model = load_model(spec, weights=weights, pretrained=pretrained)
    if weights is None and not pretrained and spec.startswith("torchvision:"):
        # random weights: re-estimate batch-norm statistics for realistic activations
        recalibrate_batchnorm(model, input_shape)
    return model, input_shape


def _is_onnx_path(text: str) -> bool:
    return text.endswith(".onnx") or Path(text).is_file()


# --- commands ---------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from onnx_deploy.doctor import run_doctor

    report = run_doctor(probe_torch=not args.no_torch)
    _emit(args, report)
    return EXIT_OK if report.ok else EXIT_FAIL


def cmd_inspect(args: argparse.Namespace) -> int:
    from onnx_deploy.modelinfo import describe

    _emit(args, describe(args.model))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from onnx_deploy._files import check_output_path
    from onnx_deploy.export import export_model
    from onnx_deploy.validate import compare_torch_onnx

    output = args.output or f"{Path(args.model.rsplit(':', 1)[-1]).stem}.onnx"
    check_output_path(output, force=args.force)  # fail before the slow part
    t0 = time.perf_counter()
    model, shape = _model_and_shape(args.model, args.weights, args.input_shape, args.pretrained)
    if not args.json:
        print(f"load      {args.model}  {time.perf_counter() - t0:.1f} s")
        if args.weights is None and not args.pretrained and args.model.startswith("torchvision:"):
            print(
                "  note    random weights (no --weights/--pretrained); batch-norm statistics re-estimated"
            )
    lo, hi = args.batch
    example = torch.randn((max(lo, 2) if not args.static else lo, *shape))
    result = export_model(
        model,
        example,
        output,
        exporter=args.exporter,
        opset=args.opset,
        dynamic_batch=not args.static,
        max_batch=hi,
        force=args.force,
    )
    payload: dict[str, Any] = {"export": result.to_dict()}
    if not args.json:
        print(result.summary())
    if not args.no_validate:
        sizes = (lo,) if args.static else tuple(sorted({lo, min(max(lo, 2), hi), min(8, hi)}))
        report = compare_torch_onnx(model, output, batch_sizes=sizes)
        payload["validation"] = report.to_dict()
        if not args.json:
            print(report.summary())
        if not report.ok:
            _emit(args, payload, text="")
            print(
                "onnx-deploy: error: the exported model does not match PyTorch (see above)",
                file=sys.stderr,
            )
            return EXIT_FAIL
    if args.json:
        _emit(args, payload)
    return EXIT_OK


def cmd_slim(args: argparse.Namespace) -> int:
    from onnx_deploy.slim import slim_model

    src = Path(args.model)
    output = args.output or src.with_name(src.stem + ".slim.onnx")
    _emit(args, slim_model(src, output, force=args.force, check_numerics=not args.no_check))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from onnx_deploy.validate import compare_onnx, compare_torch_onnx

    if _is_onnx_path(args.reference):
        report = compare_onnx(
            args.reference, args.model, batch_sizes=args.batch_sizes, precision=args.precision
        )
    else:
        from onnx_deploy.zoo import load_model

        module = load_model(args.reference, weights=args.weights)
        report = compare_torch_onnx(
            module, args.model, batch_sizes=args.batch_sizes, precision=args.precision
        )
    _emit(args, report)
    if not report.ok:
        print(
            "onnx-deploy: error: outputs differ beyond the tolerance (see above)", file=sys.stderr
        )
        return EXIT_FAIL
    return EXIT_OK


def _load_array(path: str) -> Any:
    import numpy as np

    if path.endswith(".npz"):
        with np.load(path) as npz:
            return (
                next(iter(npz.values())) if len(npz.files) == 1 else {k: npz[k] for k in npz.files}
            )
    return np.load(path)


def _auto(value: str) -> str | None:
    return None if value == "auto" else value


def cmd_quantize(args: argparse.Namespace) -> int:
    from onnx_deploy.quantize import (
        QuantizeError,
        convert_fp16,
        quantize_dynamic_model,
        quantize_static_model,
    )

    src = Path(args.model)
    suffix = {"static": ".int8.onnx", "dynamic": ".dynint8.onnx", "fp16": ".fp16.onnx"}[args.method]
    output = args.output or src.with_name(src.stem + suffix)
    validation = None
    if args.validation_data:
        import numpy as np

        data = _load_array(args.validation_data)
        validation = (
            [data] if isinstance(data, dict) else np.array_split(data, max(1, len(data) // 64))
        )
    labels = _load_array(args.labels) if args.labels else None
    common = {"validation_inputs": validation, "labels": labels, "force": args.force}
    if args.method == "static":
        if not args.calibration:
            raise QuantizeError(
                "static quantization needs --calibration (a .npy/.npz file or an image folder)"
            )
        result = quantize_static_model(
            src, output, args.calibration, activation_type=_auto(args.activation_type),
            weight_type=_auto(args.weight_type), reduce_range=args.reduce_range,
            target_isa=_auto(args.target_isa), per_channel=not args.per_tensor,
            quant_format=args.format, calibration_method=args.calibration_method,
            calibration_size=args.calibration_size,
            nodes_to_exclude=[n for n in (args.exclude or "").split(",") if n], **common,
        )  # fmt: skip
    elif args.method == "dynamic":
        op_types = None if args.op_types == "all" else tuple(args.op_types.split(","))
        result = quantize_dynamic_model(
            src, output, op_types=op_types, weight_type=_auto(args.weight_type),
            reduce_range=args.reduce_range, target_isa=_auto(args.target_isa), **common,
        )  # fmt: skip
    else:
        result = convert_fp16(src, output, **common)
    _emit(args, result)
    if result.validation is not None and not result.validation.ok:
        print(
            "onnx-deploy: error: the quantized model fails its tolerance against the FP32 model "
            "(see above); it was written for inspection",
            file=sys.stderr,
        )
        return EXIT_FAIL
    return EXIT_OK


def cmd_skills(args: argparse.Namespace) -> int:
    from onnx_deploy.skills import install_skills, skill_files

    if args.action == "list":
        _emit(args, {"files": list(skill_files())}, text="\n".join(skill_files()))
        return EXIT_OK
    if not args.target:
        print("onnx-deploy: error: skills install needs --target DIR", file=sys.stderr)
        return EXIT_USAGE
    _emit(args, install_skills(args.target, dry_run=args.dry_run))
    return EXIT_OK


def _bench_targets(args: argparse.Namespace, workdir: Path) -> list[Any]:
    """Benchmark each target: an .onnx file on ORT, or a spec on torch and ORT."""
    from onnx_deploy.bench import benchmark_onnx, benchmark_torch

    results = []
    for target in args.models:
        if _is_onnx_path(target):
            for b in args.batch_sizes:
                r = benchmark_onnx(
                    target, b, args.warmup, args.iters, device=args.device, threads=args.threads
                )
                results.append(r)
                if not args.json:
                    print(r.summary(), flush=True)
            continue
        import torch

        from onnx_deploy.export import export_model

        model, shape = _model_and_shape(target, args.weights, args.input_shape)
        name = target.rsplit(":", 1)[-1]
        onnx_path = workdir / f"{name}.onnx"
        exported = export_model(model, torch.randn((2, *shape)), onnx_path, force=True)
        if not args.json:
            print(exported.summary().splitlines()[0], flush=True)
        device = "cuda" if args.device == "cuda" else ("cpu" if args.device == "cpu" else "auto")
        for b in args.batch_sizes:
            for r in (
                benchmark_torch(model, shape, b, args.warmup, args.iters, name=name, device=device),
                benchmark_onnx(
                    onnx_path,
                    b,
                    args.warmup,
                    args.iters,
                    name=name,
                    device=args.device,
                    threads=args.threads,
                ),
            ):
                results.append(r)
                if not args.json:
                    print(r.summary(), flush=True)
    return results


def cmd_bench(args: argparse.Namespace) -> int:
    from onnx_deploy.bench import collect_environment, comparison_rows, comparison_table

    with tempfile.TemporaryDirectory(prefix="onnx-deploy-bench-") as tmp:
        results = _bench_targets(args, Path(tmp))
    payload = {
        "results": [r.to_dict() for r in results],
        "comparison": comparison_rows(results),
        "environment": collect_environment(),
    }
    if args.output:
        from onnx_deploy._files import atomic_output

        with atomic_output(args.output, force=args.force) as tmp_out:
            tmp_out.write_text(json.dumps(payload, indent=2, default=str))
    if args.plot:
        from onnx_deploy.report import plot_latency, save_figure

        save_figure(plot_latency(results), args.plot, force=args.force)
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
        return EXIT_OK
    onnx_results = [r for r in results if r.backend == "onnxruntime" and r.name.endswith(".onnx")]
    if len({r.name for r in onnx_results}) > 1:
        first = onnx_results[0].name
        print(f"\nRelative to {first} (median latency ratio, >1 = faster):")
        for b in args.batch_sizes:
            at_b = {r.name: r for r in onnx_results if r.batch_size == b}
            for name, r in at_b.items():
                if name != first and first in at_b:
                    print(f"  batch {b:<4} {name:<40} {at_b[first].median_ms / r.median_ms:.2f}x")
    if any(row["speedup"] for row in payload["comparison"]):
        env = payload["environment"]
        print(
            f"\nPyTorch eager vs ONNX Runtime (median latency; speed-up = torch / ORT) on "
            f"{env['cpu']['model']}, {env['cpu']['logical_cpus']} CPUs"
        )
        print(comparison_table(results))
    return EXIT_OK


def cmd_pipeline(args: argparse.Namespace) -> int:
    """export -> slim -> validate -> bench for one model spec, one line per step."""
    import torch

    from onnx_deploy.bench import benchmark_onnx, benchmark_torch, comparison_table
    from onnx_deploy.export import export_model
    from onnx_deploy.slim import slim_model
    from onnx_deploy.validate import compare_torch_onnx

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = args.model.rsplit(":", 1)[-1].removesuffix(".py")
    model, shape = _model_and_shape(args.model, args.weights, args.input_shape)
    exported = export_model(model, torch.randn((2, *shape)), out / f"{name}.onnx", force=args.force)
    print(exported.summary().splitlines()[0], flush=True)
    slimmed = slim_model(exported.path, out / f"{name}.slim.onnx", force=args.force)
    print(slimmed.summary().splitlines()[0], flush=True)
    report = compare_torch_onnx(model, slimmed.output_path, batch_sizes=(1, 2, 8))
    print(report.summary(), flush=True)
    results = []
    for b in args.batch_sizes:
        results.append(benchmark_torch(model, shape, b, args.warmup, args.iters, name=name))
        results.append(benchmark_onnx(slimmed.output_path, b, args.warmup, args.iters, name=name))
        print(results[-2].summary(), flush=True)
        print(results[-1].summary(), flush=True)
    summary = {
        "model": args.model,
        "export": exported.to_dict(),
        "slim": slimmed.to_dict(),
        "validation": report.to_dict(),
        "bench": [r.to_dict() for r in results],
    }
    from onnx_deploy._files import atomic_output

    with atomic_output(out / "summary.json", force=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nSummary ({args.model}; written to {out / 'summary.json'})")
    print(
        f"  export    {exported.seconds:.1f} s, {exported.num_nodes} nodes, opset {exported.opset}, "
        f"dims {exported.inputs[0]}"
    )
    print(f"  slim      {slimmed.nodes_before} -> {slimmed.nodes_after} nodes")
    print(f"  validate  {'PASS' if report.ok else 'FAIL'}, max abs error {report.max_abs:.2e}")
    print("  bench\n" + "\n".join("    " + ln for ln in comparison_table(results).splitlines()))
    return EXIT_OK if report.ok else EXIT_FAIL


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from onnx_deploy.cpu import ISAS  # standard library only

    p = argparse.ArgumentParser(
        prog="onnx-deploy",
        description="Take a PyTorch model to a validated ONNX deployment.",
        epilog="Start with `onnx-deploy doctor`. Model specs: torchvision:resnet18 or path/to/file.py:factory.",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str, fn: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    d = add(
        "doctor",
        cmd_doctor,
        "show versions, working providers, GPU, TensorRT and CPU INT8 features",
    )
    d.add_argument("--no-torch", action="store_true", help="skip importing torch (faster)")

    i = add(
        "inspect",
        cmd_inspect,
        "print an ONNX model's inputs, outputs, opset, IR version, ops and size",
    )
    i.add_argument("model", help="path to a .onnx file")

    e = add(
        "export", cmd_export, "export a PyTorch model to ONNX (dynamo exporter) and validate it"
    )
    e.add_argument("model", help="model spec: torchvision:NAME or path/to/file.py:factory")
    e.add_argument("-o", "--output", help="output .onnx path (default: NAME.onnx)")
    e.add_argument(
        "--weights", help="state-dict checkpoint, loaded with torch.load(weights_only=True)"
    )
    e.add_argument(
        "--pretrained", action="store_true", help="torchvision's published weights (downloads)"
    )
    e.add_argument(
        "--input-shape", type=_ints, help="one sample's shape without batch, e.g. 3,224,224"
    )
    e.add_argument(
        "--batch",
        type=_batch_range,
        default=(1, 1024),
        help="dynamic batch range MIN:MAX (default 1:1024)",
    )
    e.add_argument(
        "--static", action="store_true", help="fixed batch of MIN instead of a dynamic batch"
    )
    e.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo")
    e.add_argument("--opset", type=int, default=20)
    e.add_argument(
        "--no-validate", action="store_true", help="skip the PyTorch vs ONNX Runtime check"
    )
    e.add_argument("--force", action="store_true", help="overwrite an existing output")

    s = add("slim", cmd_slim, "slim an ONNX model with onnxslim and check its numerics")
    s.add_argument("model", help="input .onnx")
    s.add_argument("-o", "--output", help="output path (default: INPUT.slim.onnx)")
    s.add_argument("--no-check", action="store_true", help="skip the before/after numerics check")
    s.add_argument("--force", action="store_true", help="overwrite an existing output")

    v = add(
        "validate", cmd_validate, "compare an ONNX model with a PyTorch model or another ONNX model"
    )
    v.add_argument("model", help="candidate .onnx")
    v.add_argument("--reference", required=True, help="a model spec (PyTorch) or a reference .onnx")
    v.add_argument("--weights", help="checkpoint for a PyTorch reference")
    v.add_argument(
        "--precision", choices=("fp32", "fp16", "int8"), default="fp32", help="tolerance preset"
    )
    v.add_argument("--batch-sizes", type=_ints, default=(1, 2, 8))

    b = add(
        "bench",
        cmd_bench,
        "benchmark .onnx files on ONNX Runtime, or model specs on PyTorch vs ONNX Runtime",
    )
    b.add_argument(
        "models", nargs="+", help=".onnx paths or model specs (specs are exported to a temp dir)"
    )
    b.add_argument("--batch-sizes", type=_ints, default=(1, 8))
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--iters", type=int, default=50)
    b.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads (default: physical cores)"
    )
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    b.add_argument("--input-shape", type=_ints, help="sample shape for non-torchvision specs")
    b.add_argument("--weights", help="checkpoint for spec targets")
    b.add_argument("--output", help="write all results as JSON here")
    b.add_argument("--plot", help="write a latency/throughput plot (PNG) here")
    b.add_argument("--force", action="store_true", help="overwrite --output/--plot files")

    q = add(
        "quantize",
        cmd_quantize,
        "quantize an ONNX model (static INT8 QDQ, dynamic INT8, FP16) and validate it",
    )
    q.add_argument("model", help="FP32 .onnx")
    q.add_argument(
        "-o", "--output", help="output path (default: NAME.int8.onnx / .dynint8.onnx / .fp16.onnx)"
    )
    q.add_argument("--method", choices=("static", "dynamic", "fp16"), default="static")
    q.add_argument("--calibration", help="static: .npy/.npz of inputs, or a folder of images")
    q.add_argument(
        "--calibration-size",
        type=int,
        default=200,
        help="samples used for calibration (default 200)",
    )
    q.add_argument(
        "--calibration-method", choices=("minmax", "entropy", "percentile"), default="minmax"
    )
    q.add_argument(
        "--activation-type",
        choices=("auto", "uint8", "int8"),
        default="auto",
        help="auto: from the target CPU (uint8 on x86, int8 on ARM; see `onnx-deploy doctor`)",
    )
    q.add_argument(
        "--weight-type",
        choices=("auto", "int8", "uint8"),
        default="auto",
        help="auto: int8 (uint8 weights also avoid saturation on x86 without VNNI, slower)",
    )
    q.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights; default: on for x86 without VNNI, where int8 weights saturate",
    )
    q.add_argument(
        "--target-isa",
        choices=("auto", *ISAS),
        default="auto",
        help="the CPU the model will run on (default: this one); x86-no-vnni makes a file "
        "that is safe on every x86 CPU",
    )
    q.add_argument(
        "--per-tensor", action="store_true", help="per-tensor instead of per-channel weights"
    )
    q.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    q.add_argument("--exclude", help="comma-separated node names to keep in float")
    q.add_argument(
        "--op-types", default="MatMul,Gemm", help="dynamic: op types to quantize, or 'all'"
    )
    q.add_argument(
        "--validation-data", help=".npy/.npz inputs to validate on (default: calibration data)"
    )
    q.add_argument(
        "--labels", help=".npy labels for --validation-data: adds accuracy and agreement"
    )
    q.add_argument("--force", action="store_true", help="overwrite an existing output")

    sk = add(
        "skills", cmd_skills, "list or install the agent skills (never overwrites existing files)"
    )
    sk.add_argument("action", choices=("install", "list"))
    sk.add_argument("--target", help="an agent's skills folder, e.g. ~/.claude/skills")
    sk.add_argument("--dry-run", action="store_true", help="show what would be written")

    pl = add(
        "pipeline", cmd_pipeline, "export, slim, validate and benchmark one model, with a summary"
    )
    pl.add_argument("model", nargs="?", default="torchvision:resnet18")
    pl.add_argument("--out-dir", default="artifacts/pipeline")
    pl.add_argument("--weights")
    pl.add_argument("--input-shape", type=_ints)
    pl.add_argument("--batch-sizes", type=_ints, default=(1, 8))
    pl.add_argument("--warmup", type=int, default=5)
    pl.add_argument("--iters", type=int, default=30)
    pl.add_argument("--force", action="store_true", help="overwrite existing files in --out-dir")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from onnx_deploy import __version__

        print(__version__)
        return EXIT_OK
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from onnx_deploy.errors import OnnxDeployError

    try:
        return int(args.func(args))
    except OnnxDeployError as e:
        lines = str(e).splitlines()
        if len(lines) > 1:
            print("\n".join(lines[1:]), file=sys.stderr)
        print(f"onnx-deploy: error: {lines[0] if lines else type(e).__name__}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("onnx-deploy: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("ONNX_DEPLOY_DEBUG"):
            raise
        first = (str(e).splitlines() or [""])[0][:300]
        print(
            f"onnx-deploy: error: unexpected {type(e).__name__}: {first} "
            "(set ONNX_DEPLOY_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
