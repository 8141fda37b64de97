"""A labelled detection dataset drawn with numpy, and the one-stage detector trained on it.

Accuracy claims need trained weights and labelled data, and nothing may download here. So
the images are generated: squares, discs and triangles (three classes) of random colours
and sizes on a noisy background, several per image, never overlapping, each with its exact
box. The split is fixed by seeds. ``OneStageDetector`` (``onnx_deploy.convert.detectors``)
is trained on it with an FCOS-style assignment (anchor points inside a box's centre region
are its positives), sigmoid focal loss for the classes and GIoU for the boxes; the
checkpoint ships in ``onnx_deploy/data/shapes_detector.pt`` (weights only).

Retrain it reproducibly (about a minute on 2 cores)::

    python -m onnx_deploy.teach.shapes --output src/onnx_deploy/data/shapes_detector.pt --force
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnx_deploy.convert.detectors import OneStageDetector
from onnx_deploy.core.extras import require
from onnx_deploy.core.files import PACKAGE_DATA
from onnx_deploy.infer.detections import Detections

torch = require("torch", "onnx_deploy.teach.shapes (the shapes detector)")
F = torch.nn.functional

CHECKPOINT = PACKAGE_DATA / "shapes_detector.pt"
CLASSES = ("square", "disc", "triangle")
IMAGE_SIZE = 160
INPUT_SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)
TRAIN_SEED, TEST_SEED = 0, 1


@dataclass(frozen=True)
class ShapesData:
    """``images`` uint8 [n, H, W, 3] (NHWC, as images decode) and per image its labelled
    boxes (``Detections`` with scores 1)."""

    images: np.ndarray
    targets: tuple[Detections, ...]

    def chw(self) -> np.ndarray:
        """float32 [n, 3, H, W] in [0, 1]: the network's input."""
        return (self.images.transpose(0, 3, 1, 2) / np.float32(255)).astype(np.float32)


def _draw(img: np.ndarray, cls: int, box: tuple[int, int, int, int], colour: np.ndarray) -> None:
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[y1:y2, x1:x2]
    w, h = x2 - x1, y2 - y1
    if cls == 0:
        mask = np.ones_like(xx, bool)
    elif cls == 1:
        cx, cy = x1 + (w - 1) / 2, y1 + (h - 1) / 2
        mask = ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1
    else:  # apex at the top centre, base along the bottom row
        rel = (yy - y1 + 1) / h
        mask = np.abs(xx - (x1 + (w - 1) / 2)) <= rel * w / 2
    img[y1:y2, x1:x2][mask] = colour


def draw_scene(
    rng: np.random.Generator, height: int, width: int, max_objects: int = 6
) -> tuple[np.ndarray, Detections]:
    """One ``height x width`` RGB image with 1 to ``max_objects`` shapes, and their boxes."""
    base = rng.integers(20, 110, 3)
    img = np.clip(base + rng.normal(0, 24, (height, width, 3)), 0, 255).astype(np.uint8)
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            side = int(rng.integers(8, min(56, height // 2)))
            w = int(np.clip(side * rng.uniform(0.75, 1.33), 8, width // 2))
            x1, y1 = int(rng.integers(0, width - w)), int(rng.integers(0, height - side))
            box = (x1, y1, x1 + w, y1 + side)
            if all(
                box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1] for b in boxes
            ):
                break
        else:
            continue
        cls = int(rng.integers(0, len(CLASSES)))
        # low contrast sometimes: the colour is the background's plus 35 to 150
        colour = np.clip(base + rng.integers(35, 150, 3), 0, 255).astype(np.uint8)
        _draw(img, cls, box, colour)
        boxes.append(box)
        classes.append(cls)
    target = Detections(
        np.asarray(boxes, np.float64).reshape(-1, 4),
        np.ones(len(boxes)),
        np.asarray(classes, np.int64),
    )
    return img, target


def make_shapes(
    n: int, seed: int, size: int = IMAGE_SIZE, max_objects: int = 6, letterboxed: float = 0.5
) -> ShapesData:
    """``n`` images with 1 to ``max_objects`` shapes each, reproducible from ``seed``. A
    share ``letterboxed`` of them are narrower or shorter scenes padded to ``size`` with
    grey 114, centred, as ``add_letterbox`` does: a detector deployed behind a letterbox
    sees that padding, so it trains on it."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), np.uint8)
    targets = []
    for i in range(n):
        h = w = size
        if rng.uniform() < letterboxed:
            short = int(rng.integers(size // 2, size - 8))
            h, w = (short, size) if rng.uniform() < 0.5 else (size, short)
        img, t = draw_scene(rng, h, w, max_objects)
        top, left = (size - h) // 2, (size - w) // 2
        images[i] = 114
        images[i, top : top + h, left : left + w] = img
        shift = np.array([left, top, left, top], np.float64)
        targets.append(Detections(t.boxes + shift, t.scores, t.classes))
    return ShapesData(images, tuple(targets))


def load_shapes_split(train: int = 2000, test: int = 200) -> tuple[ShapesData, ShapesData]:
    """The fixed train and test splits (different seeds, so no image is in both)."""
    return make_shapes(train, TRAIN_SEED), make_shapes(test, TEST_SEED)


def load_shapes_detector(checkpoint: str | Path = CHECKPOINT) -> OneStageDetector:
    """The shipped, trained detector in eval mode (weights only)."""
    from onnx_deploy.convert.checkpoints import apply_checkpoint

    return apply_checkpoint(OneStageDetector(len(CLASSES)), checkpoint).eval()  # type: ignore[return-value]


# --- training ------------------------------------------------------------------------------


def _points(model: OneStageDetector, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points (x, y) and their strides, in the order ``decode`` flattens them."""
    pts, strides = [], []
    for s in model.strides:
        c = (torch.arange(size // s, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        pts.append(torch.stack([xx.flatten(), yy.flatten()], 1))
        strides.append(torch.full((len(c) ** 2,), float(s)))
    return torch.cat(pts), torch.cat(strides)


def _assign(
    targets: list[Detections], points: torch.Tensor, strides: torch.Tensor, classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FCOS-style: a point inside a box and within 1.5 strides of its centre is a positive
    of that box (the smallest such box when several). Returns class targets [B, N, C],
    box targets [B, N, 4] corners and the positive mask [B, N]."""
    b, n = len(targets), len(points)
    cls_t = torch.zeros(b, n, classes)
    box_t = torch.zeros(b, n, 4)
    pos = torch.zeros(b, n, dtype=torch.bool)
    for i, t in enumerate(targets):
        if len(t) == 0:
            continue
        boxes = torch.as_tensor(t.boxes, dtype=torch.float32)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = (
            (points[:, None, 0] > boxes[None, :, 0]) & (points[:, None, 0] < boxes[None, :, 2])
            & (points[:, None, 1] > boxes[None, :, 1]) & (points[:, None, 1] < boxes[None, :, 3])
        )  # fmt: skip
        near = (points[:, None] - centre[None]).abs().max(-1).values < 1.5 * strides[:, None]
        ok = inside & near
        area = ((boxes[:, 2:] - boxes[:, :2]).prod(-1))[None].expand(n, -1)
        area = torch.where(ok, area, torch.full_like(area, float("inf")))
        best = area.argmin(1)
        has = ok.any(1)
        pos[i] = has
        box_t[i] = boxes[best]
        labels = torch.as_tensor(t.classes)[best]
        cls_t[i, has, labels[has]] = 1.0
    return cls_t, box_t, pos


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = (a[:, 2:] - a[:, :2]).prod(1) + (b[:, 2:] - b[:, :2]).prod(1) - inter
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1)
    iou = inter / union.clamp(min=1e-6)
    return iou - (hull - union) / hull.clamp(min=1e-6)


def train(
    data: ShapesData | None = None, epochs: int = 4, seed: int = 0, lr: float = 4e-3,
    batch_size: int = 32,
) -> OneStageDetector:  # fmt: skip
    """Train from scratch, deterministically on the CPU."""
    data = data or load_shapes_split()[0]
    torch.manual_seed(seed)
    model = OneStageDetector(len(CLASSES))
    points, strides = _points(model, data.images.shape[1])
    x_all = torch.from_numpy(data.chw())
    steps = epochs * ((len(x_all) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x_all), generator=gen).split(batch_size):
            xb = x_all[idx]
            targets = [data.targets[int(i)] for i in idx]
            flip = bool(torch.rand((), generator=gen) < 0.5)
            if flip:  # horizontal flip: boxes mirror
                xb = xb.flip(3)
                w = xb.shape[3]
                targets = [
                    Detections(np.stack([w - t.boxes[:, 2], t.boxes[:, 1], w - t.boxes[:, 0],
                                         t.boxes[:, 3]], 1), t.scores, t.classes)
                    for t in targets
                ]  # fmt: skip
            cls_t, box_t, pos = _assign(targets, points, strides, len(CLASSES))
            maps = model.raw(xb)
            pred = model.decode(maps).transpose(1, 2)  # [B, N, 4 + C]
            logits = torch.cat([m[:, 4:].flatten(2) for m in maps], 2).transpose(1, 2)
            cls_loss = torchvision_focal(logits, cls_t) / pos.sum().clamp(min=1)
            cx, cy, bw, bh = pred[..., :4][pos].unbind(-1)
            boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
            box_loss = (1 - _giou(boxes, box_t[pos])).mean() if pos.any() else pred.sum() * 0
            loss = cls_loss + 2.0 * box_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def torchvision_focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss (alpha 0.25, gamma 2), summed: torchvision's own."""
    tv = require("torchvision", "training the shapes detector")
    return tv.ops.sigmoid_focal_loss(logits, targets, reduction="sum")


def predict(model: OneStageDetector, images: np.ndarray, **nms: float) -> list[Detections]:
    """Detections from PyTorch for uint8 NHWC ``images``: the model, then
    ``reference_nms`` with ``nms`` (score_threshold, iou_threshold, max_detections)."""
    from onnx_deploy.infer.detections import cxcywh_to_xyxy
    from onnx_deploy.infer.detections import reference_nms

    settings = {"score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 100, **nms}
    x = torch.from_numpy((images.transpose(0, 3, 1, 2) / np.float32(255)).astype(np.float32))
    with torch.no_grad():
        pred = model(x)[0].numpy().transpose(0, 2, 1)
    return reference_nms(cxcywh_to_xyxy(pred[..., :4]), pred[..., 4:], **settings)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    from onnx_deploy.convert.checkpoints import train_command
    from onnx_deploy.infer.detections import mean_average_precision

    def fit(epochs: int, seed: int) -> tuple[OneStageDetector, str]:
        train_data, test_data = load_shapes_split()
        model = train(train_data, epochs=epochs, seed=seed)
        found = predict(model, test_data.images, score_threshold=0.05)
        ap = mean_average_precision(found, list(test_data.targets))
        return model, f"test mAP@0.5 {ap:.3f} on {len(test_data.targets)} images"

    return train_command(
        argv, description="Train the shapes detector; save its state dict.",
        checkpoint=CHECKPOINT, epochs=4, fit=fit,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
