"""Numerical validation: PyTorch vs ONNX Runtime, or ONNX vs ONNX, with per-output reports.

Exporters have shipped wrong graphs (pytorch issues 169178, 166797) and graph optimizers
have changed results (OnnxSlim issues 277, 321), so every conversion is checked by running
both sides on the same inputs, over several batch sizes, and comparing each output:
max absolute and relative error, cosine similarity per sample, and top-1 agreement for
classifier-shaped outputs. Pass/fail uses a tolerance preset per precision.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from onnx_deploy.errors import ValidationError
from onnx_deploy.runtime import Predictor

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria. ``None`` turns a check off.

    Elementwise: ``|cand - ref| <= atol + rtol * |ref|`` (numpy.allclose's rule).
    ``min_cosine``: the lowest per-sample cosine similarity allowed.
    ``min_top1``: the lowest top-1 agreement allowed on classifier-shaped outputs.
    """

    name: str
    atol: float | None
    rtol: float | None
    min_cosine: float | None
    min_top1: float | None


# fp32: export and graph rewrites only reorder float arithmetic; errors stay ~1e-6.
# fp16: 10-bit mantissa, so ~1e-3 relative per op, compounding over depth.
# int8: elementwise bounds are meaningless; judge by direction (cosine) and decisions.
# Reference outputs smaller than this make absolute tolerances pass trivially
# (an untrained mobilenet_v3_small's logits are ~1e-10).
TRIVIAL_SCALE = 1e-4

PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance("fp32", atol=1e-4, rtol=1e-3, min_cosine=0.9999, min_top1=None),
    "fp16": Tolerance("fp16", atol=1e-2, rtol=1e-2, min_cosine=0.999, min_top1=None),
    "int8": Tolerance("int8", atol=None, rtol=None, min_cosine=0.98, min_top1=0.9),
}


def get_tolerance(precision: str | Tolerance) -> Tolerance:
    if isinstance(precision, Tolerance):
        return precision
    try:
        return PRESETS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class OutputComparison:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    mean_abs: float
    min_cosine: float
    top1_agreement: float | None
    ok: bool
    reason: str = ""
    ref_scale: float = float("nan")  # max |reference|: near 0, tolerances prove nothing

    def line(self) -> str:
        top1 = "" if self.top1_agreement is None else f"  top-1 {100 * self.top1_agreement:.1f}%"
        mark = "ok" if self.ok else f"FAIL ({self.reason})"
        if self.ref_scale < TRIVIAL_SCALE:
            mark += (
                f"  [reference max |value| {self.ref_scale:.1e}: near zero, so this check "
                "proves little; use trained weights or real inputs]"
            )
        return (
            f"{self.name:<16} max abs {self.max_abs:.2e}  max rel {self.max_rel:.2e}  "
            f"cosine {self.min_cosine:.6f}{top1}  {mark}"
        )


@dataclass(frozen=True)
class ValidationReport:
    reference: str
    candidate: str
    tolerance: Tolerance
    outputs: tuple[OutputComparison, ...]
    batch_sizes: tuple[int, ...]
    num_samples: int
    max_abs_by_batch: dict[int, float]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    def summary(self) -> str:
        head = (
            f"validate  {self.candidate} vs {self.reference}: "
            f"{'PASS' if self.ok else 'FAIL'} ({self.tolerance.name} tolerance, "
            f"{self.num_samples} samples, batch sizes {list(self.batch_sizes)}, {self.seconds:.1f} s)"
        )
        return "\n".join([head, *("  " + o.line() for o in self.outputs)])

    def raise_for_mismatch(self) -> ValidationReport:
        """Raise ``ValidationError`` with the summary if any output failed; else return self."""
        if not self.ok:
            raise ValidationError(
                self.summary() + "\nCompare intermediate tensors to find where the graphs "
                "diverge (onnx_deploy.validate.intermediate_differences), or loosen the "
                "tolerance only if the precision change explains the gap."
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _cosine_rows(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    r = ref.reshape(ref.shape[0], -1).astype(np.float64) if ref.ndim else ref.reshape(1, 1)
    c = cand.reshape(r.shape).astype(np.float64)
    num = (r * c).sum(axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
    both_zero = (np.linalg.norm(r, axis=1) == 0) & (np.linalg.norm(c, axis=1) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return np.where(both_zero, 1.0, cos)


def compare_outputs(
    name: str, refs: Sequence[np.ndarray], cands: Sequence[np.ndarray], tolerance: Tolerance
) -> OutputComparison:
    """Compare one output over several batches (arrays are concatenated along axis 0)."""
    if not refs:
        raise ValueError(f"no arrays to compare for output {name!r}")
    for r, c in zip(refs, cands, strict=True):
        if r.shape != c.shape:
            return OutputComparison(
                name,
                tuple(r.shape),
                np.inf,
                np.inf,
                np.inf,
                0.0,
                None,
                False,
                f"shape {tuple(c.shape)} != reference {tuple(r.shape)}",
            )
    ref = np.concatenate([np.atleast_1d(r) for r in refs]).astype(np.float64)
    cand = np.concatenate([np.atleast_1d(c) for c in cands]).astype(np.float64)
    if not np.isfinite(cand).all() and np.isfinite(ref).all():
        return OutputComparison(
            name,
            tuple(refs[0].shape),
            np.inf,
            np.inf,
            np.inf,
            0.0,
            None,
            False,
            "candidate has NaN/inf where the reference is finite",
        )
    diff = np.abs(cand - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = float((diff / np.maximum(np.abs(ref), 1e-6)).max()) if diff.size else 0.0
    mean_abs = float(diff.mean()) if diff.size else 0.0
    min_cos = float(_cosine_rows(ref, cand).min()) if diff.size else 1.0
    top1 = None
    if ref.ndim == 2 and ref.shape[1] > 1:
        top1 = float((ref.argmax(axis=1) == cand.argmax(axis=1)).mean())
    reasons = []
    t = tolerance
    if t.atol is not None and t.rtol is not None:
        bad = diff > t.atol + t.rtol * np.abs(ref)
        if bad.any():
            reasons.append(
                f"{int(bad.sum())} of {bad.size} values beyond atol {t.atol:g} + rtol {t.rtol:g}"
            )
    if t.min_cosine is not None and min_cos < t.min_cosine:
        reasons.append(f"cosine {min_cos:.6f} < {t.min_cosine}")
    if t.min_top1 is not None and top1 is not None and top1 < t.min_top1:
        reasons.append(f"top-1 agreement {100 * top1:.1f}% < {100 * t.min_top1:.1f}%")
    return OutputComparison(
        name,
        tuple(refs[0].shape),
        max_abs,
        max_rel,
        mean_abs,
        min_cos,
        top1,
        not reasons,
        "; ".join(reasons),
        float(np.abs(ref).max()) if ref.size else 0.0,
    )


def _flatten_torch_output(out: Any) -> list[np.ndarray]:
    import torch

    if isinstance(out, torch.Tensor):
        return [
            out.detach().cpu().float().numpy()
            if out.dtype == torch.bfloat16
            else out.detach().cpu().numpy()
        ]
    if isinstance(out, Mapping):
        return [a for v in out.values() for a in _flatten_torch_output(v)]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in _flatten_torch_output(v)]
    raise ValidationError(f"cannot compare a model output of type {type(out).__name__}")


def _input_batches(
    predictor: Predictor,
    inputs: Iterable[Any] | None,
    batch_sizes: Sequence[int],
    seed: int,
) -> list[dict[str, np.ndarray]]:
    if inputs is None:
        return [
            predictor.example_inputs(batch_size=b, seed=seed + i) for i, b in enumerate(batch_sizes)
        ]
    batches = []
    for item in inputs:
        if isinstance(item, np.ndarray):
            item = (item,)
        batches.append(
            predictor.as_feeds((item,) if isinstance(item, Mapping) else tuple(item), {})
        )
    if not batches:
        raise ValidationError("no inputs to validate with: pass at least one batch")
    return batches


def _report(
    reference: str,
    candidate: str,
    names: Sequence[str],
    pairs: list[tuple[list[np.ndarray], list[np.ndarray]]],
    batches: list[dict[str, np.ndarray]],
    tolerance: Tolerance,
    seconds: float,
) -> ValidationReport:
    outputs = []
    for i, name in enumerate(names):
        refs = [p[0][i] for p in pairs]
        cands = [p[1][i] for p in pairs]
        outputs.append(compare_outputs(name, refs, cands, tolerance))
    sizes = [next(iter(b.values())).shape[0] if b else 0 for b in batches]
    by_batch: dict[int, float] = {}
    for size, (refs, cands) in zip(sizes, pairs, strict=True):
        worst = max(
            float(np.abs(c.astype(np.float64) - r).max(initial=0.0))
            for r, c in zip(refs, cands, strict=True)
        )
        by_batch[size] = max(by_batch.get(size, 0.0), worst)
    return ValidationReport(
        reference=reference,
        candidate=candidate,
        tolerance=tolerance,
        outputs=tuple(outputs),
        batch_sizes=tuple(dict.fromkeys(sizes)),
        num_samples=sum(sizes),
        max_abs_by_batch=by_batch,
        seconds=seconds,
    )


def compare_torch_onnx(
    module: torch.nn.Module,
    onnx_model: str | os.PathLike[str] | Predictor,
    inputs: Iterable[Any] | None = None,
    batch_sizes: Sequence[int] = (1, 2, 8),
    precision: str | Tolerance = "fp32",
    seed: int = 0,
    device: str = "cpu",
) -> ValidationReport:
    """Run ``module`` (PyTorch) and the ONNX model on the same inputs and compare.

    ``inputs``: batches to use (each an array, a tuple of arrays in input order, or a
    dict by input name), for example real data; by default random inputs at each of
    ``batch_sizes``. ONNX outputs are matched to the module's outputs in order.
    """
    import torch

    tolerance = get_tolerance(precision)
    pred = onnx_model if isinstance(onnx_model, Predictor) else Predictor(onnx_model, device=device)
    batches = _input_batches(pred, inputs, batch_sizes, seed)
    was_training = module.training
    module.eval()
    start = time.perf_counter()
    pairs = []
    try:
        with torch.inference_mode():
            for feeds in batches:
                args = [
                    torch.from_numpy(np.ascontiguousarray(feeds[s.name])).to(device)
                    for s in pred.inputs
                ]
                ref = _flatten_torch_output(module(*args))
                cand = pred(feeds)
                cand_list = list(cand) if isinstance(cand, tuple) else [cand]
                if len(ref) != len(cand_list):
                    raise ValidationError(
                        f"PyTorch returned {len(ref)} outputs, the ONNX model {len(cand_list)}"
                    )
                pairs.append((ref, cand_list))
    finally:
        module.train(was_training)
    name = "onnx (Predictor)" if isinstance(onnx_model, Predictor) else str(onnx_model)
    return _report(
        f"torch:{type(module).__name__}",
        name,
        pred.output_names,
        pairs,
        batches,
        tolerance,
        time.perf_counter() - start,
    )


def compare_onnx(
    reference: str | os.PathLike[str] | Predictor,
    candidate: str | os.PathLike[str] | Predictor,
    inputs: Iterable[Any] | None = None,
    batch_sizes: Sequence[int] = (1, 2, 8),
    precision: str | Tolerance = "fp32",
    seed: int = 0,
    device: str = "cpu",
) -> ValidationReport:
    """Compare two ONNX models (e.g. before/after slimming or quantization) on ORT."""
    tolerance = get_tolerance(precision)
    ref = reference if isinstance(reference, Predictor) else Predictor(reference, device=device)
    cand = candidate if isinstance(candidate, Predictor) else Predictor(candidate, device=device)
    if [s.name for s in ref.inputs] != [s.name for s in cand.inputs]:
        raise ValidationError(
            f"the models take different inputs: {[s.describe() for s in ref.inputs]} vs "
            f"{[s.describe() for s in cand.inputs]}"
        )
    batches = _input_batches(ref, inputs, batch_sizes, seed)
    start = time.perf_counter()
    pairs = []
    for feeds in batches:
        r, c = ref.run(feeds), cand.run(feeds)
        pairs.append(([r[n] for n in ref.output_names], [c[n] for n in ref.output_names if n in c]))
        if len(pairs[-1][1]) != len(ref.output_names):
            raise ValidationError(f"output names differ: {ref.output_names} vs {cand.output_names}")
    return _report(
        str(reference),
        str(candidate),
        ref.output_names,
        pairs,
        batches,
        tolerance,
        time.perf_counter() - start,
    )


def intermediate_differences(
    program: Any, example_inputs: Any, top: int = 10
) -> list[tuple[str, float]]:
    """Where do PyTorch and the exported graph diverge? Uses torch.onnx's own verifier.

    ``program`` is ``ExportResult.program`` (a dynamo ``ONNXProgram``). Returns the
    ``top`` intermediate values with the largest max-abs difference, largest first.
    """
    import torch
    from torch.onnx.verification import verify_onnx_program

    if program is None:
        raise ValidationError("intermediate comparison needs the dynamo exporter's ONNXProgram")
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    args = tuple(torch.as_tensor(a) for a in args)
    import onnxruntime

    # torch's verifier asks for every available provider; silence the CUDA load errors.
    onnxruntime.set_default_logger_severity(4)
    try:
        infos = verify_onnx_program(program, args=args, compare_intermediates=True)
    finally:
        onnxruntime.set_default_logger_severity(3)
    ranked = sorted(((i.name, float(i.max_abs_diff)) for i in infos), key=lambda t: -t[1])
    return ranked[:top]


@dataclass(frozen=True)
class IntermediateDiff:
    """One intermediate tensor compared between two ONNX graphs (graph order)."""

    name: str
    op_type: str
    max_abs: float
    rel_to_scale: float  # max_abs / max |reference value|


def _expose_all(model: Any) -> tuple[Any, dict[str, str]]:
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    producers: dict[str, str] = {}
    for node in exposed.graph.node:
        for out in node.output:
            if out and out not in have:
                exposed.graph.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
            producers[out] = node.op_type
    return exposed, producers


def onnx_intermediate_differences(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    inputs: dict[str, np.ndarray],
) -> list[IntermediateDiff]:
    """Run both graphs with every node output exposed and compare the tensors they share.

    Both run on ONNX Runtime's CPU provider with graph optimizations off (so tensor names
    survive). The first entry whose ``rel_to_scale`` jumps is where the graphs diverge.
    """
    from onnx_deploy.modelinfo import load_onnx
    from onnx_deploy.runtime import create_session

    results = []
    for path in (reference, candidate):
        exposed, producers = _expose_all(load_onnx(path))
        sess = create_session(
            exposed.SerializeToString(), device="cpu", graph_optimization="disabled"
        )
        names = [o.name for o in sess.get_outputs()]
        results.append((dict(zip(names, sess.run(names, inputs), strict=True)), producers))
    (ref, ref_ops), (cand, _) = results
    diffs = []
    for name, op_type in ref_ops.items():  # graph (topological) order
        r, c = ref.get(name), cand.get(name)
        if r is None or c is None or np.shape(c) != np.shape(r):
            continue
        r64, c64 = np.asarray(r, np.float64), np.asarray(c, np.float64)
        if not r64.size:
            continue
        max_abs = float(np.abs(c64 - r64).max())
        scale = float(np.abs(r64).max())
        diffs.append(
            IntermediateDiff(name, op_type, max_abs, max_abs / scale if scale else max_abs)
        )
    return diffs
