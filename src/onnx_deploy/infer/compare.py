"""Numerical validation: any runner against any runner, with per-output reports.

Exporters have shipped wrong graphs (pytorch issues 169178, 166797) and graph optimizers
have changed results (OnnxSlim issues 277, 321), so every conversion is checked by running
both sides on the same inputs, over several batch sizes, and comparing each output:
max absolute and relative error, cosine similarity per sample, and top-1 agreement for
classifier-shaped outputs. Pass/fail uses a tolerance preset per precision.

``compare(reference, candidate, inputs, tolerance)`` takes two runners
(``onnx_deploy.infer.runners``) and does not care which backends they are; ``compare_torch_onnx``
and ``compare_onnx`` build the runners for the common pairs. Finding *where* two graphs
diverge is ``onnx_deploy.infer.intermediates``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from onnx_deploy.core.defaults import VALIDATE_BATCH_SIZES
from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.errors import ValidationError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.feeds import as_batches
from onnx_deploy.core.feeds import batch_size_of
from onnx_deploy.core.feeds import fill_defaults
from onnx_deploy.core.results import Result
from onnx_deploy.core.signature import Signature
from onnx_deploy.infer.detections import DETECTION_PRESETS
from onnx_deploy.infer.detections import LIST_OUTPUTS
from onnx_deploy.infer.detections import PADDED_OUTPUTS
from onnx_deploy.infer.detections import WHY_NOT_ELEMENTWISE
from onnx_deploy.infer.detections import DetectionComparison
from onnx_deploy.infer.detections import compare_detections
from onnx_deploy.infer.detections import detection_layout
from onnx_deploy.infer.detections import split_detections
from onnx_deploy.infer.runners.base import Runner

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Tolerance:
    """Pass criteria. ``None`` turns a check off.

    Elementwise: ``|cand - ref| <= atol * max(1, scale) + rtol * |ref|``: numpy.allclose's
    rule, with the absolute part scaled by the output's largest magnitude ``scale`` when
    that is above 1. Float error follows the size of the operands, not of the result: a
    box corner near 0 computed as ``centre - width / 2`` from values in the hundreds of
    pixels carries their rounding (1e-3 px in float32), which a bare ``atol`` of 1e-4 would
    call a mismatch.
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
# bf16: a 7-bit mantissa, 8x coarser than fp16's 10 bits: the same checks with bounds 5x
# fp16's (OpenVINO's bf16 resnet18, random weights: max abs 1.9e-2 in notebook 13, 2.2e-2
# and cosine 0.9999 in notebooks/MEASUREMENTS.md, "The report card across runtimes").
# int8: elementwise bounds are meaningless; judge by direction (cosine) and decisions.
# Reference outputs smaller than this make absolute tolerances pass trivially
# (an untrained mobilenet_v3_small's logits are ~1e-10).
TRIVIAL_SCALE = 1e-4
# Reference outputs that hardly change from one input to the next prove nothing either:
# a model that answers the same for everything passes every comparison. An untrained
# efficientnet_b0 gave PASS and 100% top-1 on outputs that varied by 3e-8 across inputs.
# Warn when the largest standard deviation across samples is below this share of the
# largest |value|, or when every sample (at least MIN_SAMPLES_FOR_TOP1) gets one top-1.
MIN_VARIATION = 1e-3
MIN_SAMPLES_FOR_TOP1 = 8
# Outputs with at most this many values per sample (2-class logits, a score) get one
# cosine over all samples, not the worst per-sample cosine: see _stats.
SMALL_ROW = 2

PRESETS: dict[str, Tolerance] = {
    "fp32": Tolerance("fp32", atol=1e-4, rtol=1e-3, min_cosine=0.9999, min_top1=None),
    "fp16": Tolerance("fp16", atol=1e-2, rtol=1e-2, min_cosine=0.999, min_top1=None),
    "bf16": Tolerance("bf16", atol=5e-2, rtol=5e-2, min_cosine=0.999, min_top1=None),
    "int8": Tolerance("int8", atol=None, rtol=None, min_cosine=0.98, min_top1=0.9),
    # the same graph after an edit that only rewires it, or on another build of onnxruntime
    # (Node.js, the browser, the ORT format): every value within float noise, labels equal
    "same-graph": Tolerance("same-graph", atol=1e-4, rtol=1e-3, min_cosine=None, min_top1=None),
}


def top1_accuracy(scores: Any, labels: Any) -> float:
    """The share of samples whose highest score (axis 1) is the label: a classifier's
    accuracy on labelled data, and (with another model's answers as labels) agreement."""
    return float((np.asarray(scores).argmax(axis=1) == np.asarray(labels)).mean())


def get_tolerance(precision: str | Tolerance) -> Tolerance:
    if isinstance(precision, Tolerance):
        return precision
    try:
        return PRESETS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class OutputComparison(Result):
    COMPUTED = ("warning",)

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
    variation: float = float("nan")  # max std across samples / max |reference|
    distinct_top1: int | None = None  # how many classes the reference's top-1 took
    cosine_over: str = "sample"  # the worst per-sample cosine, or "all samples" (2 values)

    @property
    def warning(self) -> str:
        """Why this comparison proves little (empty when it does not)."""
        if self.ref_scale < TRIVIAL_SCALE:
            return (
                f"reference max |value| {self.ref_scale:.1e}: near zero, so this check proves "
                "little; use trained weights or real inputs"
            )
        if self.variation < MIN_VARIATION:
            return (
                f"reference outputs hardly vary across inputs (spread {self.variation:.1e} of "
                "their scale): a model that answers the same for everything passes every "
                "comparison; use trained weights and real inputs"
            )
        if self.distinct_top1 == 1:
            return (
                "every input gets the same top-1 from the reference: agreement proves little; "
                "use trained weights and real inputs"
            )
        return ""

    def line(self) -> str:
        top1 = "" if self.top1_agreement is None else f"  top-1 {100 * self.top1_agreement:.1f}%"
        mark = "ok" if self.ok else f"FAIL ({self.reason})"
        if self.warning:
            mark += f"  [{self.warning}]"
        scope = "" if self.cosine_over == "sample" else f" (over {self.cosine_over})"
        return (
            f"{self.name:<16} max abs {self.max_abs:.2e}  max rel {self.max_rel:.2e}  "
            f"cosine{scope} {self.min_cosine:.6f}{top1}  {mark}"
        )


@dataclass(frozen=True)
class ValidationReport(Result):
    """Every output compared elementwise, or, when the outputs are detections
    (``onnx_deploy.infer.detections``), the detections matched by IoU (``detections``)
    and only the other outputs elementwise."""

    COMPUTED = ("ok", "warnings", "max_abs", "same_top1")

    reference: str
    candidate: str
    tolerance: Tolerance
    outputs: tuple[OutputComparison, ...]
    batch_sizes: tuple[int, ...]
    num_samples: int
    max_abs_by_batch: dict[int, float]
    seconds: float
    dim_sizes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # sizes each dim took
    detections: DetectionComparison | None = None
    notes: tuple[str, ...] = ()  # what was done to the inputs given (defaults filled)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs) and (self.detections is None or self.detections.ok)

    @property
    def max_abs(self) -> float:
        """The largest elementwise error; for detections, the largest box error (px)."""
        worst = max((o.max_abs for o in self.outputs), default=0.0)
        return worst if self.detections is None else max(worst, self.detections.max_box_error)

    @property
    def same_top1(self) -> bool | None:
        """Whether the first output's top-1 answers all agree (None: not classifier-shaped)."""
        first = self.outputs[0] if self.outputs else None
        return None if first is None or first.top1_agreement is None else first.top1_agreement == 1

    @property
    def warnings(self) -> list[str]:
        """Why a PASS may prove little (outputs near zero or the same for every input)."""
        found = [f"{o.name}: {o.warning}" for o in self.outputs if o.warning]
        if self.detections is not None and self.detections.warning:
            found.append(f"detections: {self.detections.warning}")
        return found

    def summary(self) -> str:
        head = (
            f"validate  {self.candidate} vs {self.reference}: "
            f"{'PASS' if self.ok else 'FAIL'} ({self.tolerance.name} tolerance, "
            f"{self.num_samples} samples, batch sizes {list(self.batch_sizes)}{self._other_dims()}, "
            f"{self.seconds:.1f} s)"
        )
        lines = [head, *(f"  note: {n}" for n in self.notes)]
        if self.detections is not None:
            lines += [f"  note: {WHY_NOT_ELEMENTWISE}", "  " + self.detections.line()]
        return "\n".join([*lines, *("  " + o.line() for o in self.outputs)])

    def _other_dims(self) -> str:
        """``, seq [1, 2, 16]``: the sizes dynamic dims other than the batch took."""
        others = list(self.dim_sizes.items())[1:] if self.dim_sizes else []
        return "".join(f", {name} {list(sizes)}" for name, sizes in others)

    def raise_for_mismatch(self) -> ValidationReport:
        """Raise ``ValidationError`` with the summary if any output failed; else return self."""
        if not self.ok:
            raise ValidationError(
                self.summary() + "\nCompare intermediate tensors to find where the graphs "
                "diverge (onnx_deploy.infer.intermediates), or loosen the "
                "tolerance only if the precision change explains the gap."
            )
        return self


def _cosine_rows(ref: np.ndarray, cand: np.ndarray) -> np.ndarray:
    # no copies of arrays already in float64 (compare_outputs passes them so): a decoder's
    # outputs are GB, and each copy added to the peak
    r = ref.reshape(ref.shape[0], -1) if ref.ndim else ref.reshape(1, 1)
    r = r.astype(np.float64, copy=False)
    c = cand.reshape(r.shape).astype(np.float64, copy=False)
    num = (r * c).sum(axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
    both_zero = (np.linalg.norm(r, axis=1) == 0) & (np.linalg.norm(c, axis=1) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
    return np.where(both_zero, 1.0, cos)


def compare_outputs(
    name: str, refs: Sequence[np.ndarray], cands: Sequence[np.ndarray], tolerance: Tolerance
) -> OutputComparison:
    """Compare one output over several batches: batches whose dims beyond axis 0 agree
    are concatenated along axis 0, and the groups (one per image size or sequence
    length) are combined: worst errors, weighted means, the largest variation."""
    if not refs:
        raise ValueError(f"no arrays to compare for output {name!r}")
    for r, c in zip(refs, cands, strict=True):
        if r.shape != c.shape:
            return _failed(name, r.shape, f"shape {tuple(c.shape)} != reference {tuple(r.shape)}")
    groups: dict[tuple[int, ...], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for r, c in zip(refs, cands, strict=True):  # batches whose other dims match concatenate
        r, c = np.atleast_1d(r), np.atleast_1d(c)
        group = groups.setdefault(tuple(r.shape[1:]), ([], []))
        group[0].append(r)
        group[1].append(c)
    exact = np.asarray(refs[0]).dtype.kind in "iub"  # labels, indices, masks: equal or not
    stats = [
        _stats(
            np.concatenate(g[0], dtype=np.float64, casting="unsafe"),
            np.concatenate(g[1], dtype=np.float64, casting="unsafe"),
            tolerance,
            exact,
        )
        for g in groups.values()
    ]
    if any(st["nonfinite"] for st in stats):
        return _failed(name, refs[0].shape, "candidate has NaN/inf where the reference is finite")
    size = sum(st["size"] for st in stats)
    rows = sum(st["rows"] for st in stats if st["top1"] is not None)
    top1 = (
        sum(st["top1"] * st["rows"] for st in stats if st["top1"] is not None) / rows
        if rows
        else None
    )
    min_cos = min(st["min_cos"] for st in stats)
    variations = [st["variation"] for st in stats if not np.isnan(st["variation"])]
    distincts = [st["distinct"] for st in stats if st["distinct"] is not None]
    reasons = []
    t = tolerance
    bad = sum(st["bad"] for st in stats)
    if bad:
        scale = max(st["scale"] for st in stats)
        scaled = f" x scale {scale:.3g}" if scale > 1 else ""
        reasons.append(f"{bad} of {size} values beyond atol {t.atol:g}{scaled} + rtol {t.rtol:g}")
    if t.min_cosine is not None and min_cos < t.min_cosine:
        reasons.append(f"cosine {min_cos:.6f} < {t.min_cosine}")
    if t.min_top1 is not None and top1 is not None and top1 < t.min_top1:
        reasons.append(f"top-1 agreement {100 * top1:.1f}% < {100 * t.min_top1:.1f}%")
    return OutputComparison(
        name,
        tuple(refs[0].shape),
        max(st["max_abs"] for st in stats),
        max(st["max_rel"] for st in stats),
        sum(st["mean_abs"] * st["size"] for st in stats) / size if size else 0.0,
        min_cos,
        top1,
        not reasons,
        "; ".join(reasons),
        max(st["scale"] for st in stats),
        max(variations) if variations else float("nan"),
        max(distincts) if distincts else None,
        "all samples" if any(st["cosine_over"] != "sample" for st in stats) else "sample",
    )


def _failed(name: str, shape: tuple[int, ...], reason: str) -> OutputComparison:
    """A comparison that failed before any statistics: infinite errors, no agreement."""
    return OutputComparison(name, tuple(shape), np.inf, np.inf, np.inf, 0.0, None, False, reason)


def _stats(ref: np.ndarray, cand: np.ndarray, t: Tolerance, exact: bool = False) -> dict[str, Any]:
    """Error statistics of one group of same-shaped batches, concatenated on axis 0."""
    diff = np.abs(cand - ref)
    empty = not diff.size
    st: dict[str, Any] = {
        "nonfinite": not np.isfinite(cand).all() and np.isfinite(ref).all(),
        "size": diff.size,
        "rows": ref.shape[0],
        "max_abs": 0.0 if empty else float(diff.max()),
        "max_rel": 0.0 if empty else _max_rel(diff, ref),
        "mean_abs": 0.0 if empty else float(diff.mean()),
        "min_cos": 1.0 if empty else float(_cosine_rows(ref, cand).min()),
        "scale": 0.0 if empty else float(np.abs(ref).max()),
        "top1": None,
        "distinct": None,
        "variation": float("nan"),
        "bad": 0,
        "cosine_over": "sample",
    }
    if ref.ndim == 2 and ref.shape[1] <= SMALL_ROW and ref.shape[0] >= 2:
        # A sample of one or two values (2-class logits) has no direction to compare: a
        # borderline sample whose two logits swap order gives cosine -1 while the model
        # is fine. Judge the direction of the whole output instead, and say so.
        st["min_cos"] = float(_cosine_rows(ref.reshape(1, -1), cand.reshape(1, -1))[0])
        st["cosine_over"] = "all samples"
    if ref.ndim == 2 and ref.shape[1] > 1 and not empty:
        st["top1"] = float((ref.argmax(axis=1) == cand.argmax(axis=1)).mean())
        if ref.shape[0] >= MIN_SAMPLES_FOR_TOP1 and ref.shape[1] > 2:
            st["distinct"] = len(np.unique(ref.argmax(axis=1)))
    if ref.shape[0] >= 2 and not empty:
        st["variation"] = float(ref.std(axis=0).max() / st["scale"]) if st["scale"] > 0 else 0.0
    if t.atol is not None and t.rtol is not None and not empty:
        if exact:
            st["bad"] = int((diff > 0.0).sum())
        else:  # atol * scale + rtol * |ref|, computed in one array
            allowed = np.abs(ref)
            allowed *= t.rtol
            allowed += t.atol * max(1.0, st["scale"])
            st["bad"] = int((diff > allowed).sum())
    return st


def _max_rel(diff: np.ndarray, ref: np.ndarray) -> float:
    """max(|diff| / max(|ref|, 1e-6)), with one temporary array, not three."""
    rel = np.atleast_1d(np.abs(ref))
    np.maximum(rel, 1e-6, out=rel)
    np.divide(diff, rel, out=rel)
    return float(rel.max())


def _paired(
    reference: str, candidate: str, ref: Mapping[str, np.ndarray], cand: Mapping[str, np.ndarray]
) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Outputs paired by name when both sides use the same names, else by position."""
    if set(ref) == set(cand):
        names = list(ref)
        return names, [np.asarray(ref[n]) for n in names], [np.asarray(cand[n]) for n in names]
    if len(ref) != len(cand):
        raise ValidationError(
            f"{reference} returned {len(ref)} outputs {list(ref)}, "
            f"{candidate} returned {len(cand)} {list(cand)}"
        )
    return list(cand), [np.asarray(v) for v in ref.values()], [np.asarray(v) for v in cand.values()]


def compare_results(
    reference: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    candidate: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    tolerance: str | Tolerance = "fp32",
    *,
    names: tuple[str, str] = ("reference", "candidate"),
    batch_sizes: Sequence[int] | None = None,
    seconds: float = 0.0,
) -> ValidationReport:
    """The comparator: outputs already computed, compared per output over every batch.

    ``reference`` and ``candidate``: one batch's outputs (name -> array) or a list of
    batches, in the same order on both sides. Outputs pair by name, or by position when the
    two sides name them differently. ``tolerance``: a ``PRESETS`` name or a ``Tolerance``.
    ``batch_sizes``: each batch's size (default: the first output's first axis).
    ``compare`` runs two runners and calls this; so does every other check in the package.
    """
    tol = get_tolerance(tolerance)
    refs = [reference] if isinstance(reference, Mapping) else list(reference)
    cands = [candidate] if isinstance(candidate, Mapping) else list(candidate)
    if len(refs) != len(cands):
        raise ValidationError(f"{len(refs)} reference batches but {len(cands)} candidate batches")
    first = refs
    detections = _detections(refs, cands, tol)
    if detections is not None:  # the other outputs, if any, elementwise
        used = set(detections[1])
        refs = [{k: v for k, v in r.items() if k not in used} for r in refs]
        cands = [{k: v for k, v in c.items() if k not in used} for c in cands]
    pairs = []
    out_names: list[str] = []
    for r, c in zip(refs, cands, strict=True):
        out_names, rs, cs = _paired(names[0], names[1], r, c)
        pairs.append((rs, cs))
    outputs = [
        compare_outputs(name, [p[0][i] for p in pairs], [p[1][i] for p in pairs], tol)
        for i, name in enumerate(out_names)
    ]
    sizes = list(batch_sizes) if batch_sizes is not None else [_batch_of(r) for r in first]
    by_batch: dict[int, float] = {}
    for size, (rs, cs) in zip(sizes, pairs, strict=True):
        worst = max(
            (
                float(np.abs(c.astype(np.float64) - r).max(initial=0.0))
                if c.shape == r.shape
                else np.inf
                for r, c in zip(rs, cs, strict=True)
            ),
            default=0.0,
        )
        by_batch[size] = max(by_batch.get(size, 0.0), worst)
    return ValidationReport(
        reference=names[0],
        candidate=names[1],
        tolerance=tol,
        outputs=tuple(outputs),
        batch_sizes=tuple(dict.fromkeys(sizes)),
        num_samples=sum(sizes),
        max_abs_by_batch=by_batch,
        seconds=seconds,
        detections=None if detections is None else detections[0],
    )


def _batch_of(outputs: Mapping[str, Any]) -> int:
    """A batch's size: its first output's first axis (``num_detections`` for detections)."""
    value = outputs.get("num_detections", next(iter(outputs.values()), None))
    return int(np.shape(value)[0]) if value is not None and np.ndim(value) else 1


def _detections(
    refs: Sequence[Mapping[str, Any]], cands: Sequence[Mapping[str, Any]], tol: Tolerance
) -> tuple[DetectionComparison, tuple[str, ...]] | None:
    """Both sides' detections matched by IoU, and the outputs that held them; None when
    the outputs are not detections on both sides."""
    ref_dets = [split_detections(r) for r in refs]
    cand_dets = [split_detections(c) for c in cands]
    if not refs or any(d is None for d in (*ref_dets, *cand_dets)):
        return None
    preset = tol.name if tol.name in DETECTION_PRESETS else "fp32"
    report = compare_detections(
        [d for ds in ref_dets for d in ds or ()],
        [d for ds in cand_dets for d in ds or ()],
        preset,
    )
    layout = detection_layout(list(refs[0]))
    return report, PADDED_OUTPUTS if layout == "padded" else LIST_OUTPUTS


def compare(
    reference: Runner,
    candidate: Runner,
    inputs: Iterable[Any] | Any | None = None,
    tolerance: str | Tolerance = "fp32",
    *,
    batch_sizes: Sequence[int] = VALIDATE_BATCH_SIZES,
    seed: int = 0,
    signature: Signature | None = None,
) -> ValidationReport:
    """Run two runners on the same inputs and compare every output, per output and batch.

    ``inputs``: the batches to use (a list of batches, each an array, a tuple in input
    order or a dict by name; or one array/dict), for example real data. By default,
    random inputs from ``signature`` (else the reference's own specs): one batch per
    entry of ``batch_sizes``, and every other dynamic dim (sequence length, image size)
    takes several sizes across the batches (``Signature.variations``). Outputs pair by
    name, or by position when the two runners name them differently.
    """
    tol = get_tolerance(tolerance)
    ref_names = [s.name for s in reference.inputs]
    cand_names = [s.name for s in candidate.inputs]
    if ref_names != cand_names:
        raise ValidationError(
            f"the models take different inputs: {[str(s) for s in reference.inputs]} vs "
            f"{[str(s) for s in candidate.inputs]}"
        )
    if inputs is None:
        # valid inputs from the model's contract where either side has one
        sig = signature or (candidate if candidate.contract else reference).signature()
        batches = sig.variations(batch_sizes, seed)
    else:
        batches = as_batches(inputs, reference.inputs)
    notes: tuple[str, ...] = ()
    contract = candidate.contract or reference.contract
    if inputs is not None and contract is not None and contract.defaults:
        filled = [fill_defaults(b, reference.inputs, contract.defaults) for b in batches]
        batches = [b for b, _ in filled]
        names = sorted({n for _, f in filled for n in f})
        if names:
            values = ", ".join(f"{n}={contract.defaults[n]:g}" for n in names)
            notes = (f"the data has no {', '.join(names)}: filled with {values}, as "
                     "transformers fills it",)  # fmt: skip
    start = time.perf_counter()
    # one side in memory at a time: the other's session (opened to read its inputs) is
    # freed while this one runs, so a model of N bytes is held once, not twice
    candidate.release()
    with reference:
        refs = [_run(reference, feeds) for feeds in batches]
    reference.release()
    with candidate:
        cands = [_run(candidate, feeds) for feeds in batches]
    report = compare_results(
        refs, cands, tol, names=(reference.name, candidate.name),
        batch_sizes=[batch_size_of(b) or 0 for b in batches],
        seconds=time.perf_counter() - start,
    )  # fmt: skip
    return dataclasses.replace(report, dim_sizes=_dim_sizes(reference.inputs, batches), notes=notes)


def _dim_sizes(specs: Sequence[Any], batches: Sequence[Feeds]) -> dict[str, tuple[int, ...]]:
    """The sizes each symbolic dim took across ``batches``, the batch dim first."""
    seen: dict[str, list[int]] = {}
    for spec in specs:
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str):
                for feeds in batches:
                    value = feeds.get(spec.name)
                    if value is not None and axis < value.ndim:
                        seen.setdefault(dim, []).append(int(value.shape[axis]))
    return {name: tuple(dict.fromkeys(sizes)) for name, sizes in seen.items()}


def _run(runner: Runner, feeds: Feeds) -> dict[str, np.ndarray]:
    """``runner.infer``, with a failure that names the runner and the input shapes."""
    try:
        return runner.infer(feeds)
    except OnnxDeployError:
        raise
    except Exception as e:
        shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
        first = first_line(e)
        raise ValidationError(
            f"{runner.name} failed on inputs {shapes}: {type(e).__name__}: {first}. If a "
            "dynamic dim cannot take that size, declare its range (CLI: --dim NAME=MIN:MAX; "
            "library: signature=Signature(..., dims=...)) or pass real inputs."
        ) from e


def onnx_runner(model: Any, device: str) -> Runner:
    if isinstance(model, Runner):
        return model
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    # inputs, outputs and contract read without running it (a large file's from its
    # graph on the CPU: its session opens when it runs), and any session opened to read
    # them released until it runs: the next model opens alone and compare holds one
    # side's weights at a time (both sessions stayed open, and fuse on the 600M decoder
    # peaked at 4.0x its file)
    runner = OnnxRuntimeRunner(model, device=device, name=str(model), open_now=False)
    runner.release()
    return runner


def compare_onnx(
    reference: str | os.PathLike[str] | Runner,
    candidate: str | os.PathLike[str] | Runner,
    inputs: Iterable[Any] | None = None,
    precision: str | Tolerance = "fp32",
    *,
    device: str = "cpu",
    **options: Any,
) -> ValidationReport:
    """Two ONNX models (before and after slimming or quantization) on ONNX Runtime.
    ``options``: ``compare``'s (``batch_sizes``, ``seed``, ``signature``)."""
    ref, cand = onnx_runner(reference, device), onnx_runner(candidate, device)
    return compare(ref, cand, inputs, precision, **options)
