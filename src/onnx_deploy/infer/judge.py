"""Judging a candidate against its reference: the comparator's verdict plus the task's own
measure, in one place.

``compare`` (the one comparator) says whether two runners agree within a tolerance;
``task_accuracy`` (the one accuracy function) measures a runner on labelled data: top-1
accuracy for a classifier, mAP@0.5 for a detector with labelled boxes (pycocotools'
COCOeval). ``judge`` puts both together and says which criteria failed, with the numbers
that decide each one, written so that no shown value contradicts its rule. The report
card's evaluator judges every candidate here, and a quantization run alone measures its
accuracy here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

import numpy as np

from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.feeds import concatenate
from onnx_deploy.core.results import Result
from onnx_deploy.core.timing import decisive
from onnx_deploy.infer.compare import Tolerance
from onnx_deploy.infer.compare import ValidationReport
from onnx_deploy.infer.compare import compare
from onnx_deploy.infer.compare import get_tolerance
from onnx_deploy.infer.compare import top1_accuracy
from onnx_deploy.infer.runners.base import Runner


def is_box_labels(labels: Any) -> bool:
    """Labels that are per-image boxes (``Detections``): accuracy is then mAP@0.5."""
    from onnx_deploy.infer.detections import Detections

    return (
        isinstance(labels, (list, tuple))
        and bool(labels)
        and all(isinstance(x, Detections) for x in labels)
    )


def task_accuracy(runner: Runner, batches: Sequence[Any], labels: Any) -> float:
    """Top-1 accuracy of a classifier (its first output, argmax over axis 1), or mAP@0.5
    of a detector (``labels``: per-image ``Detections``), over the validation batches."""
    if not is_box_labels(labels):
        scores = runner.infer(concatenate(list(batches)))[runner.output_names[0]]
        labels = np.asarray(labels)
        if len(labels) != len(scores):
            raise OnnxDeployError(f"{len(labels)} labels for {len(scores)} validation samples")
        return top1_accuracy(scores, labels)
    from onnx_deploy.infer.detections import mean_average_precision
    from onnx_deploy.infer.detections import split_detections

    found = []
    for batch in batches:
        dets = split_detections(runner.infer(batch))
        if dets is None:
            raise OnnxDeployError(
                "box labels need a detector with detections out (num_detections, boxes, "
                "scores, classes): add NMS first (onnx-deploy edit postprocess --nms)"
            )
        found += dets
    return mean_average_precision(found, list(labels))


def tolerance_for(precision: str, min_agreement: float | str | None = "preset") -> Tolerance:
    """The precision's preset, with the top-1 agreement it requires replaced by
    ``min_agreement`` (``"preset"``: keep it; ``None``: not judged)."""
    tol = get_tolerance(precision)
    return tol if min_agreement == "preset" else replace(tol, min_top1=min_agreement)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Judgement(Result):
    """A candidate against its reference: the comparison, the task measure, and which
    criteria failed (``fails``, each with the numbers that decide it)."""

    COMPUTED = ("passed",)
    HIDDEN = ("report",)

    max_abs: float | None
    min_cosine: float | None
    agreement: float | None  # top-1 agreement, or the share of detections matched by IoU
    accuracy: float | None  # with labels: top-1 accuracy or mAP@0.5
    reference_accuracy: float | None
    fails: tuple[str, ...] = ()
    report: ValidationReport | None = field(default=None, compare=False)

    @property
    def passed(self) -> bool:
        return not self.fails

    def summary(self) -> str:
        return "PASS" if self.passed else "FAIL " + "; ".join(self.fails)


def judge(
    reference: Runner,
    candidate: Runner,
    batches: Sequence[Any],
    tolerance: Tolerance | str,
    *,
    labels: Any = None,
    reference_accuracy: float | None = None,
    max_accuracy_drop: float | None = None,
) -> Judgement:
    """Compare ``candidate`` with ``reference`` on ``batches`` (the tolerance's elementwise,
    cosine and top-1 checks, or IoU matching for detections) and, with ``labels``, measure
    its accuracy: more than ``max_accuracy_drop`` points below the reference's
    (``reference_accuracy``, measured here when not given) fails."""
    report = compare(reference, candidate, list(batches), tolerance)
    dets = report.detections
    first = report.outputs[0] if report.outputs else None
    fails = [f"detections: {dets.reason}"] if dets is not None and not dets.ok else []
    if first is not None and not first.ok and dets is None:
        fails.append(first.reason)
    rest = report.outputs[1:] if dets is None else report.outputs
    fails += [f"{o.name}: {o.reason}" for o in rest if not o.ok]
    accuracy = None
    if labels is not None:
        if reference_accuracy is None:
            reference_accuracy = task_accuracy(reference, batches, labels)
        accuracy = task_accuracy(candidate, batches, labels)
        drop = 100 * (reference_accuracy - accuracy)
        if max_accuracy_drop is not None and drop > max_accuracy_drop:
            fails.append(
                f"accuracy {100 * accuracy:.1f}% is {decisive(drop, max_accuracy_drop)} points "
                f"below {reference.name}'s {100 * reference_accuracy:.1f}% (at most "
                f"{max_accuracy_drop:g} allowed)"
            )
    if dets is not None:
        agreement: float | None = dets.matched_fraction
    else:
        agreement = None if first is None else first.top1_agreement
    return Judgement(
        max_abs=report.max_abs,
        min_cosine=None if first is None or dets is not None else first.min_cosine,
        agreement=agreement,
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
        fails=tuple(fails),
        report=report,
    )
