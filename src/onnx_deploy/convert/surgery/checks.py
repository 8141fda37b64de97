"""Numeric checks of an edit: the same inputs through the model before and after."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from onnx_deploy.convert.surgery.graph import SurgeryError
from onnx_deploy.convert.surgery.graph import expose
from onnx_deploy.convert.surgery.graph import io_names
from onnx_deploy.convert.surgery.processing import image_spec
from onnx_deploy.convert.surgery.processing import preprocessing_options
from onnx_deploy.convert.surgery.processing import reference_preprocess
from onnx_deploy.core.files import over_protobuf_limit
from onnx_deploy.core.files import write_onnx
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.compare import compare_results
from onnx_deploy.infer.modelinfo import graph_io

# --- running and checking --------------------------------------------------------------


def open_session(model: onnx.ModelProto, folder: str) -> Any:
    from onnx_deploy.infer.sessions import create_session

    if over_protobuf_limit(model):
        path = Path(folder) / f"m{len(os.listdir(folder))}.onnx"
        write_onnx(model, path, external_data=True)
        return create_session(path, "cpu")
    return create_session(model.SerializeToString(), "cpu")


def run_session(session: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a session; a failure raises without onnxruntime also logging it to stderr."""
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds), quiet), strict=True))


def random_feeds(specs: Sequence[TensorSpec], sizes: Mapping[str, int], seed: int) -> Any:
    from onnx_deploy.core.signature import Signature

    sig = Signature.from_specs(specs)
    names = {d.name for d in sig.dims}
    known = {k: v for k, v in sizes.items() if k in names}
    return sig.examples({**dict.fromkeys(names, 2), **known}, seed=seed)


@dataclass(frozen=True)
class EditCheck:
    """How an edit was checked numerically: which outputs were compared, the largest
    absolute difference, and whether it is within float noise (the ``same-graph`` tolerance)."""

    compared: tuple[str, ...]
    max_abs: float
    ok: bool
    how: str

    def line(self) -> str:
        mark = "ok" if self.ok else "CHANGED"
        return f"{self.how}: {', '.join(self.compared)} max abs {self.max_abs:.1e} {mark}"


def _close(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], how: str) -> EditCheck:
    """An edit that only rewires the graph must give the same outputs to within float
    noise: the ``same-graph`` tolerance (``onnx_deploy.infer.compare.PRESETS``)."""
    for name, a, b in pairs:
        if a.shape != b.shape:
            raise SurgeryError(f"{name}: shape changed from {a.shape} to {b.shape}")
    report = compare_results({n: a for n, a, _ in pairs}, {n: b for n, _, b in pairs}, "same-graph")
    return EditCheck(tuple(n for n, _, _ in pairs), report.max_abs, report.ok, how)


def check_same_outputs(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    *,
    input_map: Mapping[str, str] | None = None,
    output_map: Mapping[str, str] | None = None,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> EditCheck:
    """Run both models on the same random inputs (renamed by ``input_map``) and compare
    the outputs they share (``output_map``: before's name -> after's)."""
    input_map, output_map = dict(input_map or {}), dict(output_map or {})
    b_ins, b_outs = graph_io(before)
    _, a_outs = graph_io(after)
    feeds = random_feeds(b_ins, sizes or {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        ref = run_session(open_session(before, tmp), feeds)
        got = run_session(
            open_session(after, tmp), {input_map.get(k, k): v for k, v in feeds.items()}
        )
    after_names = {s.name for s in a_outs}
    pairs = [
        (output_map.get(s.name, s.name), ref[s.name], got[output_map.get(s.name, s.name)])
        for s in b_outs
        if output_map.get(s.name, s.name) in after_names
    ]
    if not pairs:
        raise SurgeryError("the edited model shares no output with the original to compare")
    shape = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
    return _close(pairs, f"same random inputs ({shape})")


def check_preprocessing(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    *,
    image_name: str | None = None,
    seed: int = 0,
    **options: Any,
) -> EditCheck:
    """Raw pixels through the edited model vs the numpy preprocessing then the original
    model; ``options`` are ``preprocessing_graph``'s (its defaults apply). With ``resize``
    the pixels are sized so that resizing is the identity (shorter side already
    ``resize``): the resampling itself is onnxruntime's Resize (compared with
    torchvision's in notebook 07)."""
    o = preprocessing_options(options)
    pixels_name, layout, resize, crop = o["pixels_name"], o["layout"], o["resize"], o["crop"]
    mean, std, scale = o["mean"], o["std"], o["scale"]
    image = image_spec(before, image_name)
    pix = next(s for s in graph_io(after)[0] if s.name == pixels_name)
    channels = int(image.shape[1])  # type: ignore[arg-type]
    if resize is not None:
        hw = (resize, resize + 3) if crop is None or crop[1] < resize + 3 else (resize, crop[1])
    else:
        hw = tuple(  # type: ignore[assignment]
            int(d) if isinstance(d, int) else (crop[i] + 2 if crop else 16)
            for i, d in enumerate(pix.shape[1:3] if layout == "NHWC" else pix.shape[2:4])
        )
    shape = (2, *hw, channels) if layout == "NHWC" else (2, channels, *hw)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image_crop = crop
    if resize is not None and crop is None:
        image_crop = (int(image.shape[2]), int(image.shape[3]))  # type: ignore[arg-type]
    x = reference_preprocess(
        pixels, layout=layout, crop=image_crop, mean=mean, std=std, scale=scale
    )
    with tempfile.TemporaryDirectory() as tmp:
        ref = run_session(open_session(before, tmp), {image.name: x})
        got = run_session(open_session(after, tmp), {pixels_name: pixels})
    pairs = [(n, ref[n], got[n]) for n in ref if n in got]
    return _close(pairs, f"uint8 pixels {list(shape)} vs numpy preprocessing + original")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_postprocessing(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    *,
    output_name: str | None = None,
    softmax: bool = True,
    top_k: int | None = None,
    seed: int = 0,
    **_: Any,
) -> EditCheck:
    """The edited model's probabilities / top-k vs numpy on the original's scores."""
    b_ins, b_outs = graph_io(before)
    name = output_name or b_outs[0].name
    feeds = random_feeds(b_ins, {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        logits = run_session(open_session(before, tmp), feeds)[name]
        got = run_session(open_session(after, tmp), feeds)
    probs = _softmax(logits.astype(np.float64)).astype(np.float32) if softmax else logits
    pairs = []
    if softmax:
        pairs.append(("probabilities", probs, got["probabilities"]))
    if top_k is not None:
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :top_k]
        pairs.append(("scores", np.take_along_axis(probs, order, -1), got["scores"]))
        pairs.append(("labels", order.astype(np.int64), got["labels"]))
    return _close(pairs, "vs numpy softmax/top-k of the original's scores")


def check_extract(
    before: onnx.ModelProto, after: onnx.ModelProto, *, seed: int = 0, **_: Any
) -> EditCheck:
    """The subgraph fed the original's own intermediate values, vs the original's."""
    sub_ins, sub_outs = graph_io(after)
    wanted = [s.name for s in (*sub_ins, *sub_outs)]
    b_ins, b_outs = io_names(before)
    exposed = expose(before, [n for n in wanted if n not in b_outs and n not in b_ins])
    feeds = random_feeds(graph_io(before)[0], {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        full = {**feeds, **run_session(open_session(exposed, tmp), feeds)}
        got = run_session(open_session(after, tmp), {s.name: full[s.name] for s in sub_ins})
    return _close(
        [(s.name, full[s.name], got[s.name]) for s in sub_outs],
        "fed the original's intermediate values",
    )


def check_merge(
    first: onnx.ModelProto,
    second: onnx.ModelProto,
    merged: onnx.ModelProto,
    io_map: Sequence[tuple[str, str]],
    seed: int = 0,
) -> EditCheck:
    """The merged model vs the two models run one after the other."""
    feeds = random_feeds(graph_io(first)[0], {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        mid = run_session(open_session(first, tmp), feeds)
        ref = run_session(open_session(second, tmp), {b: mid[a] for a, b in io_map})
        got = run_session(open_session(merged, tmp), feeds)
    return _close([(n, ref[n], got[n]) for n in ref if n in got], "vs the two models in turn")


def _synthetic_head(head: Any, settings: Any, seed: int) -> dict[str, np.ndarray]:
    """Raw detections with known content for the NMS graph alone: 2 images, boxes over a
    320-pixel square (many overlapping), scores uniform in [0, 1)."""
    rng = np.random.default_rng(seed)
    spec = head.head or head.scores
    c = head.num_classes or 3
    n = spec.shape[2] if head.head is not None else spec.shape[1]
    n = n if isinstance(n, int) else 300
    centre = rng.uniform(0, 320, (2, n, 2))
    size = rng.uniform(8, 96, (2, n, 2))
    scores = rng.uniform(0, 1, (2, n, c))
    if settings.box_format == "cxcywh":
        boxes = np.concatenate([centre, size], -1)
    else:
        boxes = np.concatenate([centre - size / 2, centre + size / 2], -1)
    if head.head is not None:
        dtype = np.float16 if head.head.dtype == "float16" else np.float32
        return {
            head.head.name: np.concatenate([boxes, scores], -1).transpose(0, 2, 1).astype(dtype)
        }
    return {head.boxes.name: boxes.astype(np.float32), head.scores.name: scores.astype(np.float32)}


def _numpy_nms(raw: Mapping[str, np.ndarray], head: Any, settings: Any) -> list[Any]:
    from onnx_deploy.infer.detections import cxcywh_to_xyxy
    from onnx_deploy.infer.detections import reference_nms

    if head.head is not None:
        h = raw[head.head.name].astype(np.float32).transpose(0, 2, 1)
        boxes, scores = h[..., :4], h[..., 4:]
    else:
        boxes, scores = raw[head.boxes.name], raw[head.scores.name]
    if settings.box_format == "cxcywh":
        boxes = cxcywh_to_xyxy(boxes)
    return reference_nms(
        boxes.astype(np.float32), scores.astype(np.float32),
        score_threshold=settings.score_threshold, iou_threshold=settings.iou_threshold,
        max_detections=settings.max_detections,
    )  # fmt: skip


def check_nms(
    before: onnx.ModelProto, after: onnx.ModelProto, head: Any, settings: Any, seed: int = 0
) -> EditCheck:
    """The NMS graph against numpy NMS (``reference_nms``), detections matched by IoU
    (``compare_detections``, fp32 tolerance): once on synthetic raw detections that
    overlap and cross the thresholds (the NMS graph alone), once on the edited model's
    random inputs through the original model."""
    from onnx_deploy.convert.surgery.detection import nms_graph
    from onnx_deploy.infer.detections import compare_detections
    from onnx_deploy.infer.detections import split_detections

    checks = []
    post = nms_graph(head, settings)
    synthetic = _synthetic_head(head, settings, seed)
    feeds = random_feeds(graph_io(before)[0], {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        got = run_session(open_session(post, tmp), synthetic)
        checks.append(compare_detections(_numpy_nms(synthetic, head, settings),
                                         split_detections(got) or [], "fp32"))  # fmt: skip
        raw = run_session(open_session(before, tmp), feeds)
        got = run_session(open_session(after, tmp), feeds)
        checks.append(compare_detections(_numpy_nms(raw, head, settings),
                                         split_detections(got) or [], "fp32"))  # fmt: skip
    worst = max(c.max_box_error for c in checks)
    counts = "/".join(f"{c.matched} of {c.reference_count}" for c in checks)
    return EditCheck(
        ("num_detections", "boxes", "scores", "classes"), worst, all(c.ok for c in checks),
        f"vs numpy NMS, matched by IoU ({counts} detections: synthetic, then the model's)",
    )  # fmt: skip


def check_letterbox(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    image_name: str | None = None,
    seed: int = 0,
    **options: Any,
) -> EditCheck:
    """Pixels narrower than the network (no resize, only padding) through the edited model
    vs numpy padding + scaling and the original model; boxes mapped back by the offset."""
    from onnx_deploy.convert.surgery.detection import reference_letterbox

    image = image_spec(before, image_name)
    h, w, c = int(image.shape[2]), int(image.shape[3]), int(image.shape[1])  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (1, h, max(1, w - 2 * (w // 8)), c), dtype=np.uint8)
    x, _, (left, top) = reference_letterbox(
        pixels, (h, w), options.get("pad_value", 114), options.get("scale", 1 / 255)
    )
    with tempfile.TemporaryDirectory() as tmp:
        ref = run_session(open_session(before, tmp), {image.name: x})
        got = run_session(open_session(after, tmp), {options.get("pixels_name", "pixels"): pixels})
    if "boxes" in ref and "boxes" in got and ref["boxes"].shape == got["boxes"].shape:
        shift = np.array([left, top, left, top], np.float32)
        limit = np.array([pixels.shape[2], h, pixels.shape[2], h], np.float32)
        ref["boxes"] = np.clip(ref["boxes"] - shift, 0, limit)
    pairs = [(n, ref[n], got[n]) for n in ref if n in got]
    return _close(pairs, f"uint8 pixels {list(pixels.shape)} vs numpy padding + original")
