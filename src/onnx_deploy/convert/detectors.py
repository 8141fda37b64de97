"""Detectors ready to export: the project's one-stage anchor-free detector, and
torchvision's detection models split where their exporters can follow them.

``OneStageDetector`` is of the YOLOv8/11 kind, written here (no AGPL dependency): a small
backbone, one decoupled head per stride, and per anchor point a box (centre x, centre y,
width, height in input pixels) and class probabilities, returned as one
``[batch, 4 + classes, anchors]`` tensor. Like ultralytics' models in eval mode it also
returns the raw per-level maps (training needs them), which is what a first export shows:
several outputs with generated names, no box decoding, no NMS. ``add_nms`` then makes it
deployable.

torchvision's detectors take a list of images and return a list of dicts, and their
post-processing is data-dependent: the whole model fails at ``torch.export`` (pytorch/vision
issues 9306, 9462). ``detector_for_export`` gives, for SSD/SSDlite and RetinaNet, the part
that exports with the dynamo exporter: normalisation, backbone, head and the anchor
decoding (anchors fixed for the input size), outputs ``candidate_boxes`` [B, N, 4]
(corners, clipped to the image) and ``class_scores`` [B, N, classes] (softmax or sigmoid;
SSD's background column zeroed, so class indices are torchvision's labels). Two-stage
models (Faster/Mask/Keypoint R-CNN) have RoI pooling between their stages; they get the
whole model wrapped for one image (``boxes``, ``scores``, ``labels``), which only the
TorchScript exporter follows.
"""

from __future__ import annotations

from typing import Any

from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.extras import require

torch = require("torch", "onnx_deploy.convert.detectors")
nn = torch.nn
F = torch.nn.functional

ANCHOR_DETECTORS = ("ssd", "ssdlite", "retinanet", "fcos")
TWO_STAGE = ("fasterrcnn", "maskrcnn", "keypointrcnn")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU()
    )


class OneStageDetector(nn.Module):
    """Anchor-free, one stage, strides 8 and 16. ``forward`` in eval mode returns
    ``(predictions [B, 4 + C, N], [raw maps per level])``; the raw maps are
    ``[B, 4 + C, H/s, W/s]`` (box distances before softplus, class logits)."""

    strides = (8, 16)

    def __init__(self, num_classes: int = 3, width: int = 16) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.stem = nn.Sequential(_conv(3, w, 2), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.stage8 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        self.stage16 = nn.Sequential(_conv(4 * w, 8 * w, 2), _conv(8 * w, 8 * w))
        self.heads = nn.ModuleList(
            nn.ModuleDict({
                "box": nn.Sequential(_conv(c, c), nn.Conv2d(c, 4, 1)),
                "cls": nn.Sequential(_conv(c, c), nn.Conv2d(c, num_classes, 1)),
            })
            for c in (4 * w, 8 * w)
        )  # fmt: skip
        for h in self.heads:
            nn.init.constant_(h["cls"][-1].bias, -4.0)  # a low prior: most points are background

    def raw(self, x: torch.Tensor) -> list[torch.Tensor]:
        p8 = self.stage8(self.stem(x))
        p16 = self.stage16(p8)
        return [
            torch.cat([h["box"](p), h["cls"](p)], 1)
            for h, p in zip(self.heads, (p8, p16), strict=True)
        ]

    def decode(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Per-level maps to ``[B, 4 + C, N]``: centre/size boxes in pixels, class
        probabilities."""
        out = []
        for m, s in zip(maps, self.strides, strict=True):
            h, w = m.shape[2:]
            ys = (torch.arange(h, dtype=m.dtype, device=m.device) + 0.5) * s
            xs = (torch.arange(w, dtype=m.dtype, device=m.device) + 0.5) * s
            ay, ax = torch.meshgrid(ys, xs, indexing="ij")
            ltrb = F.softplus(m[:, :4]) * s
            x1, y1 = ax - ltrb[:, 0], ay - ltrb[:, 1]
            x2, y2 = ax + ltrb[:, 2], ay + ltrb[:, 3]
            box = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
            out.append(torch.cat([box, torch.sigmoid(m[:, 4:])], 1).flatten(2))
        return torch.cat(out, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps = self.raw(x)
        return self.decode(maps), maps


def one_stage_detector(num_classes: int = 3, width: int = 16) -> OneStageDetector:
    """A model factory for specs (``file.py:factory`` style) and the zoo."""
    return OneStageDetector(num_classes, width).eval()


# --- torchvision ---------------------------------------------------------------------------


def detection_family(model: Any) -> str:
    """``anchor`` (SSD, SSDlite, RetinaNet, FCOS), ``two-stage`` (R-CNNs) or ``""``."""
    tv = require("torchvision", "torchvision detectors")
    from torchvision.models.detection import fcos
    from torchvision.models.detection import retinanet
    from torchvision.models.detection import ssd

    d = (ssd.SSD, retinanet.RetinaNet, fcos.FCOS)
    if isinstance(model, d):
        return "anchor"
    if isinstance(model, tv.models.detection.FasterRCNN):  # Mask and Keypoint R-CNN are FasterRCNNs
        return "two-stage"
    return ""


class AnchorDetector(nn.Module):
    """A torchvision SSD/SSDlite/RetinaNet/FCOS as one tensor in, two tensors out, for an
    input of a fixed ``image_size``: float [B, 3, H, W] in [0, 1] ->
    ``candidate_boxes`` [B, N, 4] corners clipped to the image, ``class_scores``
    [B, N, classes] (index = torchvision's label)."""

    def __init__(self, model: Any, image_size: tuple[int, int]) -> None:
        super().__init__()
        tv = require("torchvision", "torchvision detectors")
        self.model = model.eval()
        self.image_size = tuple(image_size)
        t = model.transform
        self.register_buffer("mean", torch.tensor(t.image_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(t.image_std).view(1, 3, 1, 1))
        self.softmax = isinstance(model, tv.models.detection.ssd.SSD)
        self.fcos = isinstance(model, tv.models.detection.fcos.FCOS)
        with torch.no_grad():
            x = torch.zeros(1, 3, *self.image_size)
            feats = self._features(self._normalise(x))
            images = tv.models.detection.image_list.ImageList(x, [self.image_size])
            anchors = model.anchor_generator(images, feats)[0]
        self.register_buffer("anchors", anchors)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self.model.backbone(x)
        return list(f.values()) if isinstance(f, dict) else [f]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        head = self.model.head(self._features(self._normalise(x)))
        deltas, logits = head["bbox_regression"], head["cls_logits"]
        boxes = self._decode(deltas)
        if self.softmax:
            scores = torch.softmax(logits, -1)
            scores = torch.cat([torch.zeros_like(scores[..., :1]), scores[..., 1:]], -1)
        else:
            scores = torch.sigmoid(logits)
            if self.fcos:
                scores = torch.sqrt(scores * torch.sigmoid(head["bbox_ctrness"]))
        return {"candidate_boxes": boxes, "class_scores": scores}

    def _decode(self, deltas: torch.Tensor) -> torch.Tensor:
        """torchvision's own box coder, then the clip to the image its postprocess does."""
        coder = self.model.box_coder
        if self.fcos:
            anchors = self.anchors.unsqueeze(0).expand(deltas.shape[0], -1, -1)
            boxes = coder.decode(deltas, anchors)
        else:
            b, n, _ = deltas.shape
            boxes = coder.decode_single(deltas.reshape(-1, 4), self.anchors.repeat(b, 1))
            boxes = boxes.reshape(b, n, 4)
        h, w = self.image_size
        limit = torch.tensor([w, h, w, h], dtype=boxes.dtype)
        return torch.minimum(boxes.clamp(min=0), limit)


class TwoStageDetector(nn.Module):
    """A torchvision R-CNN for one image: float [1, 3, H, W] in [0, 1] -> ``boxes``
    [n, 4], ``scores`` [n], ``labels`` [n] (its own NMS; n depends on the image), and
    Mask R-CNN's ``masks`` [n, 1, H, W] or Keypoint R-CNN's ``keypoints`` [n, K, 3].
    The exported graph can fail in onnxruntime on an image where a stage finds no box
    (``fasterrcnn_mobilenet_v3_large_320_fpn`` did, in a Split; pytorch/vision issue 4623,
    open, and 2380): the anchor path (``AnchorDetector`` + ``add_nms``) has no such step."""

    # read by onnx_deploy.convert.export: why the TorchScript fallback is right here
    TORCHSCRIPT_SAFE = (
        "torchvision writes its R-CNNs for the TorchScript exporter (its own tests export "
        "them that way): under tracing their data-dependent steps become ONNX operators "
        "(NonMaxSuppression, RoiAlign, TopK) instead of one traced branch; export it with "
        "a static batch of 1 (--static), and know that the graph can fail in onnxruntime on "
        "an image where a stage finds no box (pytorch/vision issue 4623)"
    )

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(list(x))[0]
        keep = ("boxes", "scores", "labels", "masks", "keypoints", "keypoints_scores")
        return {k: out[k] for k in keep if k in out}


def detector_for_export(model: Any, image_size: tuple[int, int]) -> nn.Module:
    """The exportable form of a torchvision detector (see the module text)."""
    family = detection_family(model)
    if family == "anchor":
        return AnchorDetector(model, image_size).eval()
    if family == "two-stage":
        return TwoStageDetector(model).eval()
    raise ModelSpecError(f"{type(model).__name__} is not a torchvision detection model")


# --- the PyTorch side of a served detector ------------------------------------------------


class DetectionPipeline(nn.Module):
    """What a graph from ``add_nms`` (and ``add_letterbox``) computes, in PyTorch and
    torchvision, for validating it: uint8 NHWC ``pixels`` -> the same letterbox (PyTorch's
    bilinear resize, antialiased unless the graph's is not, ``F.pad``), ``model``, boxes to corners, torchvision's
    ``batched_nms`` with the same thresholds, the best ``max_detections`` per image,
    boxes mapped back, padded. Written with torch's own operators, not from the ONNX graph,
    so that agreement means something. ``settings``: the graph's ``detection_metadata``."""

    def __init__(self, model: nn.Module, settings: dict[str, Any]) -> None:
        super().__init__()
        self.model = model.eval()
        self.settings = dict(settings)

    def _raw(self, out: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(boxes [B, N, 4] corners, scores [B, N, C]) from the model's outputs."""
        if isinstance(out, dict) and {"candidate_boxes", "class_scores"} <= set(out):
            boxes, scores = out["candidate_boxes"], out["class_scores"]
        else:
            head = out[0] if isinstance(out, (tuple, list)) else out
            head = head.transpose(1, 2)
            boxes, scores = head[..., :4], head[..., 4:]
        if self.settings.get("box_format") == "cxcywh":
            half = boxes[..., 2:] / 2
            boxes = torch.cat([boxes[..., :2] - half, boxes[..., :2] + half], -1)
        return boxes.float(), scores.float()

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        tv = require("torchvision", "the PyTorch side of a detector")
        x = pixels.permute(0, 3, 1, 2).float()
        h, w = x.shape[2:]
        r, left, top = 1.0, 0, 0
        lb = self.settings.get("letterbox")
        if lb:
            big_h, big_w = lb["size"]
            r = min(big_h / h, big_w / w)
            nh, nw = round(h * r), round(w * r)
            if (nh, nw) != (h, w):
                x = F.interpolate(
                    x, size=(nh, nw), mode="bilinear", antialias=lb.get("antialias", True)
                )
            top, left = (big_h - nh) // 2, (big_w - nw) // 2
            x = F.pad(x, (left, big_w - nw - left, top, big_h - nh - top), value=lb["pad_value"])
            x = x * lb.get("scale", 1 / 255)
        boxes, scores = self._raw(self.model(x))
        k = int(self.settings["max_detections"])
        b = x.shape[0]
        out = {
            "num_detections": torch.zeros(b, 1, dtype=torch.int32),
            "boxes": torch.zeros(b, k, 4),
            "scores": torch.zeros(b, k),
            "classes": torch.zeros(b, k, dtype=torch.int32),
        }
        for i in range(b):
            anchor, cls = torch.nonzero(scores[i] > self.settings["score_threshold"], as_tuple=True)
            cand, score = boxes[i, anchor], scores[i, anchor, cls]
            keep = tv.ops.batched_nms(cand, score, cls, self.settings["iou_threshold"])[:k]
            kept = cand[keep]
            if lb:
                shift = torch.tensor([left, top, left, top], dtype=kept.dtype)
                limit = torch.tensor([w, h, w, h], dtype=kept.dtype)
                kept = torch.minimum(((kept - shift) / r).clamp(min=0), limit)
            n = len(keep)
            out["num_detections"][i, 0] = n
            out["boxes"][i, :n] = kept
            out["scores"][i, :n] = score[keep]
            out["classes"][i, :n] = cls[keep].int()
        return out
