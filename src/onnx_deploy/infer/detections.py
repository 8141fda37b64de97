"""Detections as outputs: recognise them, match them by IoU, and score them with mAP.

A detector's outputs are not tensors to compare value by value. How many boxes come out,
and in which order, depends on the data: one score a hair above the threshold on one side
adds a box there and shifts every box after it, so an elementwise comparison fails on a
correct model, and passes a wrong one whenever both sides find nothing. Here two sides'
detections are matched per image and per class by IoU (greedy, best reference score
first), and the report says what matched, what did not on each side, and how far the
matched boxes (pixels) and scores are apart.

Two layouts are recognised:

- padded, as TensorRT's EfficientNMS plugin and Triton clients use it (what
  ``onnx_deploy.convert.surgery.add_nms`` writes): ``num_detections [B,1]``,
  ``boxes [B,K,4]`` (x1, y1, x2, y2), ``scores [B,K]``, ``classes [B,K]``;
- one image's variable-length lists, as torchvision's detectors return them:
  ``boxes [n,4]``, ``scores [n]``, ``labels [n]``.

mAP@0.5 on labelled data is pycocotools' ``COCOeval`` (the reference implementation the
field reports with), not a re-implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnx_deploy.core.errors import ValidationError
from onnx_deploy.core.results import Result

PADDED_OUTPUTS = ("num_detections", "boxes", "scores", "classes")
SAME_BOX_PX = 0.5  # corners this close (pixels) are one box, even a box of no area
LIST_OUTPUTS = ("boxes", "scores", "labels")
WHY_NOT_ELEMENTWISE = (
    "the outputs are detections, whose count and order depend on the data: matched by IoU "
    "per image and class instead of compared elementwise"
)


@dataclass(frozen=True)
class Detections:
    """One image's detections: ``boxes`` [n, 4] (x1, y1, x2, y2, pixels), ``scores`` [n],
    ``classes`` [n] (integers)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def detection_layout(names: Sequence[str]) -> str | None:
    """``"padded"``, ``"list"`` or None, from a model's output names."""
    if all(n in names for n in PADDED_OUTPUTS):
        return "padded"
    if all(n in names for n in LIST_OUTPUTS):
        return "list"
    return None


def split_detections(outputs: Mapping[str, Any]) -> list[Detections] | None:
    """Per-image detections from one batch of outputs; None when they are not detections."""
    layout = detection_layout(list(outputs))
    if layout == "padded":
        num = np.asarray(outputs["num_detections"]).reshape(-1).astype(np.int64)
        boxes, scores = np.asarray(outputs["boxes"]), np.asarray(outputs["scores"])
        classes = np.asarray(outputs["classes"])
        if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.ndim != 2 or classes.ndim != 2:
            return None
        return [
            Detections(
                boxes[i, : num[i]].astype(np.float64),
                scores[i, : num[i]].astype(np.float64),
                classes[i, : num[i]].astype(np.int64),
            )
            for i in range(len(num))
        ]
    if layout == "list":
        boxes, scores = np.asarray(outputs["boxes"]), np.asarray(outputs["scores"])
        labels = np.asarray(outputs["labels"])
        if boxes.ndim != 2 or boxes.shape[-1] != 4 or scores.ndim != 1 or labels.ndim != 1:
            return None
        return [
            Detections(boxes.astype(np.float64), scores.astype(np.float64), labels.astype(np.int64))
        ]
    return None


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [n, 4] with every box in ``b`` [m, 4] (x1, y1, x2, y2);
    0 for boxes of no area, as ONNX's NonMaxSuppression has it."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Centre, width, height (YOLO's layout) to corners."""
    b = np.asarray(boxes)
    half = b[..., 2:] / 2
    return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)


def reference_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
) -> list[Detections]:
    """What ``add_nms``'s graph computes, in numpy: per image and per class, boxes scoring
    above ``score_threshold``, greedy NMS (a box is dropped when its IoU with a kept box
    of the same class is above ``iou_threshold``), at most ``max_detections`` per class;
    then the ``max_detections`` best of the image. ``boxes`` [B, N, 4] corners,
    ``scores`` [B, N, C]."""
    out = []
    for b in range(boxes.shape[0]):
        keep_boxes, keep_scores, keep_classes = [], [], []
        for c in range(scores.shape[2]):
            s = scores[b, :, c].astype(np.float64)
            idx = np.flatnonzero(s > score_threshold)
            idx = idx[np.argsort(-s[idx], kind="stable")]
            kept: list[int] = []
            for i in idx:
                if len(kept) >= max_detections:
                    break
                if kept and box_iou(boxes[b, i], boxes[b, kept]).max() > iou_threshold:
                    continue
                kept.append(int(i))
            keep_boxes += [boxes[b, i] for i in kept]
            keep_scores += [s[i] for i in kept]
            keep_classes += [c] * len(kept)
        order = np.argsort(-np.asarray(keep_scores, np.float64), kind="stable")[:max_detections]
        out.append(
            Detections(
                np.asarray(keep_boxes, np.float64).reshape(-1, 4)[order],
                np.asarray(keep_scores, np.float64)[order],
                np.asarray(keep_classes, np.int64)[order],
            )
        )
    return out


def pad_detections(dets: Sequence[Detections], max_detections: int) -> dict[str, np.ndarray]:
    """Per-image detections in the padded layout (zeros after ``num_detections``)."""
    b, k = len(dets), max_detections
    out = {
        "num_detections": np.zeros((b, 1), np.int32),
        "boxes": np.zeros((b, k, 4), np.float32),
        "scores": np.zeros((b, k), np.float32),
        "classes": np.zeros((b, k), np.int32),
    }
    for i, d in enumerate(dets):
        n = min(len(d), k)
        out["num_detections"][i, 0] = n
        out["boxes"][i, :n] = d.boxes[:n]
        out["scores"][i, :n] = d.scores[:n]
        out["classes"][i, :n] = d.classes[:n]
    return out


# --- matching two sides ------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionTolerance:
    """Pass criteria for detections: the share of detections matched (of the larger
    side), the largest corner error of a matched pair in pixels and of its score
    (``None``: not judged)."""

    name: str
    min_matched: float
    max_box_error: float | None
    max_score_error: float | None


# fp32: the same arithmetic reordered: a box moves by ~1e-4 px, a detection may appear on
# one side only when its score sits within float noise of the threshold or two boxes'
# IoU within noise of the NMS threshold. fp16 moves boxes and scores further and flips
# more such borderline detections, bf16 (3 fewer mantissa bits) further still. int8, like
# a classifier's (judged by direction and decisions, not values), is judged by what
# matches: one large box's corner moves many pixels while the detection stays right. Accuracy (mAP on labelled data) is the judge of
# both lower precisions.
DETECTION_PRESETS: dict[str, DetectionTolerance] = {
    "same-graph": DetectionTolerance("same-graph", 1.0, 1e-3, 1e-4),
    "fp32": DetectionTolerance("fp32", 0.98, 0.05, 1e-3),
    "fp16": DetectionTolerance("fp16", 0.9, 2.0, 0.02),
    "bf16": DetectionTolerance("bf16", 0.9, 4.0, 0.05),
    "int8": DetectionTolerance("int8", 0.85, None, None),
}


def detection_tolerance(precision: str | DetectionTolerance) -> DetectionTolerance:
    if isinstance(precision, DetectionTolerance):
        return precision
    try:
        return DETECTION_PRESETS[precision]
    except KeyError:
        raise ValueError(
            f"no detection tolerance for {precision!r}; use one of {sorted(DETECTION_PRESETS)}"
        ) from None


@dataclass(frozen=True)
class DetectionComparison(Result):
    """Two sides' detections matched by IoU over every image."""

    COMPUTED = (
        "ok",
        "matched_fraction",
        "reason",
        "warning",
        "unmatched_reference",
        "unmatched_candidate",
    )

    images: int
    reference_count: int
    candidate_count: int
    matched: int
    max_box_error: float  # pixels, over matched pairs
    max_score_error: float
    iou_threshold: float
    tolerance: DetectionTolerance

    @property
    def unmatched_reference(self) -> int:
        return self.reference_count - self.matched

    @property
    def unmatched_candidate(self) -> int:
        return self.candidate_count - self.matched

    @property
    def matched_fraction(self) -> float:
        larger = max(self.reference_count, self.candidate_count)
        return 1.0 if larger == 0 else self.matched / larger

    @property
    def reason(self) -> str:
        t, why = self.tolerance, []
        if self.matched_fraction < t.min_matched:
            why.append(f"matched {100 * self.matched_fraction:.1f}% < {100 * t.min_matched:.0f}%")
        if t.max_box_error is not None and self.max_box_error > t.max_box_error:
            why.append(f"box error {self.max_box_error:.3g} px > {t.max_box_error:g}")
        if t.max_score_error is not None and self.max_score_error > t.max_score_error:
            why.append(f"score error {self.max_score_error:.3g} > {t.max_score_error:g}")
        return "; ".join(why)

    @property
    def ok(self) -> bool:
        return not self.reason

    @property
    def warning(self) -> str:
        if self.reference_count == 0 and self.candidate_count == 0:
            return "no detections on either side: this proves nothing; use real images"
        return ""

    def line(self) -> str:
        mark = "ok" if self.ok else f"FAIL ({self.reason})"
        if self.warning:
            mark += f"  [{self.warning}]"
        return (
            f"detections       {self.matched}/{max(self.reference_count, self.candidate_count)} "
            f"matched at IoU >= {self.iou_threshold:g} ({100 * self.matched_fraction:.1f}%), "
            f"unmatched {self.unmatched_reference} reference / {self.unmatched_candidate} "
            f"candidate, max box error {self.max_box_error:.2e} px, max score error "
            f"{self.max_score_error:.2e}  {mark}"
        )

    def summary(self) -> str:
        return (
            f"detections {'PASS' if self.ok else 'FAIL'} ({self.tolerance.name} tolerance, "
            f"{self.images} images)\n  {self.line()}"
        )


def match_detections(
    reference: Detections, candidate: Detections, iou_threshold: float = 0.5
) -> list[tuple[int, int]]:
    """Greedy matching of one image: reference detections, best score first, each take
    the unmatched candidate of the same class with the highest IoU (at least
    ``iou_threshold``; two boxes whose corners agree within ``SAME_BOX_PX`` count as the
    same, whatever their area). Returns (reference index, candidate index) pairs."""
    pairs: list[tuple[int, int]] = []
    if len(reference) == 0 or len(candidate) == 0:
        return pairs
    iou = box_iou(reference.boxes, candidate.boxes)
    # boxes clipped to an image edge have no area (IoU 0) but are still one detection when
    # their corners agree to within half a pixel
    corner = np.abs(reference.boxes[:, None, :] - candidate.boxes[None, :, :]).max(-1)
    iou = np.where(corner <= SAME_BOX_PX, np.maximum(iou, 1.0), iou)
    iou[reference.classes[:, None] != candidate.classes[None, :]] = -1.0
    taken = np.zeros(len(candidate), bool)
    for r in np.argsort(-reference.scores, kind="stable"):
        row = np.where(taken, -1.0, iou[r])
        c = int(row.argmax())
        if row[c] >= iou_threshold:
            taken[c] = True
            pairs.append((int(r), c))
    return pairs


def compare_detections(
    reference: Sequence[Detections],
    candidate: Sequence[Detections],
    tolerance: str | DetectionTolerance = "fp32",
    *,
    iou_threshold: float = 0.5,
) -> DetectionComparison:
    """Match two sides' detections image by image (``match_detections``) and judge them
    with ``tolerance`` (a ``DETECTION_PRESETS`` name or a ``DetectionTolerance``)."""
    if len(reference) != len(candidate):
        raise ValidationError(
            f"{len(reference)} images of reference detections but {len(candidate)} of candidate"
        )
    if not 0 < iou_threshold <= 1:
        raise ValidationError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    matched, box_err, score_err = 0, 0.0, 0.0
    for r, c in zip(reference, candidate, strict=True):
        pairs = match_detections(r, c, iou_threshold)
        matched += len(pairs)
        for i, j in pairs:
            box_err = max(box_err, float(np.abs(r.boxes[i] - c.boxes[j]).max()))
            score_err = max(score_err, float(abs(r.scores[i] - c.scores[j])))
    return DetectionComparison(
        images=len(reference),
        reference_count=sum(len(d) for d in reference),
        candidate_count=sum(len(d) for d in candidate),
        matched=matched,
        max_box_error=box_err,
        max_score_error=score_err,
        iou_threshold=iou_threshold,
        tolerance=detection_tolerance(tolerance),
    )


# --- accuracy on labelled data -----------------------------------------------------------


def mean_average_precision(
    predictions: Sequence[Detections],
    ground_truth: Sequence[Detections],
    *,
    iou_threshold: float = 0.5,
) -> float:
    """mAP at one IoU threshold (COCO's 101-point interpolation, averaged over the classes
    present in ``ground_truth``), computed by pycocotools' ``COCOeval``.
    ``ground_truth``: per image, its labelled boxes and classes (scores ignored)."""
    from onnx_deploy.core.extras import require

    require("pycocotools", "mAP on labelled detections")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(predictions) != len(ground_truth):
        raise ValidationError(
            f"{len(predictions)} images of predictions but {len(ground_truth)} of ground truth"
        )
    classes = sorted({int(c) for g in ground_truth for c in g.classes})
    if not classes:
        raise ValidationError("the ground truth holds no boxes: mAP is undefined")
    images, annotations, results = [], [], []
    for i, (p, g) in enumerate(zip(predictions, ground_truth, strict=True)):
        images.append({"id": i})
        for box, cls in zip(g.boxes, g.classes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": i, "category_id": int(cls),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            })  # fmt: skip
        for box, score, cls in zip(p.boxes, p.scores, p.classes, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({
                "image_id": i, "category_id": int(cls),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score),
            })  # fmt: skip
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c} for c in classes],
    }
    with _quiet():
        gt.createIndex()
        if not results:
            return 0.0
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([iou_threshold])
        ev.params.maxDets = [1000, 1000, 1000]  # every detection counts, as the model emits
        ev.params.areaRng = [ev.params.areaRng[0]]
        ev.params.areaRngLbl = ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # [recall points, classes]
    per_class = [precision[:, k][precision[:, k] > -1] for k in range(precision.shape[1])]
    return float(np.mean([p.mean() if p.size else 0.0 for p in per_class]))


def _quiet() -> Any:
    """pycocotools prints progress to stdout; keep it out of a command's output."""
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())
