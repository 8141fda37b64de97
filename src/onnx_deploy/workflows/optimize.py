"""The deployment report card: build every variant a target supports, validate each
against FP32, benchmark them side by side, and pick the one to ship.

"Which file do I ship?" has no answer in a table: INT8 ran resnet18 2.7x faster than
FP32 on a CPU with VNNI and no faster on one without, FP16 runs on onnxruntime's CPU
provider at about FP32's speed, and efficientnet_b0 lost accuracy in INT8 (field notes).
So ``optimize`` measures on the machine at hand:

1. variants: FP32, FP16, INT8 static (the types ``choose_types`` gives this CPU), INT8
   dynamic for MatMul-heavy models, and TensorRT engines of those graphs where TensorRT
   and a GPU are there; each one that cannot be built says why;
2. each is validated against FP32 with its precision's tolerance, and with labels its
   accuracy must stay within ``max_accuracy_drop`` points of FP32's;
3. all are benchmarked interleaved (``benchmark(rounds=...)``) at each batch size; with
   ``runtimes=("onnxruntime", "openvino")`` OpenVINO's CPU plugin runs the same files too
   (FP32, BF16 as its own variant, the FP16 file, the QDQ INT8 file);
4. the fastest that passes is chosen, but a lower precision must beat FP32 by
   ``min_speedup`` at every batch size: smaller gains are within this kind of machine's
   run-to-run noise and do not pay for the precision.

The result is a frozen ``ReportCard`` (``summary()`` is its markdown table, ``to_dict()``
its JSON); ``write_report`` puts the markdown, the JSON, two plots and the chosen file in
a folder.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import OptimizeError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import check_output_path
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import write_json
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table
from onnx_deploy.infer.compare import Tolerance
from onnx_deploy.infer.compare import get_tolerance
from onnx_deploy.teach.zoo import ModelSource

Log = Callable[[str], None]
TARGETS = ("cpu", "cuda")
DEFAULT_MAX_ACCURACY_DROP = 0.5  # points of accuracy (percent)
# A lower precision must be this much faster than FP32 at every batch size to be chosen.
# Measured on the project's 2-vCPU VMs: medians of one model moved 10-20% between runs,
# and FP16 on onnxruntime's CPU provider came out at 0.9-1.1x FP32 from run to run.
DEFAULT_MIN_SPEEDUP = 1.2
REFERENCE = "FP32"
# what optimize writes in its folder (besides variants/model.fp32.onnx, which prepare writes)
OUTPUTS = (
    "report.md", "report.json", "model.onnx", "latency_vs_accuracy.png", "latency_by_batch.png",
    "variants/model.fp16.onnx", "variants/model.int8.onnx", "variants/model.dynint8.onnx",
    "variants/model.fused.onnx", "variants/model.fused.dynint8.onnx",
)  # fmt: skip
VARIANT_FILES = tuple(n for n in OUTPUTS if n.startswith("variants/"))


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Timing:
    """One variant at one batch size, from the interleaved benchmark."""

    batch_size: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float
    contention: str = ""  # the busy-machine warning of this benchmark, if it had one


@dataclass(frozen=True)
class Variant:
    """One candidate file: how it was made, how it compares with FP32, how fast it ran,
    and the verdict (``chosen``, or why it lost)."""

    name: str
    precision: str  # the tolerance preset it is judged by: fp32, fp16, int8
    backend: str  # onnxruntime, tensorrt
    path: str | None = None
    status: str = "ok"  # ok, skipped, failed
    reason: str = ""  # why skipped or failed
    size: int = 0
    passed: bool | None = None  # the tolerance and the accuracy budget
    max_abs: float | None = None
    min_cosine: float | None = None
    agreement: float | None = None  # top-1 agreement with FP32 on the validation inputs
    accuracy: float | None = None  # with labels
    fails: tuple[str, ...] = ()  # which criteria failed
    timings: tuple[Timing, ...] = ()
    verdict: str = ""
    details: str = ""  # types, kept nodes, ...

    def timing(self, batch_size: int) -> Timing | None:
        return next((t for t in self.timings if t.batch_size == batch_size), None)

    @property
    def chosen(self) -> bool:
        return self.verdict == "chosen"


@dataclass(frozen=True)
class ReportCard(Result):
    """What ``optimize`` measured and chose. ``summary()`` is the markdown report."""

    COMPUTED = ("contention", "speedups", "chosen_variant")

    model: str
    target: str
    variants: tuple[Variant, ...]
    chosen: str
    batch_sizes: tuple[int, ...]
    max_accuracy_drop: float
    min_speedup: float
    data: str  # where calibration and validation inputs came from
    environment: dict[str, Any] = field(default_factory=dict, compare=False)
    notes: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant {name!r}; variants: {[v.name for v in self.variants]}")

    @property
    def chosen_variant(self) -> Variant:
        return self.variant(self.chosen)

    @property
    def speedups(self) -> dict[str, dict[int, float | None]]:
        """FP32 / variant median-latency ratios, by variant and batch size."""
        return {
            v.name: {b: self.speedup(v.name, b) for b in self.batch_sizes}
            for v in self.variants
            if v.timings
        }

    def speedup(self, name: str, batch_size: int | None = None) -> float | None:
        """Median-latency ratio FP32 / ``name`` at ``batch_size`` (default: the first)."""
        b = batch_size or self.batch_sizes[0]
        ref, other = self.variant(REFERENCE).timing(b), self.variant(name).timing(b)
        if ref is None or other is None:
            return None
        return ref.median_ms / other.median_ms

    def table(self) -> str:
        """The markdown table: one row per variant."""
        b = self.batch_sizes
        head = ["variant", "accuracy", "agreement", "max abs", "cosine", "size"]
        head += [f"p50 / p90 ms (b{x})" for x in b]
        head += [f"samples/s (b{b[-1]})", "vs FP32", "verdict"]
        rows = []
        for v in self.variants:
            cells = [
                f"**{v.name}**" if v.chosen else v.name,
                _pct(v.accuracy),
                _pct(v.agreement),
                "-" if v.max_abs is None else f"{v.max_abs:.2e}",
                "-" if v.min_cosine is None else f"{v.min_cosine:.4f}",
                human_size(v.size) if v.size else "-",
            ]
            for x in b:
                t = v.timing(x)
                cells.append("-" if t is None else f"{_ms(t.median_ms)} / {_ms(t.p90_ms)}")
            last = v.timing(b[-1])
            cells.append("-" if last is None else f"{last.throughput:.0f}")
            ratio = self.speedup(v.name) if v.timings else None
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
            cells.append("**chosen**" if v.chosen else (v.verdict or v.reason).replace("|", "/"))
            rows.append(cells)
        return format_table(head, rows, markdown=True)

    def summary(self) -> str:
        v = self.chosen_variant
        cpu = self.environment.get("cpu", {})
        lines = [
            f"# Report card: {self.model}",
            "",
            f"Target: {self.target}; CPU: {cpu.get('model', '?')} ({cpu.get('int8_isa', '?')}); "
            f"data: {self.data}.",
            f"Rule: the fastest variant that passes its tolerance"
            f"{' and loses at most ' + str(self.max_accuracy_drop) + ' points of accuracy' if any(x.accuracy is not None for x in self.variants) else ''}"
            f"; a lower precision must be at least {self.min_speedup:.2f}x faster than FP32 at "
            f"every batch size ({', '.join(map(str, self.batch_sizes))}).",
            "",
            self.table(),
            "",
            f"**Ship {v.name}**: {self.files.get('model', v.path)}"
            + (f" ({self.speedup(v.name):.2f}x FP32 at batch {self.batch_sizes[0]})" if v.name != REFERENCE and self.speedup(v.name) else ""),
        ]  # fmt: skip
        if v.backend == "openvino":
            hint = OPENVINO_HINT.get(v.precision, "f32")
            lines.append(
                f"- run it on OpenVINO's CPU plugin with INFERENCE_PRECISION_HINT {hint} "
                f"(`OpenVinoRunner(path, {hint!r})`, or `compile_model(path, 'CPU', "
                f"{{'INFERENCE_PRECISION_HINT': {hint!r}}})`): on ONNX Runtime the same file "
                "is the plain ONNX Runtime variant"
            )
        lines += [f"- note: {n}" for n in self.notes]
        lines += [f"- warning: {w}" for w in self.contention]
        return "\n".join(lines)

    @property
    def contention(self) -> list[str]:
        """Busy-machine warnings of the timings (``BenchmarkResult.contention``):
        a choice made from such timings is to be re-run before it is trusted."""
        hits = [
            f"{v.name} batch {t.batch_size}"
            for v in self.variants
            for t in v.timings
            if t.contention
        ]
        if not hits:
            return []
        return [
            f"busy machine: the timings of {', '.join(hits)} spread widely (p90 over "
            "1.5x the median, or a CV over 40%); rerun before trusting the choice"
        ]


def _ms(value: float) -> str:
    """Three significant digits: 0.0352, 24.7, 151."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# --- building the variants ---------------------------------------------------------------


def matmul_heavy(model_path: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether dynamic INT8 suits the model: more MatMul/Gemm nodes than convolutions."""
    from onnx_deploy.infer.modelinfo import describe

    ops = describe(model_path).op_histogram
    mm = ops.get("MatMul", 0) + ops.get("Gemm", 0)
    conv = ops.get("Conv", 0) + ops.get("ConvTranspose", 0)
    return mm > conv, f"{mm} MatMul/Gemm vs {conv} Conv nodes"


def _build(
    name: str,
    precision: str,
    make: Callable[[], Any],
    details: Callable[[Any], str] = lambda _: "",
) -> Variant:
    """Run one builder; a failure becomes a ``failed`` variant that says why."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = make()
    except Exception as e:
        first = first_line(e)
        return Variant(name, precision, "onnxruntime", status="failed", reason=first)
    path = str(getattr(result, "output_path", result))
    return Variant(
        name, precision, "onnxruntime", path=path, size=file_size(path), details=details(result)
    )


def build_variants(
    fp32: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    calibration: Any,
    *,
    target: str = "cpu",
    calibration_size: int | None = None,
    batch_sizes: Sequence[int] = (1, 8),
    runtimes: Sequence[str] = ("onnxruntime",),
    log: Log = _quiet,
) -> list[Variant]:
    """Every candidate file for ``target``, written into ``folder`` (FP32 is ``fp32``), and
    each runtime's way of running them (``openvino_variants``)."""
    from onnx_deploy.convert.quantize import convert_fp16
    from onnx_deploy.convert.quantize import quantize_dynamic_model
    from onnx_deploy.convert.quantize import quantize_static_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = str(fp32)
    variants = [Variant(REFERENCE, "fp32", "onnxruntime", path=fp32, size=file_size(fp32))]
    log(f"variant   FP32 {fp32}")
    variants.append(
        _build(
            "FP16", "fp16",
            lambda: convert_fp16(fp32, folder / "model.fp16.onnx", validate=False, force=True),
            lambda r: "float16 weights and compute, float32 inputs and outputs",
        )
    )  # fmt: skip
    if calibration is None:
        variants.append(
            Variant(
                "INT8 static", "int8", "onnxruntime", status="skipped",
                reason="no calibration data (static INT8 needs 100-500 real samples)",
            )
        )  # fmt: skip
    else:
        variants.append(
            _build(
                "INT8 static", "int8",
                lambda: quantize_static_model(
                    fp32, folder / "model.int8.onnx", calibration, validate=False, force=True,
                    calibration_size=calibration_size,
                ),
                lambda r: f"QDQ {r.types.short} per-channel for {r.types.isa}",
            )
        )  # fmt: skip
    heavy, why = matmul_heavy(fp32)
    if heavy:
        variants.append(
            _build(
                "INT8 dynamic", "int8",
                lambda: quantize_dynamic_model(
                    fp32, folder / "model.dynint8.onnx", validate=False, force=True
                ),
                lambda r: f"MatMul/Gemm weights {r.types.short}",
            )
        )  # fmt: skip
        variants += fused_variants(fp32, folder)
    else:
        variants.append(
            Variant(
                "INT8 dynamic", "int8", "onnxruntime", status="skipped",
                reason=f"not MatMul-heavy ({why}): dynamic INT8 suits transformers and MLPs",
            )
        )  # fmt: skip
    for v in variants[1:]:
        log(f"variant   {v.name}: {v.path or v.status + ' (' + v.reason + ')'}")
    variants += tensorrt_variants(variants, folder, target, batch_sizes, log)
    if any(r.startswith("openvino") for r in runtimes):
        variants += openvino_variants(variants, target, log)
    return variants


# The files OpenVINO runs, by the ONNX Runtime variant they come from: (name, tolerance
# preset, inference precision hint). BF16 is the FP32 file computed in bf16: its own
# variant, validated like FP16, never the plugin's silent default.
OPENVINO_FROM = {
    REFERENCE: (("OpenVINO FP32", "fp32", "f32"), ("OpenVINO BF16", "bf16", "bf16")),
    "FP16": (("OpenVINO FP16", "fp16", "f32"),),
    "INT8 static": (("OpenVINO INT8 static", "int8", "f32"),),
}
OPENVINO_HINT = {"bf16": "bf16"}  # tolerance preset -> hint; every other variant runs f32


def openvino_variants(built: Sequence[Variant], target: str, log: Log = _quiet) -> list[Variant]:
    """OpenVINO's CPU plugin on the files already built: FP32 (hint f32), BF16 (the FP32
    file, hint bf16, where the CPU does bf16), the FP16 file (fp16 weights, computed in
    f32) and the QDQ INT8 file (int8 convolutions). Each is compiled here, so one OpenVINO
    cannot run says why; ``details`` counts what the compiled graph runs in."""
    from onnx_deploy.infer.runners.openvino import OpenVinoRunner
    from onnx_deploy.infer.runners.openvino import cpu_capabilities

    out = []
    caps = cpu_capabilities()
    for v in built:
        for name, precision, hint in (
            OPENVINO_FROM.get(v.name, ()) if v.backend == "onnxruntime" else ()
        ):
            if target != "cpu":
                out.append(Variant(name, precision, "openvino", status="skipped",
                                   reason="OpenVINO runs here on the CPU only (--target cpu)"))  # fmt: skip
                continue
            if v.status != "ok" or v.path is None:
                out.append(Variant(name, precision, "openvino", status="skipped",
                                   reason=f"no {v.name} graph to run"))  # fmt: skip
                continue
            if hint == "bf16" and "BF16" not in caps:
                out.append(Variant(name, precision, "openvino", status="skipped",
                                   reason="this CPU has no bf16 (AVX512_BF16 or AMX)"))  # fmt: skip
                continue
            try:
                with OpenVinoRunner(v.path, hint, name=name) as runner:
                    ran = runner.runtime_precisions()
            except Exception as e:
                first = first_line(e)
                out.append(Variant(name, precision, "openvino", status="failed", reason=first))
                continue
            kinds = ", ".join(f"{n} {k}" for k, n in ran.items() if k != "dynamic")
            out.append(
                Variant(
                    name,
                    precision,
                    "openvino",
                    path=v.path,
                    size=v.size,
                    details=f"{Path(v.path).name}, INFERENCE_PRECISION_HINT {hint}; "
                    f"nodes run in {kinds}",
                )
            )
            log(f"variant   {name}: {v.path} on OpenVINO ({hint})")
    return out


NOTHING_FUSED = "the fusion pass found no transformer block"


def fused_variants(fp32: str, folder: Path) -> list[Variant]:
    """For transformer graphs: FP32 with ONNX Runtime's fused attention, SkipLayerNorm
    and Gelu (``fusion.fuse_transformer``), and dynamic INT8 of that fused graph. Nothing
    when the pass fuses nothing (a MatMul-heavy MLP is no transformer)."""
    from onnx_deploy.convert.fusion import fuse_transformer
    from onnx_deploy.convert.quantize import quantize_dynamic_model

    fused = _build(
        "FP32 fused", "fp32",
        lambda: fuse_transformer(fp32, folder / "model.fused.onnx", validate=False, force=True),
        lambda r: "fused: " + ", ".join(f"{v} {k}" for k, v in r.fused_ops.items())
        if r.fused_ops else NOTHING_FUSED,
    )  # fmt: skip
    if fused.status == "ok" and fused.details == NOTHING_FUSED:
        Path(fused.path).unlink()  # type: ignore[arg-type]
        return []
    if fused.status != "ok":
        return [fused]
    dyn = _build(
        "INT8 dynamic fused", "int8",
        lambda: quantize_dynamic_model(
            fused.path, folder / "model.fused.dynint8.onnx", validate=False, force=True
        ),  # type: ignore[arg-type]
        lambda r: f"the fused graph, MatMul weights {r.types.short}",
    )  # fmt: skip
    return [fused, dyn]


def tensorrt_variants(
    built: Sequence[Variant],
    folder: Path,
    target: str,
    batch_sizes: Sequence[int],
    log: Log = _quiet,
    trt: Any = None,
    gpu: tuple[str, str] | None = None,
) -> list[Variant]:
    """TensorRT engines of the FP32, FP16 and INT8 (QDQ) graphs: TensorRT 11 builds the
    precision the graph holds. Skipped, with the reason, off a GPU or without TensorRT.
    ``trt`` and ``gpu`` are for tests (a recording module, a GPU identity)."""
    names = [f"TensorRT {v.name}" for v in built if v.name in (REFERENCE, "FP16", "INT8 static")]
    if target != "cuda":
        return [_skip_trt(n, "TensorRT needs an NVIDIA GPU (--target cuda)") for n in names]
    from onnx_deploy.convert.tensorrt import INSTALL_HINT
    from onnx_deploy.convert.tensorrt import build_engine
    from onnx_deploy.convert.tensorrt import load_tensorrt

    try:
        trt = trt or load_tensorrt()
    except Exception:
        return [_skip_trt(n, f"TensorRT is not installed: {INSTALL_HINT}") for n in names]
    from onnx_deploy.core.signature import DimRange
    from onnx_deploy.core.signature import Signature
    from onnx_deploy.infer.modelinfo import describe

    out = []
    for v in built:
        name = f"TensorRT {v.name}"
        if name not in names:
            continue
        if v.status != "ok" or v.path is None:
            out.append(_skip_trt(name, f"no {v.name} graph to build from"))
            continue
        sig = Signature.from_specs(describe(v.path).inputs)
        hi = max(max(batch_sizes), 2)
        dims = [DimRange(d, 1, hi, opt=min(hi, 8)) for d in sig.batch_dims]
        plan = folder / (Path(v.path).stem + ".plan")
        try:
            result = build_engine(v.path, plan, dims=dims, force=True, trt=trt, gpu=gpu, log=log)
        except Exception as e:
            first = first_line(e)
            out.append(Variant(name, v.precision, "tensorrt", status="failed", reason=first))
            continue
        out.append(
            Variant(
                name, v.precision, "tensorrt", path=str(result.plan_path),
                size=file_size(result.plan_path), details=f"engine from {Path(v.path).name}",
            )
        )  # fmt: skip
    return out


def _skip_trt(name: str, reason: str) -> Variant:
    return Variant(name, "fp16" if "FP16" in name else "int8" if "INT8" in name else "fp32",
                   "tensorrt", status="skipped", reason=reason)  # fmt: skip


# --- validating, timing, choosing --------------------------------------------------------


def _runner(v: Variant, device: str, threads: int | None = None) -> Any:
    if v.backend == "openvino":
        from onnx_deploy.infer.runners.openvino import OpenVinoRunner

        hint = OPENVINO_HINT.get(v.precision, "f32")
        return OpenVinoRunner(v.path, hint, threads=threads, name=v.name)  # type: ignore[arg-type]
    if v.backend == "tensorrt":
        from onnx_deploy.convert.runners.tensorrt import TensorRTRunner

        return TensorRTRunner(v.path, name=v.name)  # type: ignore[arg-type]
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(v.path, device, threads=threads, name=v.name)  # type: ignore[arg-type]


def validate_variants(
    variants: Sequence[Variant],
    inputs: Sequence[Any],
    *,
    labels: np.ndarray | None = None,
    device: str = "cpu",
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    min_agreement: float | str | None = "preset",
    log: Log = _quiet,
) -> list[Variant]:
    """Compare every built variant with FP32 on ``inputs`` (batches). ``min_agreement``:
    the top-1 agreement required (``"preset"``: the precision's, 90% for INT8; ``None``:
    not judged, for random-weight models whose near-tied scores make it a coin toss)."""
    from onnx_deploy.infer.compare import compare

    ref_v = next(v for v in variants if v.name == REFERENCE)
    out = []
    with _runner(ref_v, device) as ref:
        acc_ref = None if labels is None else _accuracy(ref, inputs, labels)
        for v in variants:
            if v.status != "ok":
                out.append(v)
                continue
            if v is ref_v:  # the reference against itself: nothing to run
                out.append(
                    replace(v, passed=True, max_abs=0.0, min_cosine=1.0,
                            agreement=1.0,
                            accuracy=acc_ref)
                )  # fmt: skip
                continue
            tol = _tolerance(v.precision, min_agreement)
            with _runner(v, device) as cand:
                report = compare(ref, cand, list(inputs), tol)
                dets = report.detections
                first = report.outputs[0] if report.outputs else None
                fails = [f"detections: {dets.reason}"] if dets is not None and not dets.ok else []
                if first is not None and not first.ok and dets is None:
                    fails.append(first.reason)
                rest = report.outputs[1:] if dets is None else report.outputs
                fails += [f"{o.name}: {o.reason}" for o in rest if not o.ok]
                accuracy = None
                if acc_ref is not None:
                    accuracy = _accuracy(cand, inputs, labels)
                    drop = 100 * (acc_ref - accuracy)
                    if drop > max_accuracy_drop:
                        fails.append(
                            f"accuracy {100 * accuracy:.1f}% is {drop:.1f} points below FP32 "
                            f"(budget {max_accuracy_drop})"
                        )
            v = replace(
                v, passed=not fails, max_abs=report.max_abs,
                min_cosine=None if first is None or dets is not None else first.min_cosine,
                agreement=(
                    dets.matched_fraction if dets is not None
                    else None if first is None else first.top1_agreement
                ),
                accuracy=accuracy, fails=tuple(fails),
            )  # fmt: skip
            log(f"validate  {v.name}: {'PASS' if v.passed else 'FAIL ' + '; '.join(fails)}")
            out.append(v)
    return out


def _box_labels(labels: Any) -> bool:
    """Labels that are per-image boxes (``Detections``): accuracy is then mAP@0.5."""
    from onnx_deploy.infer.detections import Detections

    return (
        isinstance(labels, (list, tuple))
        and bool(labels)
        and all(isinstance(x, Detections) for x in labels)
    )


def _accuracy(runner: Any, inputs: Sequence[Any], labels: Any) -> float:
    """Top-1 accuracy of a classifier, or mAP@0.5 of a detector (``labels``: per-image
    ``Detections``, pycocotools' COCOeval), over the validation batches."""
    from onnx_deploy.core.feeds import concatenate
    from onnx_deploy.infer.compare import top1_accuracy

    if not _box_labels(labels):
        return top1_accuracy(runner.infer(concatenate(inputs))[runner.output_names[0]], labels)
    from onnx_deploy.infer.detections import mean_average_precision
    from onnx_deploy.infer.detections import split_detections

    found = []
    for batch in inputs:
        dets = split_detections(runner.infer(batch))
        if dets is None:
            raise OptimizeError(
                "box labels need a detector with detections out (num_detections, boxes, "
                "scores, classes): add NMS first (onnx-deploy edit postprocess --nms)"
            )
        found += dets
    return mean_average_precision(found, list(labels))


def _tolerance(precision: str, min_agreement: float | str | None) -> Tolerance:
    tol = get_tolerance(precision)
    if min_agreement == "preset":
        return tol
    return replace(tol, min_top1=min_agreement)  # type: ignore[arg-type]


def time_variants(
    variants: Sequence[Variant],
    batch_sizes: Sequence[int],
    *,
    device: str = "cpu",
    warmup: int = 3,
    iters: int = 20,
    rounds: int = 5,
    inputs: Mapping[int, Any] | None = None,
    threads: int | None = None,
    log: Log = _quiet,
) -> list[Variant]:
    """Benchmark every built variant interleaved, at each batch size (``inputs``: the
    feeds for each batch size; default: the runners' random inputs)."""
    from onnx_deploy.infer.bench import benchmark

    ready = [v for v in variants if v.status == "ok"]
    timings: dict[str, list[Timing]] = {v.name: [] for v in ready}
    for b in batch_sizes:
        runners = {v.name: _runner(v, device, threads) for v in ready}
        batch = (inputs or {}).get(b)
        for r in benchmark(runners, b, inputs=batch, warmup=warmup, iters=iters, rounds=rounds):
            timings[r.name].append(
                Timing(b, r.median_ms, r.p90_ms, r.p99_ms, r.throughput, r.contention)
            )
            log(f"bench     {r.name} batch {b}: median {_ms(r.median_ms)} ms, p90 {_ms(r.p90_ms)}")
            if r.contention:
                log(f"  warning {r.contention}")
    return [
        replace(v, timings=tuple(timings[v.name])) if v.name in timings else v for v in variants
    ]


def choose(
    variants: Sequence[Variant], batch_sizes: Sequence[int], min_speedup: float
) -> tuple[str, list[Variant]]:
    """The fastest variant that passed, if it beats FP32 by ``min_speedup`` at every batch
    size; else FP32. Every other variant gets the reason it lost."""
    ref = next(v for v in variants if v.name == REFERENCE)
    first = batch_sizes[0]

    def ratios(v: Variant) -> dict[int, float]:
        return {
            b: ref.timing(b).median_ms / v.timing(b).median_ms  # type: ignore[union-attr]
            for b in batch_sizes
            if v.timing(b) is not None and ref.timing(b) is not None
        }

    eligible = [
        v for v in variants
        if v.name != REFERENCE and v.status == "ok" and v.passed
        and (r := ratios(v)) and min(r.values()) >= min_speedup
    ]  # fmt: skip
    eligible.sort(key=lambda v: v.timing(first).median_ms)  # type: ignore[union-attr]
    chosen = eligible[0] if eligible else ref
    out = []
    for v in variants:
        if v.name == chosen.name:
            verdict = "chosen"
        elif v.status != "ok":
            verdict = f"{v.status}: {v.reason}"
        elif not v.passed:
            verdict = "fails: " + "; ".join(v.fails)
        elif v.name == REFERENCE:
            verdict = f"slower than {chosen.name}"
        else:
            r = ratios(v)
            worst_b = min(r, key=lambda b: r[b])
            if r[worst_b] < 1.0:
                verdict = f"slower than FP32 ({r[worst_b]:.2f}x at batch {worst_b})"
            elif r[worst_b] < min_speedup:
                cost = (
                    "lower precision" if v.precision != "fp32"
                    else "another runtime" if v.backend != ref.backend else "a rewritten graph"
                )  # fmt: skip
                verdict = (
                    f"only {r[worst_b]:.2f}x FP32 at batch {worst_b}: under the "
                    f"{min_speedup:.2f}x that pays for {cost}"
                )
            else:
                verdict = f"passes, slower than {chosen.name}"
        out.append(replace(v, verdict=verdict))
    return chosen.name, out


# --- the whole card ----------------------------------------------------------------------


def optimize(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    calibration: Any = None,
    validation: Any = None,
    labels: np.ndarray | None = None,
    target: str = "cpu",
    batch_sizes: Sequence[int] = (1, 8),
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
    min_speedup: float = DEFAULT_MIN_SPEEDUP,
    min_agreement: float | str | None = "preset",
    calibration_size: int | None = 200,
    validation_batch: int = 32,
    warmup: int = 3,
    iters: int = 20,
    rounds: int = 5,
    data_note: str = "",
    notes: Sequence[str] = (),
    dims: Sequence[Any] = (),
    inputs: Sequence[Any] = (),
    threads: int | None = None,
    runtimes: Sequence[str] = ("onnxruntime",),
    force: bool = False,
    plots: bool = True,
    name: str | None = None,
    log: Log = _quiet,
) -> ReportCard:
    """The report card for an FP32 ONNX file (``onnx_deploy.workflows.optimize``'s module text).

    ``calibration``: samples for static INT8 (array, dict by input name, or a file);
    ``validation`` (+ ``labels``): samples to compare on and, with labels, accuracy.
    Without them, random inputs from the model's signature (and a note: INT8 ranges from
    random data are for speed studies only). ``dims`` (``DimRange``) and ``inputs``
    (``InputSpec``) give the signature's ranges and kinds: timings run at each batch size
    with the other dynamic dims at their OPT size (``seq=1:128:512`` times seq 128), or on
    the first samples of real ``validation`` data. ``threads``: intra-op threads.
    ``runtimes``: ``("onnxruntime", "openvino")`` adds OpenVINO's ways of running the same
    files (``openvino_variants``), validated and timed beside ONNX Runtime's.
    Writes ``out_dir/variants/``, the chosen
    file as ``out_dir/model.onnx``, ``report.md``, ``report.json`` and the plots; an
    existing ``report.md`` is not overwritten without ``force``.
    """
    from onnx_deploy.core.feeds import concatenate
    from onnx_deploy.core.signature import Signature
    from onnx_deploy.infer.modelinfo import describe
    from onnx_deploy.infer.runtimes import check_runtimes
    from onnx_deploy.infer.runtimes import parse_runtimes
    from onnx_deploy.workflows.pipeline import batch_feeds

    start = time.perf_counter()
    runtimes = parse_runtimes(runtimes)
    if "onnxruntime" not in runtimes:
        raise OptimizeError("--runtimes must include onnxruntime: its FP32 is the reference")
    check_runtimes(runtimes)
    out = Path(out_dir)
    device = _start(model, out, target, force)
    info = describe(model)
    notes = list(notes)
    sig = Signature.from_specs(info.inputs, dims, inputs)
    data = _task_data(info.inputs, sig, calibration, validation, labels, validation_batch, notes)
    variants = build_variants(
        model, out / "variants", data.calibration, target=target,
        calibration_size=calibration_size, batch_sizes=batch_sizes, runtimes=runtimes, log=log,
    )  # fmt: skip
    variants = validate_variants(
        variants, data.validation, labels=data.labels, device=device,
        max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement, log=log,
    )  # fmt: skip
    # the first samples of real data (repeated when fewer), else valid random inputs with
    # every dynamic dim other than the batch at its OPT (example) size
    real = concatenate(data.validation) if data.real else None
    timing_inputs = {b: batch_feeds(real, sig, b, info.inputs) for b in batch_sizes}
    variants = time_variants(
        variants, batch_sizes, device=device, warmup=warmup, iters=iters, rounds=rounds,
        inputs=timing_inputs, threads=threads, log=log,
    )  # fmt: skip
    chosen, variants = choose(variants, batch_sizes, min_speedup)
    card = ReportCard(
        model=name or str(model), target=target, variants=tuple(variants), chosen=chosen,
        batch_sizes=tuple(batch_sizes), max_accuracy_drop=max_accuracy_drop,
        min_speedup=min_speedup, data=data_note or _data_note(data.labels, data.validation),
        environment=_environment(target, threads), notes=tuple(notes),
        seconds=time.perf_counter() - start,
    )  # fmt: skip
    return write_report(card, out, force=force, plots=plots)


def _start(model: str | os.PathLike[str], out: Path, target: str, force: bool) -> str:
    """Step 1: the target runs here, the model loads, no file of the user's would be
    replaced without ``force``, and an earlier run's variants are gone; the device."""
    from onnx_deploy.infer.modelinfo import require_runtime_loads

    if target not in TARGETS:
        raise OptimizeError(f"target must be one of {TARGETS}, got {target!r}")
    device = _check_target(target)
    require_runtime_loads(model, "no variants, no report")
    for written in OUTPUTS:  # never replace a file of the user's without force
        check_output_path(out / written, force=force)
    for stale in VARIANT_FILES:  # an earlier run's variants: never timed or reported again
        if (out / stale).resolve() != Path(model).resolve():
            (out / stale).unlink(missing_ok=True)
    return device


@dataclass(frozen=True)
class TaskData:
    """Step 2's answer: calibration samples, validation batches, labels, and whether the
    validation data is real (else random from the signature)."""

    calibration: Any
    validation: list[dict[str, np.ndarray]]
    labels: np.ndarray | None
    real: bool


def _task_data(
    specs: Sequence[Any],
    sig: Any,
    calibration: Any,
    validation: Any,
    labels: Any,
    validation_batch: int,
    notes: list[str],
) -> TaskData:
    """Step 2: the data each step uses: given (arrays or files), or random from the
    signature with a note that says what that proves."""
    from onnx_deploy.core.feeds import as_feeds
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.core.feeds import split

    real = validation is not None
    if calibration is None and validation is None:
        calibration = sig.examples({d: 64 for d in sig.batch_dims}, seed=1)
        notes.append(
            "random calibration and validation inputs: speed and conversion checks only; "
            "pass real samples (and labels) for an accuracy decision"
        )
    elif calibration is None:
        calibration = validation
    if isinstance(calibration, (str, os.PathLike)):
        calibration = load_data(calibration)
    if validation is None:
        validation = sig.examples({d: 32 for d in sig.batch_dims}, seed=2)
    elif isinstance(validation, (str, os.PathLike)):
        validation = load_data(validation)
    batches = split(as_feeds(validation, specs), validation_batch)
    if labels is not None:
        if isinstance(labels, (str, os.PathLike)):
            labels = load_data(labels)
        if not _box_labels(labels):
            labels = np.asarray(labels)
        n = sum(len(next(iter(b.values()))) for b in batches)
        if len(labels) != n:
            raise OptimizeError(f"{len(labels)} labels for {n} validation samples")
    return TaskData(calibration, batches, labels, real)


def _environment(target: str, threads: int | None) -> dict[str, Any]:
    """What the timings depend on, with the CPU's INT8 kind and the target."""
    from onnx_deploy.core.cpu import int8_profile
    from onnx_deploy.infer.bench import collect_environment

    env = collect_environment()
    env["cpu"] = {**env.get("cpu", {}), "int8_isa": int8_profile().isa}
    env["target"] = target
    env["threads"] = threads
    return env


DIGITS = "digits"  # the default model: the trained digits CNN with its real data


@dataclass(frozen=True)
class Prepared:
    """An FP32 ONNX file to optimize, with the data and notes that come with it."""

    onnx_path: str
    calibration: Any = None
    validation: Any = None
    labels: Any = None
    data_note: str = ""
    notes: tuple[str, ...] = ()
    random_weights: bool = False
    dims: tuple[Any, ...] = ()  # the exported signature's ranges (an hf: folder's seq=1:32:128)
    inputs: tuple[Any, ...] = ()  # its inputs, with value ranges and kinds


def prepare(
    source: str | ModelSource,
    folder: str | os.PathLike[str],
    *,
    force: bool = False,
    log: Log = _quiet,
) -> Prepared:
    """``digits`` (the trained CNN: calibration from its training split, validation and
    labels from its test split), an ONNX file as it is, or a model source exported (and
    validated against PyTorch) into ``folder/model.fp32.onnx``."""
    from onnx_deploy.workflows.pipeline import export_spec

    source = ModelSource.of(source)
    model = source.target
    folder = Path(folder)
    if model == DIGITS:
        from onnx_deploy.convert.export import export_model
        from onnx_deploy.core.extras import require
        from onnx_deploy.teach.digits import load_digits_model
        from onnx_deploy.teach.digits import load_digits_split

        path = folder / "model.fp32.onnx"
        check_output_path(path, force=force)
        data = load_digits_split()
        torch = require("torch", "exporting the digits CNN")
        export_model(load_digits_model(), torch.from_numpy(data.x_test[:2]), path, force=True)
        log(f"export    digits CNN (trained) -> {path}")
        return Prepared(
            str(path), data.x_train, data.x_test, data.y_test,
            f"digits: {len(data.x_train)} training images to calibrate, "
            f"{len(data.x_test)} labelled test images",
        )  # fmt: skip
    if source.is_onnx:
        return Prepared(str(model))
    path = folder / "model.fp32.onnx"
    # the data is for validation and timing, not example inputs to export with
    exported = export_spec(replace(source, data=None), path, force=force, log=log)
    if not exported.ok:
        raise OptimizeError(f"{model} exported, but ONNX Runtime disagrees with PyTorch: "
                            "see the validation above")  # fmt: skip
    random = bool(exported.notes) and "random weights" in exported.notes[0]
    notes = (
        ("random weights: their near-tied scores make top-1 agreement a coin toss, so "
         "variants are judged on the elementwise and cosine tolerances only; give --weights "
         "and real --data/--labels for an accuracy decision",)
        if random else ()
    )  # fmt: skip
    sig = exported.signature
    return Prepared(
        str(path), notes=notes, random_weights=random, dims=tuple(exported.export.dims),
        inputs=tuple(sig.inputs) if sig is not None else (),
    )  # fmt: skip


def report_card(
    source: str | ModelSource,
    out_dir: str | os.PathLike[str],
    *,
    calibration: Any = None,
    validation: Any = None,
    labels: Any = None,
    min_agreement: float | str | None = "auto",
    force: bool = False,
    log: Log = _quiet,
    **options: Any,
) -> ReportCard:
    """``onnx-deploy optimize``: ``prepare`` the source into ``out_dir/variants`` and
    ``optimize`` it. Data given here wins over the data the source comes with (the digits
    CNN's splits); ``min_agreement="auto"`` judges top-1 agreement by the precision's preset,
    except for random-weight specs, where it is a coin toss. ``options``: ``optimize``'s."""
    source = ModelSource.of(source)
    out = Path(out_dir)
    prepared = prepare(source, out / "variants", force=force, log=log)
    if min_agreement == "auto":
        min_agreement = None if prepared.random_weights else "preset"
    given = validation is not None or calibration is not None
    return optimize(
        prepared.onnx_path, out,
        calibration=calibration if calibration is not None else prepared.calibration,
        validation=validation if validation is not None else prepared.validation,
        labels=labels if labels is not None else prepared.labels,
        min_agreement=min_agreement, data_note="" if given else prepared.data_note,
        notes=prepared.notes, dims=prepared.dims or source.dims,
        inputs=prepared.inputs or source.inputs, force=force, name=source.target, log=log,
        **options,
    )  # fmt: skip


def _data_note(labels: Any, batches: Sequence[Mapping[str, np.ndarray]]) -> str:
    n = sum(len(next(iter(b.values()))) for b in batches)
    if labels is not None and _box_labels(labels):
        return (
            f"{n} validation images with labelled boxes; accuracy is mAP@0.5 "
            "(pycocotools COCOeval), agreement the share of detections matched by IoU"
        )
    return f"{n} validation samples" + (" with labels" if labels is not None else "")


def _check_target(target: str) -> str:
    if target == "cpu":
        return "cpu"
    from onnx_deploy.infer.sessions import working_providers

    if "CUDAExecutionProvider" not in working_providers():
        raise OptimizeError(
            "--target cuda: onnxruntime's CUDA provider does not run here (no NVIDIA GPU, or "
            "onnxruntime-gpu's CUDA libraries are missing; `onnx-deploy doctor` says which). "
            "Use --target cpu on this machine."
        )
    return "cuda"


def write_report(
    card: ReportCard, out_dir: str | os.PathLike[str], *, force: bool = False, plots: bool = True
) -> ReportCard:
    """Write ``report.md``, ``report.json``, the plots and the chosen model into
    ``out_dir``; returns the card with ``files`` filled in."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    chosen = card.chosen_variant
    if chosen.path is not None:
        suffix = Path(chosen.path).suffix
        files["model"] = str(out / f"model{suffix}")
        _copy_model(chosen.path, files["model"], force=True)
    if plots:
        from onnx_deploy.present.plots import plot_report_batches
        from onnx_deploy.present.plots import plot_report_tradeoff
        from onnx_deploy.present.plots import save_figure

        files["tradeoff_plot"] = save_figure(
            plot_report_tradeoff(card), out / "latency_vs_accuracy.png", force=True
        )
        files["batch_plot"] = save_figure(
            plot_report_batches(card), out / "latency_by_batch.png", force=True
        )
    files["markdown"] = str(out / "report.md")
    files["json"] = str(out / "report.json")
    card = replace(card, files=files)
    write_json(files["json"], card.to_dict(), force=True)
    with atomic_output(files["markdown"], force=force) as tmp:
        tmp.write_text(_markdown(card))
    return card


def _markdown(card: ReportCard) -> str:
    env = card.environment
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    cpu = env.get("cpu", {})
    lines = [card.summary(), "", "## Variants", ""]
    for v in card.variants:
        what = v.details or v.reason
        lines.append(f"- **{v.name}** ({v.backend}, {v.precision} tolerance): {what}")
    lines += [
        "",
        "## Plots",
        "",
        "![latency vs accuracy](latency_vs_accuracy.png)",
        "",
        "![latency by batch size](latency_by_batch.png)",
        "",
        "## Environment",
        "",
        f"- CPU: {cpu.get('model', '?')}, {cpu.get('physical_cores') or '?'} cores "
        f"({cpu.get('logical_cpus') or '?'} logical CPUs), INT8 row {cpu.get('int8_isa', '?')}"
        f"; intra-op threads: {env.get('threads') or 'one per core (onnxruntime default)'}",
        f"- Python {env.get('python', '?')} on {env.get('platform', '?')}",
        f"- {versions}",
        f"- made in {card.seconds:.0f} s",
    ]
    return "\n".join(lines) + "\n"


def _copy_model(src: str | os.PathLike[str], dst: str | os.PathLike[str], force: bool) -> None:
    """Copy a model atomically; one with external data is re-saved so that its data file
    takes the new name (a model refers to its data file by name)."""
    from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
    from onnx_deploy.core.files import write_onnx

    src = Path(src)
    with atomic_output(dst, force=force) as tmp:
        if src.with_name(src.name + EXTERNAL_DATA_SUFFIX).exists():
            import onnx

            write_onnx(onnx.load(str(src)), tmp, external_data=True)
        else:
            shutil.copyfile(src, tmp)
