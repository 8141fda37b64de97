"""onnx-deploy: take a PyTorch model to a validated ONNX deployment.

Importing the package is cheap: torch, onnxruntime and matplotlib load only when a
function that needs them runs. Stages live in their own modules::

    from onnx_deploy.export import export_model        # torch -> ONNX
    from onnx_deploy.slim import slim_model            # onnxslim, checked
    from onnx_deploy.runners import OnnxRuntimeRunner, TorchRunner  # one interface per backend
    from onnx_deploy.validate import compare           # any two runners
    from onnx_deploy.bench import benchmark            # any runners, plain or interleaved
    from onnx_deploy.quantize import quantize_static_model, convert_fp16
    from onnx_deploy.pipeline import run_pipeline      # spec -> export -> slim -> validate -> bench

``compare_torch_onnx``, ``compare_onnx``, ``runtime.Predictor``, ``benchmark_onnx`` and
``benchmark_torch`` are thin wrappers over these. The inference side (runners on ONNX
Runtime, inspect, bench of .onnx files) needs only numpy, onnx and onnxruntime.
"""

from __future__ import annotations

from onnx_deploy.errors import (
    CheckpointError,
    ExportError,
    InputMismatchError,
    MissingExtraError,
    ModelFileError,
    OnnxDeployError,
    OutputExistsError,
    ProviderError,
    QuantizationWarning,
    QuantizeError,
    SlimError,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ExportError",
    "InputMismatchError",
    "MissingExtraError",
    "ModelFileError",
    "OnnxDeployError",
    "OutputExistsError",
    "ProviderError",
    "QuantizationWarning",
    "QuantizeError",
    "SlimError",
    "ValidationError",
    "__version__",
]
