"""Typed errors. Each message says what was expected, what was found and what to do."""

from __future__ import annotations


class OnnxDeployError(Exception):
    """Base class of every error this package raises on purpose."""


class ModelFileError(OnnxDeployError):
    """A model file is missing, unreadable, truncated or not ONNX."""


class OutputExistsError(OnnxDeployError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class CheckpointError(OnnxDeployError):
    """A checkpoint cannot be loaded safely or does not fit the model."""


class ModelSpecError(OnnxDeployError):
    """A model spec such as ``torchvision:resnet18`` cannot be resolved."""


class ExportError(OnnxDeployError):
    """torch -> ONNX export failed or produced a graph that does not check out.

    ``details`` holds the exporter's full output for debugging, ``step`` the dynamo
    exporter's step that failed (1 capture, 2 decompose, 3 translate; None if unknown)
    and ``cause`` the exporter's own one-line cause (its "Exception summary"). ``kind``
    names the known cause: ``data_dependent``, ``unsupported_op``, ``name_clash``,
    ``input_type``, ``dynamic_dim``, ``model_failed`` (PyTorch itself failed on the example
    inputs, before the exporter ran) or ``other``.
    """

    def __init__(
        self,
        message: str,
        details: str = "",
        step: int | None = None,
        cause: str = "",
        kind: str = "other",
    ) -> None:
        super().__init__(message)
        self.details = details
        self.step = step
        self.cause = cause
        self.kind = kind


class SlimError(OnnxDeployError):
    """onnxslim failed or changed the model's results."""


class InputMismatchError(OnnxDeployError, ValueError):
    """Inputs do not match the model's names, shapes or dtypes."""


class ProviderError(OnnxDeployError):
    """An execution provider that was asked for is not the one running."""


class ValidationError(OnnxDeployError):
    """Two models disagree beyond the tolerance."""


class QuantizeError(OnnxDeployError):
    """Quantization cannot proceed: bad calibration data, an already-quantized model,
    unknown nodes to exclude."""


class QuantizationWarning(UserWarning):
    """A quantization choice known to be slow or lossy: dynamic INT8 on convolutions, or
    int8 weights without reduce_range for a CPU without VNNI (saturation)."""


class EmulationError(OnnxDeployError):
    """A model could not be run on an emulated CPU (QEMU missing, or the run failed)."""


class MissingExtraError(OnnxDeployError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ServeError(OnnxDeployError):
    """The server cannot start: a port is taken, the model cannot load, or it stopped."""


class TritonError(OnnxDeployError):
    """A model that Triton cannot serve as asked, or a config that does not parse."""


class LoadTestError(OnnxDeployError):
    """The endpoint cannot be reached or does not serve the model."""


class WebError(OnnxDeployError):
    """Node.js, an npm package or Chromium is missing, or the page failed."""


class EdgeError(OnnxDeployError):
    """The ORT-format conversion failed or changed the model's outputs."""


class OptimizeError(OnnxDeployError):
    """The report card cannot be made: no FP32 model, or a target that is not there."""


class GenerationError(OnnxDeployError):
    """The model is not a decoder with a cache, or a generation setting is out of range."""


class FusionError(OnnxDeployError):
    """The fusion pass failed, or the fused graph does not match its parent."""


class TensorRTError(OnnxDeployError):
    """An engine could not be built or run; the message says why and what to try."""


class SurgeryError(OnnxDeployError, ValueError):
    """An edit cannot be made as asked: a name that does not exist or already exists, a
    dim out of range, models that do not fit together, or an edit that changed outputs."""


class SignatureError(InputMismatchError):
    """An input or dim declaration that cannot be understood, or does not fit the data."""


FIRST_LINE_LIMIT = 300  # characters of an upstream message quoted in one of ours


def first_line(error: BaseException | str, limit: int = FIRST_LINE_LIMIT) -> str:
    """The first non-empty line of an error's message (or of ``error`` itself), cut at
    ``limit`` characters; an exception with no message gives its class name. The one way
    an upstream error is quoted inside a message of this package."""
    text = str(error)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line and isinstance(error, BaseException):
        line = type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
