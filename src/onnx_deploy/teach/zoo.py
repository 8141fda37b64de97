"""Models for teaching and the CLI: specs, safe checkpoint loading, realistic activations.

A model spec is ``torchvision:NAME`` (architecture from torchvision),
``path/to/file.py:factory`` (a function in a file that returns an ``nn.Module``) or
``hf:PATH`` (a Hugging Face ``save_pretrained`` folder, loaded offline: ``onnx_deploy.convert.hf``)
or ``project:NAME`` (the package's trained models: ``shapes_detector``, ``digits_cnn``).
torchvision ships architectures, not weights, and nothing is downloaded at run time
unless ``pretrained=True`` is asked for explicitly.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.convert.checkpoints import apply_checkpoint
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "torchvision:resnet18"
DEFAULT_IMAGE_SHAPE = (3, 224, 224)
# torchvision's detectors resize inside the model (to 800-1333 for most); exported, they
# take one fixed size, 320x320 unless --input-shape says otherwise
DETECTION_IMAGE_SHAPE = (3, 320, 320)
PROJECT_SHAPES = {"shapes_detector": (3, 160, 160), "digits_cnn": (1, 8, 8)}


def detection_names() -> set[str]:
    """torchvision's detection models (``torchvision.models.detection``)."""
    from onnx_deploy.core.extras import require

    torchvision = require("torchvision", "torchvision detectors")
    return set(torchvision.models.list_models(module=torchvision.models.detection))


def _load_torchvision(
    name: str, pretrained: bool, image_size: tuple[int, int] | None = None, **kwargs: Any
) -> torch.nn.Module:
    from onnx_deploy.core.extras import require

    torchvision = require("torchvision", f"torchvision:{name}")
    weights = "DEFAULT" if pretrained else None
    if name in detection_names():
        from onnx_deploy.convert.detectors import detector_for_export

        # weights_backbone=None: no ImageNet backbone download behind the user's back
        kwargs.setdefault("weights_backbone", "DEFAULT" if pretrained else None)
        model = torchvision.models.get_model(name, weights=weights, **kwargs)
        return detector_for_export(model, image_size or DETECTION_IMAGE_SHAPE[1:])
    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        close = sorted(n for n in available | detection_names() if name.split("_")[0] in n)[:8]
        raise ModelSpecError(
            f"torchvision has no classification or detection model {name!r}; similar: "
            f"{close or 'none'} (see torchvision.models.list_models())"
        )
    return torchvision.models.get_model(name, weights=weights, **kwargs)


def _load_project(name: str, **kwargs: Any) -> torch.nn.Module:
    """``project:NAME``: the package's own trained models."""
    if name == "shapes_detector":
        from onnx_deploy.teach.shapes import load_shapes_detector

        return load_shapes_detector()
    if name == "digits_cnn":
        from onnx_deploy.teach.digits import load_digits_model

        return load_digits_model()
    raise ModelSpecError(
        f"no project model {name!r}; use project:shapes_detector or project:digits_cnn"
    )


def _load_from_file(path: str, factory: str, **kwargs: Any) -> torch.nn.Module:
    import torch

    file = Path(path)
    if not file.is_file():
        raise ModelSpecError(f"{file}: no such file (model spec 'path/to/file.py:factory')")
    mod_name = f"_onnx_deploy_user_{file.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, file)
    if spec is None or spec.loader is None:
        raise ModelSpecError(f"cannot import {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    spec.loader.exec_module(module)
    fn = getattr(module, factory, None)
    if fn is None:
        names = [n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n])]
        raise ModelSpecError(f"{file} has no {factory!r}; callables there: {names}")
    model = fn(**kwargs)
    if not isinstance(model, torch.nn.Module):
        raise ModelSpecError(f"{file}:{factory} returned {type(model).__name__}, not an nn.Module")
    return model


def load_model(
    spec: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    image_size: tuple[int, int] | None = None,
    **kwargs: Any,
) -> torch.nn.Module:
    """Build a model from a spec and, optionally, safe weights. Returned in eval mode.

    ``pretrained=True`` asks torchvision for its published weights (needs internet the
    first time; cached under ``~/.cache/torch`` afterwards). A torchvision detector comes
    in its exportable form (``onnx_deploy.convert.detectors.detector_for_export``) for
    ``image_size`` (default 320x320).
    """
    from onnx_deploy.core.extras import require

    require("torch", f"loading {spec}")
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelSpecError(
            f"model spec {spec!r} not understood; use 'torchvision:resnet18', "
            "'path/to/file.py:factory', 'hf:path/to/saved_folder' or 'project:NAME'"
        )
    if kind == "hf":
        from onnx_deploy.convert.hf import load_hf_model

        model = load_hf_model(spec, **kwargs)
    elif kind == "torchvision":
        model = _load_torchvision(rest, pretrained, image_size, **kwargs)
    elif kind == "project":
        model = _load_project(rest, **kwargs)
    elif spec.rsplit(":", 1)[0].endswith(".py"):
        path, factory = spec.rsplit(":", 1)
        model = _load_from_file(path, factory, **kwargs)
    else:
        raise ModelSpecError(
            f"model spec {spec!r}: source {kind!r} unknown; use 'torchvision:NAME', "
            "'file.py:factory', 'hf:DIR' or 'project:NAME'"
        )
    if weights is not None:
        apply_checkpoint(model, weights)
    return model.eval()


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


def is_onnx_path(text: str) -> bool:
    """True for an ONNX file (``*.onnx``, or an existing file that is not a model spec)."""
    return text.endswith(".onnx") or (Path(text).is_file() and not is_spec(text))


def is_spec(text: str) -> bool:
    """``torchvision:NAME``, ``file.py:factory`` or ``hf:DIR`` (not an ONNX file path)."""
    return text.startswith(("torchvision:", "hf:", "project:")) or text.rsplit(":", 1)[0].endswith(
        ".py"
    )


def spec_name(spec: str) -> str:
    """A short name for files and tables: ``torchvision:resnet18`` -> ``resnet18``,
    ``hf:models/distilbert/`` -> ``distilbert``."""
    if spec.startswith("hf:"):
        return Path(spec.removeprefix("hf:").rstrip("/\\")).name or "model"
    return spec.rsplit(":", 1)[-1].removesuffix(".py")


def load_model_and_shape(
    spec: str,
    weights: str | os.PathLike[str] | None = None,
    input_shape: tuple[int, ...] | None = None,
    pretrained: bool = False,
) -> tuple[torch.nn.Module, tuple[int, ...], str]:
    """A model from a spec, the shape of one sample, and a note about its weights.

    torchvision specs default to ``DEFAULT_IMAGE_SHAPE``; other specs need
    ``input_shape``. torchvision models with random weights get realistic batch-norm
    statistics (``recalibrate_batchnorm``), and the note says so.
    """
    name = spec.partition(":")[2]
    detector = spec.startswith("torchvision:") and name in detection_names()
    if input_shape is None:
        if spec.startswith("project:") and name in PROJECT_SHAPES:
            input_shape = PROJECT_SHAPES[name]
        elif not spec.startswith("torchvision:"):
            raise ModelSpecError(
                f"{spec} needs the shape of one input sample: input_shape=(3, 224, 224) "
                "(CLI: --input-shape 3,224,224)"
            )
        else:
            input_shape = DETECTION_IMAGE_SHAPE if detector else DEFAULT_IMAGE_SHAPE
    image_size = tuple(input_shape[1:3]) if detector and len(input_shape) == 3 else None
    model = load_model(spec, weights=weights, pretrained=pretrained, image_size=image_size)  # type: ignore[arg-type]
    note = ""
    if weights is None and not pretrained and spec.startswith("torchvision:"):
        # a two-stage detector needs targets in training mode: recalibrate its backbone
        inner = getattr(model, "model", None)
        two_stage = detector and not hasattr(model, "anchors")
        recalibrate_batchnorm(inner.backbone if two_stage else model, input_shape)  # type: ignore[union-attr]
        note = "random weights (no --weights/--pretrained); batch-norm statistics re-estimated"
    return model, tuple(input_shape), note


RANDOM_WEIGHTS = "random weights (no --weights): outputs prove little about accuracy"


@dataclass(frozen=True)
class LoadedModel:
    """A source's PyTorch model, one sample's shape (the one-float-input case, else ``()``),
    a note on its weights, and its signature (None: one float input of ``sample_shape``)."""

    model: Any
    sample_shape: tuple[int, ...]
    note: str
    signature: Signature | None


@dataclass(frozen=True)
class ModelSource:
    """What a command is pointed at and what comes with it: a model spec
    (``torchvision:NAME``, ``path.py:factory``, ``hf:DIR``) or an ``.onnx`` file; its
    ``weights``; the declared signature (``inputs``, ``dims``) or, for one float input,
    ``input_shape``; ``data``, a ``.npz``/``.pt``/``.npy`` file of samples (example inputs
    to export with, real ones to validate and time on); ``pretrained`` torchvision weights.
    A plain string is a source with nothing else (``ModelSource.of``)."""

    target: str
    weights: str | None = None
    input_shape: tuple[int, ...] | None = None
    inputs: tuple[InputSpec, ...] = ()
    dims: tuple[DimRange, ...] = ()
    data: str | None = None
    pretrained: bool = False

    @classmethod
    def of(cls, source: str | os.PathLike[str] | ModelSource) -> ModelSource:
        return source if isinstance(source, ModelSource) else cls(str(source))

    @property
    def is_onnx(self) -> bool:
        return is_onnx_path(self.target)

    @property
    def name(self) -> str:
        """A short name for files and tables (``resnet18``, ``model.onnx``)."""
        return Path(self.target).name if self.is_onnx else spec_name(self.target)

    def with_target(self, target: str) -> ModelSource:
        return dataclasses.replace(self, target=target)

    def load(self, signature: Signature | None = None) -> LoadedModel:
        """The PyTorch model. ``signature``: the one the caller built from ``inputs``,
        ``dims`` and example data (an ``hf:`` folder's comes from its config, with ``dims``
        as its ranges, when not given)."""
        spec, weights = self.target, self.weights
        if spec.startswith("hf:"):
            from onnx_deploy.convert.hf import has_weights
            from onnx_deploy.convert.hf import hf_folder
            from onnx_deploy.convert.hf import signature_for

            model = load_model(spec, weights=weights)
            trained = weights is not None or has_weights(hf_folder(spec))
            note = (
                "" if trained else RANDOM_WEIGHTS.replace("--weights", "weights file in the folder")
            )
            return LoadedModel(model, (), note, signature or signature_for(model, self.dims))
        if signature is None:
            model, shape, note = load_model_and_shape(
                spec, weights, self.input_shape, self.pretrained
            )
            return LoadedModel(model, shape, note, None)
        note = RANDOM_WEIGHTS if weights is None and not self.pretrained else ""
        model = load_model(spec, weights=weights, pretrained=self.pretrained)
        return LoadedModel(model, (), note, signature)
