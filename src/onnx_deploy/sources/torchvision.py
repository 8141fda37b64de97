"""``torchvision:NAME``: an architecture from torchvision, classifiers and detectors.

torchvision ships architectures, not weights: without ``--weights`` (or ``pretrained``,
which downloads torchvision's published weights) the model has random weights, and its
batch-norm statistics are re-estimated (``recalibrate_batchnorm``) so that activations
have realistic scales. A detector comes in its exportable form (``detector_for_export``:
the head and anchor decoding; the whole model does not export) for a fixed image size.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.core.contract import ModelContract
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.signature import Signature
from onnx_deploy.sources import RANDOM_WEIGHTS
from onnx_deploy.sources import LoadedModel
from onnx_deploy.sources import ModelSource
from onnx_deploy.sources import Source
from onnx_deploy.sources import load_model

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "torchvision:resnet18"
DEFAULT_IMAGE_SHAPE = (3, 224, 224)
# torchvision's detectors resize inside the model (to 800-1333 for most); exported, they
# take one fixed size, 320x320 unless --input-shape says otherwise
DETECTION_IMAGE_SHAPE = (3, 320, 320)
RECALIBRATED = "random weights (no --weights/--pretrained); batch-norm statistics re-estimated"


def detection_names() -> set[str]:
    """torchvision's detection models (``torchvision.models.detection``)."""
    from onnx_deploy.core.extras import require

    torchvision = require("torchvision", "torchvision detectors")
    return set(torchvision.models.list_models(module=torchvision.models.detection))


class TorchvisionSource(Source):
    name = "torchvision"
    example = "torchvision:resnet18"
    help = "an architecture from torchvision (random weights unless --weights)"

    def load_module(self, spec: str, **options: Any) -> torch.nn.Module:
        from onnx_deploy.core.extras import require

        pretrained = options.pop("pretrained", False)
        image_size = options.pop("image_size", None)
        name = spec.partition(":")[2]
        torchvision = require("torchvision", spec)
        weights = "DEFAULT" if pretrained else None
        if name in detection_names():
            from onnx_deploy.convert.detectors import detector_for_export

            # weights_backbone=None: no ImageNet backbone download behind the user's back
            options.setdefault("weights_backbone", "DEFAULT" if pretrained else None)
            model = torchvision.models.get_model(name, weights=weights, **options)
            return detector_for_export(model, image_size or DETECTION_IMAGE_SHAPE[1:])
        available = set(torchvision.models.list_models(module=torchvision.models))
        if name not in available:
            close = sorted(n for n in available | detection_names() if name.split("_")[0] in n)
            raise ModelSpecError(
                f"torchvision has no classification or detection model {name!r}; similar: "
                f"{close[:8] or 'none'} (see torchvision.models.list_models())"
            )
        return torchvision.models.get_model(name, weights=weights, **options)

    def is_detector(self, spec: str) -> bool:
        return spec.partition(":")[2] in detection_names()

    def sample_shape(self, spec: str) -> tuple[int, ...]:
        return DETECTION_IMAGE_SHAPE if self.is_detector(spec) else DEFAULT_IMAGE_SHAPE

    def load(self, source: ModelSource, signature: Signature | None) -> LoadedModel:
        """A float image batch of the sample shape (default 3x224x224, detectors
        3x320x320) or the declared signature; random weights get realistic batch-norm
        statistics, and the note says so."""
        trained = self.trained(source)
        if signature is not None:
            model = load_model(source.target, weights=source.weights, pretrained=source.pretrained)
            return LoadedModel(model, (), "" if trained else RANDOM_WEIGHTS, signature, trained)
        shape = tuple(source.input_shape or self.sample_shape(source.target))
        detector = self.is_detector(source.target)
        image_size = tuple(shape[1:3]) if detector and len(shape) == 3 else None
        model = load_model(
            source.target, weights=source.weights, pretrained=source.pretrained,
            image_size=image_size,  # type: ignore[arg-type]
        )  # fmt: skip
        note = ""
        if not trained:
            # a two-stage detector needs targets in training mode: recalibrate its backbone
            inner = getattr(model, "model", None)
            two_stage = detector and not hasattr(model, "anchors")
            recalibrate_batchnorm(inner.backbone if two_stage else model, shape)  # type: ignore[union-attr]
            note = RECALIBRATED
        return LoadedModel(model, shape, note, None, trained)

    def contract(self, source: ModelSource, loaded: LoadedModel) -> ModelContract:
        base = super().contract(source, loaded)
        if self.is_detector(source.target):  # raw head outputs until NMS is added
            return replace(base, family="detector", task="detection", judge="elementwise")
        return replace(base, family="classifier", task="classification")


def recalibrate_batchnorm(
    model: torch.nn.Module,
    input_shape: tuple[int, ...],
    steps: int = 4,
    batch_size: int = 8,
    seed: int = 0,
) -> torch.nn.Module:
    """Re-estimate batch-norm statistics with a few forward passes on random inputs.

    A randomly initialised torchvision model has running stats (mean 0, var 1) that do
    not match its activations, so outputs shrink layer by layer (an untrained
    mobilenet_v3_small's logits are ~1e-10). Tolerances then "pass" while proving nothing
    and tiny values can hit slow denormal paths. A few passes in training mode give
    activation scales like a trained model's. Returns the model in eval mode.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the passes
        for _ in range(steps):
            model(torch.randn((batch_size, *input_shape), generator=gen))
    model.train(was_training)
    return model.eval()


def teaching_model(name: str = "resnet18", seed: int = 0) -> torch.nn.Module:
    """A torchvision architecture with random weights and realistic activation scales.

    For speed and export studies only; accuracy questions need trained weights.
    """
    import torch

    torch.manual_seed(seed)
    model = load_model(f"torchvision:{name}")
    return recalibrate_batchnorm(model, DEFAULT_IMAGE_SHAPE)
