"""Orchestration shared by the CLI, the notebooks and the skills.

- ``benchmark_targets``: ONNX files on ONNX Runtime, and model sources
  (``torchvision:resnet18``, ``file.py:factory``, ``hf:DIR``) exported and timed on PyTorch
  eager and ONNX Runtime side by side; ``benchmark_report``: that, written and plotted
  (``onnx-deploy bench``);
- ``export_spec``: a model source exported and validated (``onnx-deploy export``);
- ``run_pipeline``: export -> slim -> validate -> benchmark one model source, with a
  ``summary.json``.

All report each step through ``log`` (one line per step, as the CLI prints them) and
return frozen results; nothing here parses arguments or prints on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.contract import NO_CONTRACT
from onnx_deploy.core.defaults import BENCH_BATCH_SIZES
from onnx_deploy.core.defaults import BENCH_ITERS
from onnx_deploy.core.defaults import BENCH_WARMUP
from onnx_deploy.core.defaults import PIPELINE_ITERS
from onnx_deploy.core.defaults import PIPELINE_WARMUP
from onnx_deploy.core.defaults import VALIDATE_BATCH_SIZES
from onnx_deploy.core.errors import ProviderError
from onnx_deploy.core.extras import require
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import check_output_path
from onnx_deploy.core.files import write_json
from onnx_deploy.core.results import Result
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.signature import SignatureError
from onnx_deploy.infer.bench import BenchmarkReport
from onnx_deploy.infer.bench import BenchmarkResult
from onnx_deploy.infer.bench import benchmark
from onnx_deploy.infer.bench import comparison_table
from onnx_deploy.infer.bench import with_flops
from onnx_deploy.sources import LoadedModel
from onnx_deploy.sources import ModelSource

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def example_data(path: str | os.PathLike[str], declared: Sequence[InputSpec] = ()) -> Feeds:
    """Example inputs from a ``.npz`` / ``.pt`` / ``.npy`` file, by input name. A dict
    keeps its names; a single array or a tuple takes the declared ``--input`` names in
    order (an unnamed array without them is an error that says what to do)."""
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.core.feeds import to_numpy

    data = load_data(path)
    if isinstance(data, Mapping):
        return {str(k): to_numpy(v, str(k)) for k, v in data.items()}
    values = [data] if isinstance(data, np.ndarray) else list(data)
    names = [d.name for d in declared]
    if len(names) < len(values):
        raise SignatureError(
            f"{path} holds {len(values)} unnamed array(s); save a dict by input name "
            "(np.savez(path, ids=..., mask=...)) or declare the inputs with --input"
        )
    return dict(zip(names, values, strict=False))


def make_signature(
    inputs: Sequence[InputSpec] = (),
    dims: Sequence[DimRange] = (),
    *,
    example: Feeds | None = None,
    batch: tuple[int, int] | None = None,
    static: bool = False,
    spec: str = "",
) -> Signature | None:
    """The signature the CLI's ``--input``/``--dim``/``--example``/``--batch`` describe,
    or None when none of them was given (the one-float-input ``--input-shape`` case) or
    when ``spec`` is an ``hf:`` folder without ``--input``: its signature comes from the
    model (``_load_spec``), with ``dims`` as its ranges.
    ``batch`` is the range of a dim named ``batch`` that ``--dim`` did not declare."""
    if not inputs and example is None:
        if spec.startswith("hf:"):
            return None
        if dims:
            raise SignatureError("--dim needs --input (or --example) declaring the dims it names")
        return None
    dims = list(dims)
    if batch is not None and not any(d.name == "batch" for d in dims):
        uses_batch = any("batch" in i.symbols for i in inputs) or (
            example is not None and not static and not inputs
        )
        if uses_batch:
            dims.append(DimRange("batch", *batch))
    if example is not None:
        return Signature.from_examples(example, inputs, dims, dynamic_batch=not static)
    return Signature(tuple(inputs), tuple(dims))


def batch_feeds(
    data: Any, signature: Signature | None, batch_size: int, specs: Sequence[Any]
) -> Feeds | None:
    """Inputs for one benchmark batch: the first ``batch_size`` samples of real ``data``
    (repeated when it has fewer), or a signature's examples with its batch dims at
    ``batch_size``; None leaves it to the runner (random inputs at ``batch_size``)."""
    if data is not None:
        from onnx_deploy.core.feeds import as_feeds

        feeds = as_feeds(data, specs)
        return {
            k: np.resize(v, (batch_size, *v.shape[1:])) if v.ndim else v for k, v in feeds.items()
        }
    if signature is not None:
        return signature.examples({d: batch_size for d in signature.batch_dims})
    return None


def benchmark_targets(
    sources: Sequence[str | ModelSource],
    workdir: str | os.PathLike[str],
    *,
    batch_sizes: Sequence[int] = BENCH_BATCH_SIZES,
    warmup: int = BENCH_WARMUP,
    iters: int = BENCH_ITERS,
    device: str = "auto",
    threads: int | None = None,
    spinning: bool | None = None,
    rounds: int = 1,
    runtimes: Sequence[str] = ("onnxruntime",),
    peak: bool = True,
    log: Log = _quiet,
) -> list[BenchmarkResult]:
    """Benchmark each source at each batch size: an ``.onnx`` file on each of ``runtimes``
    (``onnx_deploy.runtimes``: ONNX Runtime, OpenVINO); a model spec exported into
    ``workdir`` and timed on PyTorch eager and those runtimes. Each result carries the
    FLOPs of one call and, with ``peak``, this machine's peak (``machine_peak``), so it
    prints GFLOP/s and % of peak.

    Inputs: real samples from the source's ``data`` (a ``.npz``/``.pt``/``.npy`` file; the
    first ``batch_size`` samples, repeated when there are fewer), else random ones from the
    signature that its ``inputs``/``dims`` declare (or the model's own), every dynamic dim
    other than the batch at its example size. ``rounds > 1`` interleaves consecutive
    ONNX files, and the runtimes of each, with each other, so a busy spell of a shared
    machine slows all of them alike. PyTorch runs in turn, never interleaved: each one's thread
    pool keeps spinning for a while after a run, and on few cores that slows the other.
    Measured on 2 cores (a small transformer, batch 8, four repetitions in one process):
    PyTorch's median 5.6-9.1 ms in turn vs 8.7-10.7 ms interleaved, its p90/median
    1.2-1.3 vs 1.5-1.8, ONNX Runtime unchanged: interleaving inflated the speed-up.
    ``threads`` and ``spinning``: the session settings of every runtime that has them
    (``infer.sessions.SessionSettings``; spinning off frees the cores between calls, which
    a shared machine wants); with ``rounds > 1`` each ONNX Runtime pool also stops spinning
    when its call returns (``SessionSettings.taking_turns``)."""
    from onnx_deploy.infer.sessions import SessionSettings
    from onnx_deploy.runtimes import check_runtimes
    from onnx_deploy.runtimes import runtime_runner

    check_runtimes(runtimes)
    if rounds > 1:  # sessions taking turns: each pool stops spinning when its call returns
        settings = SessionSettings.taking_turns(threads, spinning)
    elif threads is not None or spinning is not None:
        settings = SessionSettings(threads=threads, spinning=spinning)
    else:
        settings = None
    groups: list[tuple[list[Any], Signature | None, ModelSource]] = []
    srcs = [ModelSource.of(t) for t in sources]
    basenames = [Path(t.target).name for t in srcs]
    for source in srcs:
        sig = None
        if source.is_onnx:
            target = source.target
            # named by file, or by the path given where two files share a name
            label = Path(target).name if basenames.count(Path(target).name) == 1 else target
            runners = [
                runtime_runner(rt, target, device, settings=settings, name_as=label)
                for rt in _usable(runtimes, target, log)
            ]
            if source.inputs or source.dims:
                sig = runners[0].signature(source.dims, source.inputs)
            if rounds > 1 and groups and groups[-1][0][0].backend != "torch":
                groups[-1][0].extend(runners)  # ONNX files side by side: one interleaved run
                continue
        else:
            runners, sig = _spec_runners(source, Path(workdir), device, settings, log)
            runners += [
                runtime_runner(rt, runners[1].model_path, device, settings=settings,
                               name_as=runners[1].name)
                for rt in _usable(runtimes, runners[1].model_path, log) if rt != "onnxruntime"
            ]  # fmt: skip
            if "onnxruntime" not in runtimes:
                runners.pop(1)
        groups.append((runners, sig, source))
    results: list[BenchmarkResult] = []
    for runners, sig, source in groups:
        real = None
        if source.data is not None:
            from onnx_deploy.core.feeds import load_data

            real = load_data(source.data)  # an array, a tuple or a dict: matched to the inputs
        described = next((r for r in runners if r.contract is not None), runners[0])
        if sig is None and any(
            not isinstance(d, int) for s in runners[0].inputs for d in s.shape[1:]
        ):
            sig = described.signature()  # dynamic dims beyond the batch
        if real is None and source.is_onnx and described.contract is None:
            log(f"  note    {Path(source.target).name}: {NO_CONTRACT}")
        with contextlib.ExitStack() as open_runners:  # activate once: a CUDA TorchRunner copies
            for runner in runners:
                open_runners.enter_context(runner)
            for b in batch_sizes:
                feeds = batch_feeds(real, sig, b, runners[0].inputs)
                if feeds is not None:
                    shapes = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feeds.items())
                    log(f"  inputs  {'real samples' if real is not None else 'random'}: {shapes}")
                # PyTorch in turn; the ONNX runtimes interleaved with each other (rounds > 1)
                in_turn = [r for r in runners if r.backend == "torch"]
                onnx_side = [r for r in runners if r.backend != "torch"]
                if rounds <= 1 or len(onnx_side) < 2:
                    in_turn, onnx_side = runners, []
                timed = [
                    benchmark(r, b, inputs=feeds, warmup=warmup, iters=iters)[0] for r in in_turn
                ]
                if onnx_side:
                    timed += benchmark(
                        onnx_side, b, inputs=feeds, warmup=warmup, iters=iters, rounds=rounds
                    )
                counted: dict[str, Any] = {}  # FLOPs by file: a group may hold several
                for runner, result in zip([*in_turn, *onnx_side], timed, strict=True):
                    flops = _flops(runner, runners, b, feeds, counted)
                    ceiling = _peak(threads) if peak and flops is not None else None
                    result = with_flops(result, flops, ceiling)
                    results.append(result)  # one name per target: results pair by (name, batch)
                    log(result.summary())
    return results


def _usable(runtimes: Sequence[str], path: str | os.PathLike[str], log: Log) -> list[str]:
    """``runtimes`` less those that cannot run ``path`` here, each named in the log; an
    error when none can."""
    from onnx_deploy.runtimes import usable_runtimes

    kept, notes = usable_runtimes(runtimes, path)
    for note in notes:
        log(f"  note    {note}")
    if not kept:
        raise ProviderError(
            f"none of --runtimes {','.join(runtimes)} can run {path} here: {'; '.join(notes)}"
        )
    return kept


def _flops(
    runner: Any, group: Sequence[Any], batch_size: int, feeds: Feeds | None, counted: dict
) -> Any:
    """The counted FLOPs of one call of ``runner``'s ONNX file (PyTorch's: the file it was
    exported to, the group's) at these inputs (the runner's own random ones where ``feeds``
    is None), counted once per file in ``counted``; None when there is no file, or shape
    inference cannot count them."""
    from onnx_deploy.infer.flops import model_flops

    path = getattr(runner, "model_path", None) or next(
        (r.model_path for r in group if getattr(r, "model_path", None)), None
    )
    if path is None:
        return None
    if path not in counted:
        try:
            shapes = feeds if feeds is not None else runner.example_inputs(batch_size)
            counted[path] = model_flops(path, {k: v.shape for k, v in shapes.items()})
        except Exception:
            counted[path] = None  # counting is a bonus: a graph it cannot read still gets timed
    return counted[path]


def _peak(threads: int | None) -> Any:
    from onnx_deploy.infer.peak import machine_peak

    return machine_peak(threads)


def _export_spec_model(
    loaded: LoadedModel,
    example: Feeds | None,
    output: str | os.PathLike[str],
    **kwargs: Any,
) -> Any:
    """``export_model`` for a loaded source: its signature (with the example data), or a
    random float batch of 2 for the one-input ``input_shape`` case."""
    from onnx_deploy.convert.export import export_model

    if loaded.signature is not None:
        return export_model(loaded.model, example, output, signature=loaded.signature, **kwargs)
    torch = require("torch", "exporting a PyTorch model")
    return export_model(loaded.model, torch.randn((2, *loaded.sample_shape)), output, **kwargs)


def _spec_runners(
    source: ModelSource, workdir: Path, device: str, settings: Any, log: Log
) -> tuple[list[Any], Signature | None]:
    """PyTorch and ONNX Runtime runners for a model spec (exported into ``workdir``)."""
    require("torch", f"benchmarking {source.target}")

    from onnx_deploy.convert.runners.pytorch import TorchRunner
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    example = None
    if source.data is not None and not source.inputs:
        from onnx_deploy.core.feeds import load_data

        loaded = load_data(source.data)
        if isinstance(loaded, np.ndarray) and source.input_shape is None:
            # one unnamed input: its sample shape
            source = dataclasses.replace(source, input_shape=tuple(loaded.shape[1:]))
        elif not isinstance(loaded, np.ndarray):
            example = {k: v[:2] for k, v in example_data(source.data).items()}  # two samples
    sig = make_signature(source.inputs, source.dims, example=example, spec=source.target)
    model = source.load(sig)
    if model.note:
        log(f"  note    {model.note}")
    name = source.name
    exported = _export_spec_model(
        model, example, workdir / f"{name}.onnx", force=True, fallback=True,
        contract=source.contract(model),
    )  # fmt: skip
    log(exported.summary().splitlines()[0])
    ort_runner = OnnxRuntimeRunner(exported.path, device, settings=settings, name=name)
    torch_runner = TorchRunner(
        model.model, ort_runner.inputs, ort_runner.output_names, device=device, name=name
    )
    return [torch_runner, ort_runner], model.signature


def benchmark_report(
    sources: Sequence[str | ModelSource],
    *,
    output: str | os.PathLike[str] | None = None,
    plot: str | os.PathLike[str] | None = None,
    force: bool = False,
    **options: Any,
) -> BenchmarkReport:
    """``onnx-deploy bench``: ``benchmark_targets`` (its ``options``) with specs exported
    into a temporary folder, the environment recorded, the report written as JSON to
    ``output`` and a latency plot to ``plot`` (both refused before any work if they exist,
    unless ``force``)."""
    from onnx_deploy.infer.bench import collect_environment

    for path in (output, plot):
        if path:
            check_output_path(path, force=force)  # before the slow part
    with tempfile.TemporaryDirectory(prefix="onnx-deploy-bench-") as tmp:
        results = benchmark_targets(sources, tmp, **options)
    report = BenchmarkReport(tuple(results), collect_environment())
    files: dict[str, str] = {}
    if output:
        files["json"] = str(write_json(output, report.to_dict(), force=force))
    if plot:
        from onnx_deploy.present.plots import plot_latency
        from onnx_deploy.present.plots import save_figure

        files["plot"] = str(save_figure(plot_latency(results), plot, force=force))
    return dataclasses.replace(report, files=files)


@dataclass(frozen=True)
class PipelineResult(Result):
    """Export, slim, validation and benchmark results for one model spec."""

    COMPUTED = ("ok",)

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


def run_pipeline(
    source: str | ModelSource,
    out_dir: str | os.PathLike[str],
    *,
    batch_sizes: Sequence[int] = BENCH_BATCH_SIZES,
    warmup: int = PIPELINE_WARMUP,
    iters: int = PIPELINE_ITERS,
    force: bool = False,
    log: Log = _quiet,
) -> PipelineResult:
    """Export, slim, validate against PyTorch, and benchmark PyTorch vs ONNX Runtime.

    The model takes one float input of the source's ``input_shape`` (torchvision:
    3x224x224), or the inputs and dynamic dims that its ``inputs``/``dims`` declare. Writes
    ``NAME.onnx``, ``NAME.slim.onnx`` and ``summary.json`` into ``out_dir``; existing files
    are refused before any work starts unless ``force``.
    """
    require("torch", "the pipeline (it exports a PyTorch model)")

    from onnx_deploy.convert.runners.pytorch import TorchRunner
    from onnx_deploy.convert.slim import slim_model
    from onnx_deploy.infer.compare import compare
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    source = ModelSource.of(source)
    out = Path(out_dir)
    name = source.name
    paths = [out / f"{name}.onnx", out / f"{name}.slim.onnx", out / "summary.json"]
    for p in paths:
        check_output_path(p, force=force)  # fail before the slow part
    loaded = source.load(make_signature(source.inputs, source.dims, spec=source.target))
    model, note, sig = loaded.model, loaded.note, loaded.signature
    exported = _export_spec_model(
        loaded, None, paths[0], force=force, contract=source.contract(loaded)
    )
    log(exported.summary().splitlines()[0])
    slimmed = slim_model(exported.path, paths[1], force=force)
    log(slimmed.summary().splitlines()[0])
    ort_runner = OnnxRuntimeRunner(slimmed.output_path, "cpu", name=name)
    torch_runner = TorchRunner(model, ort_runner.inputs, ort_runner.output_names, name=name)
    check_sig = Signature.from_specs(ort_runner.inputs, sig.dims if sig else (), source.inputs)
    results: list[BenchmarkResult] = []
    with torch_runner, ort_runner:  # activated once for the comparison and every batch
        report = compare(
            torch_runner, ort_runner, batch_sizes=VALIDATE_BATCH_SIZES, signature=check_sig
        )
        log(report.summary())
        for b in batch_sizes:
            feeds = batch_feeds(None, check_sig, b, ort_runner.inputs)
            for runner in (torch_runner, ort_runner):
                (result,) = benchmark(runner, b, inputs=feeds, warmup=warmup, iters=iters)
                results.append(result)
                log(result.summary())
    result = PipelineResult(
        source.target, exported, slimmed, report, tuple(results), str(paths[2]),
        (note,) if note else (),
    )  # fmt: skip
    write_json(paths[2], result.to_dict(), force=force)
    return result


class _Rejected(Exception):
    """An export that does not match PyTorch: its staged file is not moved into place."""


@dataclass(frozen=True)
class SpecExport(Result):
    """A model spec exported to ONNX, and (unless skipped) validated against PyTorch."""

    COMPUTED = ("ok",)
    HIDDEN = ("signature",)

    export: Any  # ExportResult
    validation: Any | None  # ValidationReport
    notes: tuple[str, ...] = ()
    signature: Signature | None = field(default=None, compare=False)  # what was exported
    written: bool = True  # False: it did not validate, and nothing was written

    @property
    def ok(self) -> bool:
        return self.written and (self.validation is None or bool(self.validation.ok))

    def summary(self) -> str:
        lines = [f"  note    {n}" for n in self.notes] + [self.export.summary()]
        if self.validation is not None:
            lines.append(self.validation.summary())
        return "\n".join(lines)


def export_spec(
    source: str | ModelSource,
    output: str | os.PathLike[str],
    *,
    batch: tuple[int, int] | None = None,
    static: bool = False,
    exporter: str = "dynamo",
    opset: int | None = None,
    fallback: bool = True,
    report_dir: str | os.PathLike[str] | None = None,
    validate: bool = True,
    force: bool = False,
    log: Log = _quiet,
) -> SpecExport:
    """Load a model source, export it, and compare it with PyTorch.

    One float input of the source's ``input_shape`` with a dynamic batch ``batch = (min,
    max)`` (unless ``static``); or any signature: its ``inputs`` (names, dtypes, symbolic
    dims), ``dims`` (their ranges) and/or ``data`` (a ``.npz``/``.pt`` file of example
    inputs). Validation runs several sizes of every dynamic dim. ``fallback``: when the
    dynamo exporter fails, try TorchScript and say so; ``report_dir`` keeps torch's report.
    """
    torch = require("torch", "exporting a PyTorch model")

    from onnx_deploy.convert.export import export_model
    from onnx_deploy.convert.verify import compare_torch_onnx
    from onnx_deploy.core.defaults import DEFAULT_MAX_BATCH
    from onnx_deploy.core.defaults import DEFAULT_OPSET

    source = ModelSource.of(source)
    check_output_path(output, force=force)  # fail before the slow part
    lo, hi = batch or (1, DEFAULT_MAX_BATCH)
    data = example_data(source.data, declared=source.inputs) if source.data else None
    sig = make_signature(
        source.inputs, source.dims, example=data, batch=(lo, hi), static=static,
        spec=source.target,
    )  # fmt: skip
    loaded = source.load(sig)
    model, shape, note, sig = loaded.model, loaded.sample_shape, loaded.note, loaded.signature
    log(f"load      {source.target}")
    if note:
        log(f"  note    {note}")
    common: dict[str, Any] = {
        "exporter": exporter, "opset": opset or DEFAULT_OPSET, "fallback": fallback,
        "report_dir": report_dir, "force": True, "contract": source.contract(loaded),
    }  # fmt: skip
    report = None
    try:  # into a hidden folder beside the output, moved into place only if it validates
        with atomic_output(output, force=force) as tmp:
            if sig is not None:
                result = export_model(model, data, tmp, signature=sig, **common)
            else:
                example_batch = torch.randn((lo if static else max(lo, 2), *shape))
                result = export_model(
                    model, example_batch, tmp, dynamic_batch=not static, max_batch=hi, **common
                )
            result = dataclasses.replace(result, path=str(output))
            log(result.summary())
            if validate:
                sizes = (lo,) if static else tuple(sorted({lo, min(max(lo, 2), hi), min(8, hi)}))
                check = (
                    Signature.from_specs(result.inputs, result.dims, sig.inputs) if sig else None
                )
                report = compare_torch_onnx(model, tmp, batch_sizes=sizes, signature=check)
                report = dataclasses.replace(report, candidate=str(output))
                log(report.summary())
                if not report.ok:
                    raise _Rejected
    except _Rejected:
        log(f"  note    nothing written: {output} does not match PyTorch")
        return SpecExport(result, report, (note,) if note else (), sig, written=False)
    return SpecExport(result, report, (note,) if note else (), sig)
