"""Orchestration shared by the CLI, the notebooks and the skills.

- ``benchmark_targets``: ONNX files on ONNX Runtime, and model specs
  (``torchvision:resnet18``, ``file.py:factory``) exported and timed on PyTorch eager
  and ONNX Runtime side by side;
- ``run_pipeline``: export -> slim -> validate -> benchmark one model spec, with a
  ``summary.json``.

Both report each step through ``log`` (one line per step, as the CLI prints them) and
return frozen results; nothing here parses arguments or prints on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnx_deploy._files import atomic_output, check_output_path
from onnx_deploy.bench import BenchmarkResult, benchmark, comparison_table
from onnx_deploy.defaults import (
    BENCH_BATCH_SIZES,
    BENCH_ITERS,
    BENCH_WARMUP,
    PIPELINE_ITERS,
    PIPELINE_WARMUP,
    VALIDATE_BATCH_SIZES,
)
from onnx_deploy.extras import require
from onnx_deploy.zoo import is_spec, load_model_and_shape, spec_name

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def is_onnx_path(text: str) -> bool:
    return text.endswith(".onnx") or (Path(text).is_file() and not is_spec(text))


def benchmark_targets(
    targets: Sequence[str],
    workdir: str | os.PathLike[str],
    *,
    batch_sizes: Sequence[int] = BENCH_BATCH_SIZES,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
    device: str = "auto",
    threads: int | None = None,
    weights: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    log: Log = _quiet,
) -> list[BenchmarkResult]:
    """Benchmark each target at each batch size: an ``.onnx`` file on ONNX Runtime; a
    model spec exported into ``workdir`` and timed on PyTorch eager and ONNX Runtime."""
    from onnx_deploy.runners.onnxrt import OnnxRuntimeRunner

    results: list[BenchmarkResult] = []
    for target in targets:
        if is_onnx_path(target):
            runners = [OnnxRuntimeRunner(target, device, threads=threads)]
        else:
            runners = _spec_runners(
                target, Path(workdir), device, threads, weights, input_shape, log
            )
        with contextlib.ExitStack() as open_runners:  # activate once: a CUDA TorchRunner copies
            for runner in runners:
                open_runners.enter_context(runner)
            for b in batch_sizes:
                for runner in runners:  # one name per target: results pair by (name, batch)
                    (result,) = benchmark(runner, b, warmup=warmup, iters=iters)
                    results.append(result)
                    log(result.summary())
    return results


def _spec_runners(
    spec: str,
    workdir: Path,
    device: str,
    threads: int | None,
    weights: str | None,
    input_shape: tuple[int, ...] | None,
    log: Log,
) -> list[Any]:
    """PyTorch and ONNX Runtime runners for a model spec (exported into ``workdir``)."""
    torch = require("torch", f"benchmarking {spec}")

    from onnx_deploy.export import export_model
    from onnx_deploy.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.runners.pytorch import TorchRunner

    model, shape, note = load_model_and_shape(spec, weights, input_shape)
    if note:
        log(f"  note    {note}")
    name = spec_name(spec)
    exported = export_model(model, torch.randn((2, *shape)), workdir / f"{name}.onnx", force=True)
    log(exported.summary().splitlines()[0])
    ort_runner = OnnxRuntimeRunner(exported.path, device, threads=threads, name=name)
    torch_runner = TorchRunner(
        model, ort_runner.inputs, ort_runner.output_names, device=device, name=name
    )
    return [torch_runner, ort_runner]


@dataclass(frozen=True)
class PipelineResult:
    """Export, slim, validation and benchmark results for one model spec."""

    model: str
    export: Any  # ExportResult
    slim: Any  # SlimResult
    validation: Any  # ValidationReport
    bench: tuple[BenchmarkResult, ...]
    summary_path: str
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return bool(self.validation.ok)

    def summary(self) -> str:
        e, s, v = self.export, self.slim, self.validation
        lines = [
            f"Summary ({self.model}; written to {self.summary_path})",
            f"  export    {e.seconds:.1f} s, {e.num_nodes} nodes, opset {e.opset}, dims {e.inputs[0]}",
            f"  slim      {s.nodes_before} -> {s.nodes_after} nodes",
            f"  validate  {'PASS' if v.ok else 'FAIL'}, max abs error {v.max_abs:.2e}",
            "  bench",
            *("    " + ln for ln in comparison_table(self.bench).splitlines()),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "export": self.export.to_dict(),
            "slim": self.slim.to_dict(),
            "validation": self.validation.to_dict(),
            "bench": [r.to_dict() for r in self.bench],
            "notes": list(self.notes),
        }


def run_pipeline(
    spec: str,
    out_dir: str | os.PathLike[str],
    *,
    weights: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    batch_sizes: Sequence[int] = BENCH_BATCH_SIZES,
    warmup: int = PIPELINE_WARMUP,
    iters: int = PIPELINE_ITERS,
    force: bool = False,
    log: Log = _quiet,
) -> PipelineResult:
    """Export, slim, validate against PyTorch, and benchmark PyTorch vs ONNX Runtime.

    Writes ``NAME.onnx``, ``NAME.slim.onnx`` and ``summary.json`` into ``out_dir``;
    existing files are refused before any work starts unless ``force``.
    """
    torch = require("torch", "the pipeline (it exports a PyTorch model)")

    from onnx_deploy.export import export_model
    from onnx_deploy.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.runners.pytorch import TorchRunner
    from onnx_deploy.slim import slim_model
    from onnx_deploy.validate import compare

    out = Path(out_dir)
    name = spec_name(spec)
    paths = [out / f"{name}.onnx", out / f"{name}.slim.onnx", out / "summary.json"]
    for p in paths:
        check_output_path(p, force=force)  # fail before the slow part
    model, shape, note = load_model_and_shape(spec, weights, input_shape)
    exported = export_model(model, torch.randn((2, *shape)), paths[0], force=force)
    log(exported.summary().splitlines()[0])
    slimmed = slim_model(exported.path, paths[1], force=force)
    log(slimmed.summary().splitlines()[0])
    ort_runner = OnnxRuntimeRunner(slimmed.output_path, "cpu", name=name)
    torch_runner = TorchRunner(model, ort_runner.inputs, ort_runner.output_names, name=name)
    results: list[BenchmarkResult] = []
    with torch_runner, ort_runner:  # activated once for the comparison and every batch
        report = compare(torch_runner, ort_runner, batch_sizes=VALIDATE_BATCH_SIZES)
        log(report.summary())
        for b in batch_sizes:
            for runner in (torch_runner, ort_runner):
                (result,) = benchmark(runner, b, warmup=warmup, iters=iters)
                results.append(result)
                log(result.summary())
    result = PipelineResult(
        spec, exported, slimmed, report, tuple(results), str(paths[2]), (note,) if note else ()
    )
    with atomic_output(paths[2], force=force) as tmp:
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return result


@dataclass(frozen=True)
class SpecExport:
    """A model spec exported to ONNX, and (unless skipped) validated against PyTorch."""

    export: Any  # ExportResult
    validation: Any | None  # ValidationReport
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.validation is None or bool(self.validation.ok)

    def summary(self) -> str:
        lines = [f"  note    {n}" for n in self.notes] + [self.export.summary()]
        if self.validation is not None:
            lines.append(self.validation.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"export": self.export.to_dict(), "notes": list(self.notes)}
        if self.validation is not None:
            d["validation"] = self.validation.to_dict()
        return d


def export_spec(
    spec: str,
    output: str | os.PathLike[str],
    *,
    weights: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    pretrained: bool = False,
    batch: tuple[int, int] | None = None,
    static: bool = False,
    exporter: str = "dynamo",
    opset: int | None = None,
    validate: bool = True,
    force: bool = False,
    log: Log = _quiet,
) -> SpecExport:
    """Load a model spec, export it (dynamic batch ``batch = (min, max)`` unless
    ``static``), and compare it with PyTorch at batch sizes inside that range."""
    torch = require("torch", "exporting a PyTorch model")

    from onnx_deploy.defaults import DEFAULT_MAX_BATCH, DEFAULT_OPSET
    from onnx_deploy.export import export_model
    from onnx_deploy.validate import compare_torch_onnx

    check_output_path(output, force=force)  # fail before the slow part
    lo, hi = batch or (1, DEFAULT_MAX_BATCH)
    model, shape, note = load_model_and_shape(spec, weights, input_shape, pretrained)
    log(f"load      {spec}")
    if note:
        log(f"  note    {note}")
    example = torch.randn((lo if static else max(lo, 2), *shape))
    result = export_model(
        model, example, output, exporter=exporter,  # type: ignore[arg-type]
        opset=opset or DEFAULT_OPSET, dynamic_batch=not static, max_batch=hi, force=force,
    )  # fmt: skip
    log(result.summary())
    report = None
    if validate:
        sizes = (lo,) if static else tuple(sorted({lo, min(max(lo, 2), hi), min(8, hi)}))
        report = compare_torch_onnx(model, output, batch_sizes=sizes)
        log(report.summary())
    return SpecExport(result, report, (note,) if note else ())
