"""onnx-deploy: take a PyTorch model to a validated ONNX deployment.

Importing the package is cheap: torch, onnxruntime and matplotlib load only when a
function that needs them runs. Stages live in their own modules::

    from onnx_deploy.export import export_model        # torch -> ONNX
    from onnx_deploy.slim import slim_model            # onnxslim, checked
    from onnx_deploy.validate import compare_torch_onnx, compare_onnx
    from onnx_deploy.runtime import create_session, Predictor
    from onnx_deploy.quantize import quantize_static_model, convert_fp16
    from onnx_deploy.bench import benchmark_onnx, benchmark_torch
"""

from __future__ import annotations

from onnx_deploy.errors import (
    CheckpointError,
    ExportError,
    InputMismatchError,
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
