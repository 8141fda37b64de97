"""Detection post- and preprocessing as ONNX graphs: NMS with a fixed-size output, letterbox.

The raw call ``add_nms`` builds on is ONNX's own operator::

    NonMaxSuppression(boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class,
                      iou_threshold, score_threshold) -> selected [M, 3] (batch, class, box)

Its output count ``M`` depends on the data, and it lists indices, not boxes. ``add_nms``
decodes the head's boxes (YOLO's centre/size, or corners), runs that operator per class,
gathers boxes, scores and classes, keeps each image's ``max_detections`` best and pads
them to the fixed-size layout of TensorRT's EfficientNMS plugin, which Triton clients
read too: ``num_detections`` int32 [B, 1], ``boxes`` float32 [B, K, 4] (x1, y1, x2, y2),
``scores`` float32 [B, K], ``classes`` int32 [B, K]; entries after ``num_detections`` are
zeros. Every other output (feature maps a model returns for training) is dropped.

``add_letterbox`` puts the usual detector preprocessing in front: uint8 NHWC pixels of any
size, resized keeping the aspect ratio, padded to the network size (grey 114), scaled; when
the model already has a ``boxes`` output, the boxes are mapped back to the original
image's pixels in the graph, so a client never sees the network's coordinates.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper

from onnx_deploy.convert.surgery.graph import SurgeryError
from onnx_deploy.convert.surgery.graph import fix_ir_version
from onnx_deploy.convert.surgery.graph import merge
from onnx_deploy.convert.surgery.graph import rename
from onnx_deploy.convert.surgery.processing import const_node
from onnx_deploy.convert.surgery.processing import image_spec
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import describe_all
from onnx_deploy.infer.detections import PADDED_OUTPUTS
from onnx_deploy.infer.modelinfo import default_opset
from onnx_deploy.infer.modelinfo import graph_io

METADATA_KEY = "onnx_deploy.detection"
BOX_FORMATS = ("cxcywh", "xyxy")


@dataclass(frozen=True)
class NmsSettings:
    """What ``add_nms`` put in the graph; stored in the model's metadata
    (``METADATA_KEY``) for the web page, Triton and validation to read."""

    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100
    box_format: str = "cxcywh"
    num_classes: int | None = None

    def check(self) -> None:
        if not 0.0 <= self.score_threshold < 1.0:
            raise SurgeryError(
                f"score_threshold must be in [0, 1) (scores are probabilities), got "
                f"{self.score_threshold}"
            )
        if not 0.0 < self.iou_threshold <= 1.0:
            raise SurgeryError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if int(self.max_detections) != self.max_detections or self.max_detections < 1:
            raise SurgeryError(
                f"max_detections must be a positive integer, got {self.max_detections}"
            )
        if self.box_format not in BOX_FORMATS:
            raise SurgeryError(
                f"box_format must be one of {', '.join(BOX_FORMATS)}, got {self.box_format!r}"
            )


def detection_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The settings ``add_nms`` and ``add_letterbox`` stored, or None."""
    for p in model.metadata_props:
        if p.key == METADATA_KEY:
            return dict(json.loads(p.value))
    return None


def _set_metadata(model: onnx.ModelProto, values: dict[str, Any]) -> None:
    old = detection_metadata(model) or {}
    for p in list(model.metadata_props):
        if p.key == METADATA_KEY:
            model.metadata_props.remove(p)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps({**old, **values}, sort_keys=True)


class NodeList:
    """Nodes of a graph being written: ``add`` one (its output name back, to chain) or a
    ``const``ant."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []

    def add(self, op: str, ins: list[str], out: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    def const(self, name: str, values: Any, dtype: Any = np.int64) -> str:
        self.nodes.append(const_node(name, values, dtype))
        return name


# --- finding the head ----------------------------------------------------------------------


@dataclass(frozen=True)
class DetectionHead:
    """Where a model's raw detections are: one ``[B, 4 + C, N]`` output (``head``, YOLO's
    layout), or ``boxes`` [B, N, 4] with ``scores`` [B, N, C]."""

    head: TensorSpec | None
    boxes: TensorSpec | None
    scores: TensorSpec | None
    num_classes: int | None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in (self.head, self.boxes, self.scores) if s is not None)

    def renamed(self, mapping: dict[str, str]) -> DetectionHead:
        def new(spec: TensorSpec | None) -> TensorSpec | None:
            return None if spec is None else replace(spec, name=mapping.get(spec.name, spec.name))

        return replace(self, head=new(self.head), boxes=new(self.boxes), scores=new(self.scores))


def _is_float3(s: TensorSpec) -> bool:
    return s.dtype in ("float32", "float16") and len(s.shape) == 3


def find_head(
    model: onnx.ModelProto,
    *,
    head: str | None = None,
    boxes: str | None = None,
    scores: str | None = None,
) -> DetectionHead:
    """The model's raw detection outputs: named, or found by shape (one 3-D float output
    whose middle dim is 5 or more and smaller than its last, or a ``[B, N, 4]`` and a
    ``[B, N, C]`` pair). Refused, listing the outputs, when there is none."""
    outs = {s.name: s for s in graph_io(model)[1]}

    def named(name: str, role: str) -> TensorSpec:
        if name not in outs:
            raise SurgeryError(
                f"{name!r} is not an output of the model; outputs: {describe_all(outs.values())}"
            )
        spec = outs[name]
        if not _is_float3(spec):
            raise SurgeryError(f"{spec} cannot be the {role}: it must be a 3-D float output")
        return spec

    if already := [n for n in ("num_detections", "labels") if n in outs]:
        raise SurgeryError(
            f"the model already returns detections ({', '.join(already)}): it has its NMS; "
            "validate it as it is"
        )
    if head is not None:
        h = named(head, "head [batch, 4 + classes, anchors]")
        c = h.shape[1]
        if isinstance(c, int) and c < 5:
            raise SurgeryError(f"{h} has {c} rows: a head needs 4 box values and 1 or more classes")
        return DetectionHead(h, None, None, c - 4 if isinstance(c, int) else None)
    if boxes is not None or scores is not None:
        if boxes is None or scores is None:
            raise SurgeryError("name both the boxes and the scores outputs, or neither")
        b, s = named(boxes, "boxes [batch, anchors, 4]"), named(scores, "scores")
        if b.shape[2] != 4:
            raise SurgeryError(f"{b} is not boxes: its last dim must be 4")
        return DetectionHead(None, b, s, s.shape[2] if isinstance(s.shape[2], int) else None)
    heads = [
        s
        for s in outs.values()
        if _is_float3(s)
        and isinstance(s.shape[1], int)
        and s.shape[1] >= 5
        and (not isinstance(s.shape[2], int) or s.shape[1] < s.shape[2])
    ]
    pairs = [
        (b, s)
        for b in outs.values()
        for s in outs.values()
        if b is not s and _is_float3(b) and _is_float3(s) and b.shape[2] == 4 and s.shape[2] != 4
    ]
    if len(heads) == 1:
        c = int(heads[0].shape[1])  # type: ignore[arg-type]
        return DetectionHead(heads[0], None, None, c - 4)
    if len(pairs) == 1 and not heads:
        b, s = pairs[0]
        return DetectionHead(None, b, s, s.shape[2] if isinstance(s.shape[2], int) else None)
    found = "several candidates" if heads or pairs else "no box output"
    raise SurgeryError(
        f"{found}: NMS needs one [batch, 4 + classes, anchors] output or a [batch, anchors, 4] "
        f"boxes output with [batch, anchors, classes] scores; the model's outputs: "
        f"{describe_all(outs.values())}. Name them (CLI: --head NAME, or --boxes and --scores)"
    )


# --- NMS -------------------------------------------------------------------------------------


def nms_graph(head: DetectionHead, settings: NmsSettings, *, opset: int = 18) -> onnx.ModelProto:
    """A standalone graph from a model's raw detection outputs to the padded layout."""
    settings.check()
    k = int(settings.max_detections)
    nodes = NodeList()
    n, node, const = nodes.nodes, nodes.add, nodes.const

    inputs = []
    if head.head is not None:
        h = head.head
        inputs.append(helper.make_tensor_value_info(h.name, _elem(h.dtype), _shape(h)))
        ht = node("Transpose", [node("Cast", [h.name], "nms/h", to=TensorProto.FLOAT)], "nms/ht",
                  perm=[0, 2, 1])  # fmt: skip
        raw = node("Slice", [ht, const("nms/0", [0]), const("nms/4", [4]), const("nms/a2", [2])],
                   "nms/raw_boxes")  # fmt: skip
        scores = node("Slice", [ht, "nms/4", const("nms/end", [2**62]), "nms/a2"], "nms/scores")
    else:
        assert head.boxes is not None and head.scores is not None
        for s in (head.boxes, head.scores):
            inputs.append(helper.make_tensor_value_info(s.name, _elem(s.dtype), _shape(s)))
        raw = node("Cast", [head.boxes.name], "nms/raw_boxes", to=TensorProto.FLOAT)
        scores = node("Cast", [head.scores.name], "nms/scores", to=TensorProto.FLOAT)
    if settings.box_format == "cxcywh":
        xy = node("Slice", [raw, const("nms/s0", [0]), const("nms/s2", [2]), const("nms/ax", [2])],
                  "nms/xy")  # fmt: skip
        wh = node("Slice", [raw, "nms/s2", const("nms/s4", [4]), "nms/ax"], "nms/wh")
        half = node("Mul", [wh, const("nms/half", [0.5], np.float32)], "nms/halfwh")
        boxes = node(
            "Concat",
            [node("Sub", [xy, half], "nms/x1y1"), node("Add", [xy, half], "nms/x2y2")],
            "nms/boxes",
            axis=2,
        )
    else:
        boxes = raw
    st = node("Transpose", [scores], "nms/scores_bcn", perm=[0, 2, 1])
    sel = node(
        "NonMaxSuppression",
        [
            boxes,
            st,
            const("nms/k", [k]),
            const("nms/iou", [settings.iou_threshold], np.float32),
            const("nms/score", [settings.score_threshold], np.float32),
        ],
        "nms/selected",
    )
    one, two, three = const("nms/c1", [1]), const("nms/c2", [2]), const("nms/c3", [3])
    axis1 = const("nms/axis1", [1])
    bi = node("Slice", [sel, const("nms/c0", [0]), one, axis1], "nms/bi")
    ci = node("Slice", [sel, one, two, axis1], "nms/ci")
    ni = node("Slice", [sel, two, three, axis1], "nms/ni")
    sel_scores = node("GatherND", [st, sel], "nms/sel_scores")
    sel_boxes = node("GatherND", [boxes, node("Concat", [bi, ni], "nms/bn", axis=1)],
                     "nms/sel_boxes")  # fmt: skip
    b_flat = node("Squeeze", [bi, axis1], "nms/b_flat")
    c_flat = node("Squeeze", [ci, axis1], "nms/c_flat")
    # each image's best K: the selected scores spread over a dense [B, M] matrix (-inf
    # where a selection belongs to another image), TopK along M, padded to K with zeros
    batch = node("Slice", [node("Shape", [boxes], "nms/bshape"), "nms/c0", one], "nms/batch")
    zero_s, one_s = const("nms/z", 0), const("nms/o", 1)
    images = node("Range", [zero_s, node("Squeeze", [batch], "nms/batch_s"), one_s], "nms/images")
    mine = node(
        "Equal",
        [node("Unsqueeze", [b_flat, "nms/c0"], "nms/b_row"),
         node("Unsqueeze", [images, one], "nms/img_col")],
        "nms/mine",
    )  # fmt: skip
    dense = node(
        "Where",
        [mine, node("Unsqueeze", [sel_scores, "nms/c0"], "nms/s_row"),
         const("nms/ninf", -np.inf, np.float32)],
        "nms/dense",
    )  # fmt: skip
    counts = node("ReduceSum", [node("Cast", [mine], "nms/mine64", to=TensorProto.INT64), one],
                  "nms/counts", keepdims=0)  # fmt: skip
    kk = const("nms/kk", [k])
    m = node("Shape", [sel_scores], "nms/m")
    top = node("Min", [kk, m], "nms/top")
    n.append(helper.make_node("TopK", [dense, top], ["nms/top_s", "nms/top_i"], axis=1))
    valid = node("Greater", ["nms/top_s", const("nms/lowest", -3.0e38, np.float32)], "nms/valid")
    pad = node("Sub", [kk, top], "nms/pad")
    zero1 = const("nms/zero1", [0])
    pads2 = node("Concat", [zero1, zero1, zero1, pad], "nms/pads2", axis=0)
    pads3 = node("Concat", [zero1, zero1, zero1, zero1, pad, zero1], "nms/pads3", axis=0)

    def padded(x: str, out: str, pads: str, zero: Any) -> str:
        return node("Pad", [x, pads, zero], out, mode="constant")

    fz, iz = const("nms/fz", 0.0, np.float32), const("nms/iz", 0)
    kept_s = node("Where", [valid, "nms/top_s", fz], "nms/kept_s")
    padded(kept_s, "scores", pads2, fz)
    kept_b = node(
        "Where",
        [node("Unsqueeze", [valid, const("nms/last", [2])], "nms/valid3"),
         node("Gather", [sel_boxes, "nms/top_i"], "nms/top_b", axis=0), fz],
        "nms/kept_b",
    )  # fmt: skip
    padded(kept_b, "boxes", pads3, fz)
    kept_c = node("Where", [valid, node("Gather", [c_flat, "nms/top_i"], "nms/top_c"), iz],
                  "nms/kept_c")  # fmt: skip
    node("Cast", [padded(kept_c, "nms/classes64", pads2, iz)], "classes", to=TensorProto.INT32)
    node("Cast", [node("Unsqueeze", [node("Min", [counts, kk], "nms/num64"), one], "nms/num2")],
         "num_detections", to=TensorProto.INT32)  # fmt: skip
    b_dim = _shape(head.head or head.boxes)[0]  # type: ignore[arg-type]
    outputs = [
        helper.make_tensor_value_info("num_detections", TensorProto.INT32, [b_dim, 1]),
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [b_dim, k, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [b_dim, k]),
        helper.make_tensor_value_info("classes", TensorProto.INT32, [b_dim, k]),
    ]
    graph = helper.make_graph(n, "nms", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.producer_name = "onnx-deploy"
    return fix_ir_version(model)


def _elem(dtype: str) -> int:
    return TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT


def _shape(spec: TensorSpec) -> list[Any]:
    return [d if d is not None else f"{spec.name}_{i}" for i, d in enumerate(spec.shape)]


def plan_nms(
    model: onnx.ModelProto,
    *,
    head: str | None = None,
    boxes: str | None = None,
    scores: str | None = None,
    num_classes: int | None = None,
    score_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    box_format: str | None = None,
) -> tuple[DetectionHead, NmsSettings]:
    """``add_nms``'s checks: the head (``find_head``) and the settings, or the reason not."""
    found = find_head(model, head=head, boxes=boxes, scores=scores)
    if num_classes is not None:
        if num_classes < 1:
            raise SurgeryError(f"num_classes must be 1 or more, got {num_classes}")
        if found.num_classes is not None and found.num_classes != num_classes:
            where = found.head or found.scores
            raise SurgeryError(
                f"num_classes={num_classes} but {where} holds {found.num_classes} classes: "
                "check the model, or leave num_classes out"
            )
    fmt = box_format or ("cxcywh" if found.head is not None else "xyxy")
    settings = NmsSettings(
        float(score_threshold), float(iou_threshold), int(max_detections), fmt,
        found.num_classes or num_classes,
    )  # fmt: skip
    settings.check()
    return found, settings


def apply_nms(
    model: onnx.ModelProto, head: DetectionHead, settings: NmsSettings
) -> onnx.ModelProto:
    """The NMS graph for ``plan_nms``'s answer, merged after ``model``."""
    clash = {s: f"raw_{s}" for s in head.names if s in PADDED_OUTPUTS}
    if clash:  # outputs called boxes or scores would clash with the new ones
        model = rename(model, clash)
        head = head.renamed(clash)
    post = nms_graph(head, settings, opset=max(18, default_opset(model)))
    merged = merge(model, post, [(s, s) for s in head.names], prefix="nms/")
    _set_metadata(merged, asdict(settings))
    return merged


def add_nms(model: onnx.ModelProto, **options: Any) -> onnx.ModelProto:
    """Append box decoding, class-aware NMS and the padded EfficientNMS layout.

    The raw outputs are found by shape (``find_head``) or named: ``head`` for one
    ``[B, 4 + C, N]`` output (boxes as centre x, centre y, width, height: YOLO's export),
    ``boxes`` + ``scores`` for ``[B, N, 4]`` corners and ``[B, N, C]`` scores.
    ``num_classes``, when given, must be the model's C. Scores must be probabilities
    (after sigmoid or softmax). ``options``: ``plan_nms``'s (thresholds, ``max_detections``,
    ``box_format``). Returns a model whose only outputs are ``num_detections``, ``boxes``,
    ``scores`` and ``classes``; the settings go into its metadata.
    """
    return apply_nms(model, *plan_nms(model, **options))


# --- TensorRT's EfficientNMS plugin ----------------------------------------------------------

PLUGIN_DOMAIN = "TRT"


def efficient_nms(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same detector with ``add_nms``'s subgraph replaced by one
    ``EfficientNMS_TRT`` node (TensorRT's plugin: NMS per class, the best
    ``max_output_boxes`` of each image, the same four padded outputs). TensorRT's ONNX
    parser finds the plugin by the node's op type once ``init_libnvinfer_plugins`` ran
    (``build_engine`` does); onnxruntime cannot run it: keep the ``add_nms`` graph for
    everything else. The plain ``add_nms`` graph also builds on TensorRT, whose parser
    turns ``NonMaxSuppression`` into an ``INMSLayer``."""
    meta = detection_metadata(model)
    g = model.graph
    if meta is None or not any(n.op_type == "NonMaxSuppression" for n in g.node):
        raise SurgeryError("the model has no NMS from add_nms (onnx-deploy edit postprocess --nms)")
    produced = {o for n in g.node for o in n.output}
    boxes = "nms/boxes" if "nms/boxes" in produced else "nms/raw_boxes"
    net_boxes = "lb/net_boxes" if "lb/net_boxes" in produced else "boxes"
    targets = ["num_detections", net_boxes, "scores", "classes"]
    plugin = helper.make_node(
        "EfficientNMS_TRT", [boxes, "nms/scores"], targets, name="efficient_nms",
        domain=PLUGIN_DOMAIN, plugin_version="1", background_class=-1,
        max_output_boxes=int(meta["max_detections"]),
        score_threshold=float(meta["score_threshold"]),
        iou_threshold=float(meta["iou_threshold"]), score_activation=0, class_agnostic=0,
        box_coding=0,  # corners: the graph has decoded centre/size boxes already
    )  # fmt: skip
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes: list[Any] = []
    for n in out.graph.node:  # the plugin where the first node it replaces was
        if not set(n.output) & set(targets):
            nodes.append(n)
        elif plugin not in nodes:
            nodes.append(plugin)
    # drop what only the replaced nodes used
    needed = {o.name for o in out.graph.output}
    kept: list[Any] = []
    for n in reversed(nodes):
        if set(n.output) & needed:
            kept.append(n)
            needed |= set(n.input)
    del out.graph.node[:]
    out.graph.node.extend(reversed(kept))
    if not any(op.domain == PLUGIN_DOMAIN for op in out.opset_import):
        out.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, 1))
    _set_metadata(out, {"tensorrt_plugin": "EfficientNMS_TRT"})
    return out


# --- letterbox -------------------------------------------------------------------------------


def add_letterbox(
    model: onnx.ModelProto,
    input_name: str | None = None,
    *,
    pad_value: int = 114,
    scale: float = 1 / 255,
    pixels_name: str = "pixels",
    map_boxes: bool = True,
    antialias: bool = True,
) -> onnx.ModelProto:
    """Letterbox in the graph: the model takes uint8 NHWC ``pixels`` of any height and
    width; they are resized by ``r = min(H / h, W / w)`` (bilinear, aspect ratio kept),
    padded evenly to the image input's fixed ``H x W`` with ``pad_value`` and multiplied
    by ``scale``. With ``map_boxes`` and a ``boxes`` output ([..., 4] corners), boxes come
    out in the original image's pixels: ``(box - pad) / r``, clipped to the image.

    ``antialias``: the resize filters when it shrinks (PyTorch's ``antialias=True``).
    TensorRT's ONNX parser rejects an antialiased ``Resize``; ``antialias=False`` is the
    form it takes (plain bilinear, as OpenCV's ``INTER_LINEAR`` letterbox in ultralytics)."""
    image = image_spec(model, input_name)
    height, width = image.shape[2], image.shape[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise SurgeryError(f"{image} has a symbolic height or width: letterbox needs a fixed size")
    if not 0 <= pad_value <= 255:
        raise SurgeryError(f"pad_value must be a uint8 value (0-255), got {pad_value}")
    channels = int(image.shape[1])  # type: ignore[arg-type]
    outs = {s.name: s for s in graph_io(model)[1]}
    mapped = map_boxes and "boxes" in outs and outs["boxes"].shape[-1] == 4
    opset = max(18, default_opset(model))
    pre = _letterbox_graph(image, pixels_name, pad_value, scale, channels, opset, antialias)
    pairs = [(image.name, image.name)]
    if mapped:
        model = _map_boxes_back(model)
        pairs += [(n, n) for n in LETTERBOX_TENSORS]
    merged = merge(pre, model, pairs, prefix="lb/")
    _set_metadata(
        merged,
        {
            "letterbox": {
                "size": [height, width],
                "pad_value": pad_value,
                "scale": scale,
                "boxes_mapped": mapped,
                "antialias": bool(antialias),
            }
        },
    )
    return merged


def _letterbox_graph(
    image: TensorSpec,
    pixels: str,
    pad_value: int,
    scale: float,
    channels: int,
    opset: int,
    antialias: bool = True,
) -> onnx.ModelProto:
    height, width = int(image.shape[2]), int(image.shape[3])  # type: ignore[arg-type]
    nodes = NodeList()
    n, node, const = nodes.nodes, nodes.add, nodes.const

    x = node("Transpose", [node("Cast", [pixels], "lb/f", to=TensorProto.FLOAT)], "lb/nchw",
             perm=[0, 3, 1, 2])  # fmt: skip
    shape = node("Shape", [x], "lb/shape")
    hw = node("Cast", [node("Slice", [shape, const("lb/i2", [2]), const("lb/i4", [4])], "lb/hw")],
              "lb/hwf", to=TensorProto.FLOAT)  # fmt: skip
    target = const("lb/target", [height, width], np.float32)
    r = node("ReduceMin", [node("Div", [target, hw], "lb/ratios")], "lb/r", keepdims=1)
    new_hw = node("Cast", [node("Round", [node("Mul", [hw, r], "lb/scaled")], "lb/rounded")],
                  "lb/new_hw", to=TensorProto.INT64)  # fmt: skip
    nc = node("Slice", [shape, const("lb/i0", [0]), "lb/i2"], "lb/nc")
    sizes = node("Concat", [nc, new_hw], "lb/sizes", axis=0)
    resized = node("Resize", [x, "", "", sizes], "lb/resized", mode="linear",
                   antialias=int(antialias))  # fmt: skip
    pad = node("Sub", [const("lb/target_i", [height, width]), new_hw], "lb/pad")
    before = node("Div", [pad, const("lb/two", [2])], "lb/pad_before")
    after = node("Sub", [pad, before], "lb/pad_after")
    z2 = const("lb/z2", [0, 0])
    pads = node("Concat", [z2, before, z2, after], "lb/pads", axis=0)
    padded = node("Pad", [resized, pads, const("lb/value", float(pad_value), np.float32)],
                  "lb/padded", mode="constant")  # fmt: skip
    node("Mul", [padded, const("lb/scale", scale, np.float32)], image.name)
    # (pad_x, pad_y) and r, for mapping boxes back; the original (w, h) to clip to
    offset = node("Cast", [before], "lb/offset_yx", to=TensorProto.FLOAT)
    node("Concat", [node("Slice", [offset, const("lb/j1", [1]), "lb/i2"], "lb/ox"),
                    node("Slice", [offset, "lb/i0", "lb/j1"], "lb/oy")],
         "letterbox_offset", axis=0)  # fmt: skip
    node("Identity", [r], "letterbox_scale")
    node("Concat", [node("Slice", [hw, "lb/j1", "lb/i2"], "lb/w0"),
                    node("Slice", [hw, "lb/i0", "lb/j1"], "lb/h0")], "letterbox_size", axis=0)  # fmt: skip
    batch = image.shape[0] if image.shape[0] is not None else "batch"
    graph = helper.make_graph(
        n,
        "letterbox",
        [helper.make_tensor_value_info(pixels, TensorProto.UINT8, [batch, "height", "width", channels])],
        [
            helper.make_tensor_value_info(image.name, TensorProto.FLOAT, [batch, channels, height, width]),
            helper.make_tensor_value_info("letterbox_offset", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("letterbox_scale", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("letterbox_size", TensorProto.FLOAT, [2]),
        ],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return fix_ir_version(model)


LETTERBOX_TENSORS = ("letterbox_offset", "letterbox_scale", "letterbox_size")


def _map_boxes_back(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with ``boxes`` -> ``(boxes - offset) / scale``, clipped to the original
    image, and the letterbox graph's offset, scale and size as extra inputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if clash := [n for n in LETTERBOX_TENSORS if n in {i.name for i in g.input}]:
        raise SurgeryError(f"the model already has inputs {clash}: it has a letterbox")
    for node in g.node:
        node.output[:] = ["lb/net_boxes" if o == "boxes" else o for o in node.output]
        node.input[:] = ["lb/net_boxes" if i == "boxes" else i for i in node.input]
    g.input.extend([
        helper.make_tensor_value_info("letterbox_offset", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("letterbox_scale", TensorProto.FLOAT, [1]),
        helper.make_tensor_value_info("letterbox_size", TensorProto.FLOAT, [2]),
    ])  # fmt: skip
    g.node.extend([
        helper.make_node("Concat", ["letterbox_offset", "letterbox_offset"], ["lb/off4"], axis=0),
        helper.make_node("Sub", ["lb/net_boxes", "lb/off4"], ["lb/shifted"]),
        helper.make_node("Div", ["lb/shifted", "letterbox_scale"], ["lb/unscaled"]),
        helper.make_node("Concat", ["letterbox_size", "letterbox_size"], ["lb/max4"], axis=0),
        const_node("lb/zero_f", 0.0, np.float32),
        helper.make_node("Max", ["lb/unscaled", "lb/zero_f"], ["lb/clip_lo"]),
        helper.make_node("Min", ["lb/clip_lo", "lb/max4"], ["boxes"]),
    ])  # fmt: skip
    return fix_ir_version(m)


def reference_letterbox(
    pixels: np.ndarray, size: tuple[int, int], pad_value: int = 114, scale: float = 1 / 255
) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Numpy letterbox for pixels that need no resize (``h <= H``, ``w <= W`` and one side
    equal): the padding and scaling ``add_letterbox``'s check holds the graph to. Returns
    (image NCHW, r, (pad_x, pad_y))."""
    b, h, w, c = pixels.shape
    height, width = size
    r = min(height / h, width / w)
    if abs(r - 1.0) > 1e-9:
        raise SurgeryError("reference_letterbox covers the no-resize case only")
    top, left = (height - h) // 2, (width - w) // 2
    out = np.full((b, c, height, width), float(pad_value), np.float32)
    out[:, :, top : top + h, left : left + w] = pixels.transpose(0, 3, 1, 2)
    return (out * np.float32(scale)).astype(np.float32), r, (left, top)
