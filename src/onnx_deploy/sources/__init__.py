"""Where models come from: one registry of model sources, one file per kind of spec.

A model spec names a PyTorch model: ``torchvision:NAME`` (an architecture from
torchvision), ``hf:DIR`` (a Hugging Face ``save_pretrained`` folder, offline),
``path/to/file.py:factory`` (a function that returns an ``nn.Module``) or ``project:NAME``
(this package's trained models). Each kind is one module in this folder with one
``Source`` subclass that says how to load the model, the shape of one sample where it
has one default, the model's contract (``core.contract``: family, task, how to judge it,
input kinds and ranges, written into the file it is exported to) and any labelled data
that ships with it. A new kind of source is one new file here (``core.registry``).

``ModelSource`` is what a command is pointed at: a spec (or an ``.onnx`` file) and what
comes with it (weights, a declared signature, data). Nothing is downloaded at run time
unless ``pretrained=True`` asks torchvision for its published weights.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from onnx_deploy.core.contract import ModelContract
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.registry import discover
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature

if TYPE_CHECKING:
    import torch

RANDOM_WEIGHTS = "random weights (no --weights): outputs prove little about accuracy"


@dataclass(frozen=True)
class LoadedModel:
    """A source's PyTorch model, one sample's shape (the one-float-input case, else ``()``),
    a note on its weights, its signature (None: one float input of ``sample_shape``) and
    whether its weights are trained (random weights make agreement a coin toss)."""

    model: Any
    sample_shape: tuple[int, ...]
    note: str
    signature: Signature | None
    trained: bool = True


@dataclass(frozen=True)
class TaskData:
    """Labelled data that ships with a source: samples to calibrate with, samples to
    validate on and their labels (class ids, or per-image ``Detections``)."""

    calibration: Any
    validation: Any
    labels: Any
    note: str


class Source:
    """One kind of model spec. Subclasses set ``name`` (the spec's prefix before ``:``),
    ``example`` and ``help``, and implement ``load_module``; they may override
    ``sample_shape``, ``load``, ``contract`` and ``task_data``."""

    name: ClassVar[str] = ""
    example: ClassVar[str] = ""
    help: ClassVar[str] = ""

    def matches(self, spec: str) -> bool:
        return spec.startswith(f"{self.name}:")

    def short_name(self, spec: str) -> str:
        """A name for files and tables: ``torchvision:resnet18`` -> ``resnet18``."""
        return spec.partition(":")[2] or "model"

    def load_module(self, spec: str, **options: Any) -> torch.nn.Module:
        """The bare model the spec names (weights are applied by ``load_model``);
        ``options``: ``pretrained``, ``image_size`` (torchvision), or the factory's own."""
        raise NotImplementedError

    def sample_shape(self, spec: str) -> tuple[int, ...] | None:
        """One input sample's shape when the spec has a default (3x224x224), else None."""
        return None

    def trained(self, source: ModelSource) -> bool:
        return source.weights is not None or source.pretrained

    def load(self, source: ModelSource, signature: Signature | None) -> LoadedModel:
        """The PyTorch model with its signature: the caller's (from ``inputs``, ``dims``
        and example data) or, when None, one float input of the sample shape."""
        trained = self.trained(source)
        if signature is not None:
            note = "" if trained else RANDOM_WEIGHTS
            model = load_model(source.target, weights=source.weights, pretrained=source.pretrained)
            return LoadedModel(model, (), note, signature, trained)
        shape = source.input_shape or self.sample_shape(source.target)
        if shape is None:
            raise ModelSpecError(
                f"{source.target} needs the shape of one input sample: input_shape=(3, 224, 224) "
                "(CLI: --input-shape 3,224,224)"
            )
        model = load_model(source.target, weights=source.weights, pretrained=source.pretrained)
        return LoadedModel(model, tuple(shape), "" if trained else RANDOM_WEIGHTS, None, trained)

    def contract(self, source: ModelSource, loaded: LoadedModel) -> ModelContract:
        """What the exported file should carry. The default: a model judged by top-1
        agreement where its outputs are classifier-shaped (``compare``'s rule)."""
        sig = loaded.signature
        return ModelContract(
            source=source.target,
            family="model",
            judge="top1",
            weights="trained" if loaded.trained else "random",
            inputs=sig.inputs if sig is not None else (),
            dims=sig.dims if sig is not None else (),
        )

    def task_data(self, source: ModelSource) -> TaskData | None:
        """Labelled data that ships with the source (``project:`` models), else None."""
        return None


@cache
def sources() -> dict[str, Source]:
    """Every kind of model source, by name (one module each in this folder)."""
    return {name: cls() for name, cls in discover(__name__, Source).items()}


def source_for(spec: str) -> Source:
    """The source whose kind of spec ``spec`` is, or ``ModelSpecError`` listing them."""
    for src in sources().values():
        if src.matches(spec):
            return src
    examples = ", ".join(f"'{s.example}'" for s in sources().values())
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelSpecError(f"model spec {spec!r} not understood; use {examples}")
    raise ModelSpecError(f"model spec {spec!r}: source {kind!r} unknown; use {examples}")


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
    from onnx_deploy.convert.checkpoints import apply_checkpoint
    from onnx_deploy.core.extras import require

    require("torch", f"loading {spec}")
    asked = {"pretrained": pretrained, "image_size": image_size}
    model = source_for(spec).load_module(spec, **{k: v for k, v in asked.items() if v}, **kwargs)
    if weights is not None:
        apply_checkpoint(model, weights)
    return model.eval()


def is_onnx_path(text: str) -> bool:
    """True for an ONNX file (``*.onnx``, or an existing file that is not a model spec)."""
    return text.endswith(".onnx") or (Path(text).is_file() and not is_spec(text))


def is_spec(text: str) -> bool:
    """A model spec of some registered kind (not an ONNX file path)."""
    return any(src.matches(text) for src in sources().values())


def spec_name(spec: str) -> str:
    """A short name for files and tables: ``torchvision:resnet18`` -> ``resnet18``,
    ``hf:models/distilbert/`` -> ``distilbert``."""
    for src in sources().values():
        if src.matches(spec):
            return src.short_name(spec)
    return spec.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class ModelSource:
    """What a command is pointed at and what comes with it: a model spec
    (``torchvision:NAME``, ``path.py:factory``, ``hf:DIR``, ``project:NAME``) or an ``.onnx``
    file; its ``weights``; the declared signature (``inputs``, ``dims``) or, for one float
    input, ``input_shape``; ``data``, a ``.npz``/``.pt``/``.npy`` file of samples (example
    inputs to export with, real ones to validate and time on); ``pretrained`` torchvision
    weights. A plain string is a source with nothing else (``ModelSource.of``)."""

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
    def kind(self) -> Source:
        """The registered source for this spec (``ModelSpecError`` for an unknown one)."""
        return source_for(self.target)

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
        return self.kind.load(self, signature)

    def contract(self, loaded: LoadedModel) -> ModelContract:
        """The contract an export of this source writes into its file."""
        return self.kind.contract(self, loaded)

    def task_data(self) -> TaskData | None:
        return None if self.is_onnx else self.kind.task_data(self)
