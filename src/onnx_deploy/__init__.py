"""onnx-deploy: take a PyTorch model to a validated ONNX deployment.

Everything a user calls is importable from here by name; the folders are the layers
(README, "Layout")::

    from onnx_deploy import export_model, slim_model, compare, benchmark
    from onnx_deploy import OnnxRuntimeRunner, TorchRunner, run_pipeline

Importing the package is cheap: each name's module (and torch, onnxruntime, matplotlib)
loads on first use. The inference side (``core/``, ``infer/``, ``serve/``, ``targets/``)
needs only numpy, onnx and onnxruntime; an import contract (``make lint-imports``) keeps it so.
"""

from __future__ import annotations

import importlib
from typing import Any

from onnx_deploy.core.errors import CheckpointError
from onnx_deploy.core.errors import EdgeError
from onnx_deploy.core.errors import EmulationError
from onnx_deploy.core.errors import ExportError
from onnx_deploy.core.errors import FusionError
from onnx_deploy.core.errors import GenerationError
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import LoadTestError
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.errors import OptimizeError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.errors import ProviderError
from onnx_deploy.core.errors import QuantizationWarning
from onnx_deploy.core.errors import QuantizeError
from onnx_deploy.core.errors import ServeError
from onnx_deploy.core.errors import SignatureError
from onnx_deploy.core.errors import SlimError
from onnx_deploy.core.errors import SurgeryError
from onnx_deploy.core.errors import TensorRTError
from onnx_deploy.core.errors import TritonError
from onnx_deploy.core.errors import ValidationError
from onnx_deploy.core.errors import WebError

__version__ = "0.1.0"

# public modules, and public name -> the module that defines it (loaded on first access)
_MODULES: dict[str, str] = {"surgery": "convert.surgery"}
_PUBLIC: dict[str, str] = {
    # the shared pieces
    "TensorSpec": "core.specs",
    "Signature": "core.signature",
    "DimRange": "core.signature",
    "cpu_info": "core.cpu",
    "int8_profile": "core.cpu",
    # running, comparing, timing
    "Runner": "infer.runners.base",
    "OnnxRuntimeRunner": "infer.runners.onnxrt",
    "NodeRunner": "infer.runners.node",
    "OpenVinoRunner": "infer.runners.openvino",
    "profile_model": "infer.profile",
    "ProfileResult": "infer.profile",
    "machine_peak": "infer.peak",
    "MachinePeak": "infer.peak",
    "model_flops": "infer.flops",
    "study_settings": "infer.tuning",
    "SessionSettings": "infer.sessions",
    "Predictor": "infer.predictor",
    "resolve_device": "infer.providers",
    "create_session": "infer.sessions",
    "session_options": "infer.sessions",
    "working_providers": "infer.providers",
    "describe": "infer.modelinfo",
    "load_onnx": "infer.modelinfo",
    "Tolerance": "infer.compare",
    "compare": "infer.compare",
    "compare_results": "infer.compare",
    "compare_onnx": "infer.compare",
    "top1_accuracy": "infer.compare",
    "ValidationReport": "infer.compare",
    "onnx_intermediate_differences": "infer.intermediates",
    "Detections": "infer.detections",
    "split_detections": "infer.detections",
    "compare_detections": "infer.detections",
    "mean_average_precision": "infer.detections",
    "reference_nms": "infer.detections",
    "benchmark": "infer.bench",
    "benchmark_onnx": "infer.bench",
    "benchmark_onnx_interleaved": "infer.bench",
    "comparison_table": "infer.bench",
    "relative_table": "infer.bench",
    "generate": "infer.generate",
    # making models
    "TorchRunner": "convert.runners.pytorch",
    "TensorRTRunner": "convert.runners.tensorrt",
    "torch_device": "convert.runners.pytorch",
    "export_model": "convert.export",
    "slim_model": "convert.slim",
    "quantize_static_model": "convert.quantize",
    "quantize_dynamic_model": "convert.quantize",
    "quantize_for_tensorrt": "convert.quantize",
    "convert_fp16": "convert.quantize",
    "fuse_transformer": "convert.fusion",
    "build_engine": "convert.tensorrt",
    "check_tensorrt": "convert.tensorrt_rules",
    "trtexec_command": "convert.tensorrt",
    "polygraphy_commands": "convert.tensorrt",
    "derive_profile": "convert.tensorrt",
    "ort_tensorrt_runner": "convert.runners.tensorrt",
    "load_hf_model": "convert.hf",
    "export_decoder": "convert.hf",
    "hf_generate": "convert.hf",
    "quantize_weight_only": "convert.weightonly",
    "check_tokens": "infer.tokens",
    "check_generation": "workflows.generation",
    "bench_generation": "workflows.generation",
    "compare_torch_onnx": "convert.verify",
    "benchmark_torch": "convert.verify",
    "intermediate_differences": "convert.verify",
    "edit_file": "convert.surgery",
    "add_nms": "convert.surgery.detection",
    "add_letterbox": "convert.surgery.detection",
    "efficient_nms": "convert.surgery.detection",
    "OneStageDetector": "convert.detectors",
    "detector_for_export": "convert.detectors",
    # serving and other targets
    "export_repository": "serve.triton",
    "check_layout": "serve.triton",
    "start_server": "serve.serving",
    "load_test": "serve.loadtest",
    "bad_requests": "serve.loadtest",
    "write_web_app": "targets.web",
    "run_in_browser": "targets.web",
    "to_ort_format": "targets.edge",
    "check_targets": "targets.parity",
    "plot_latency": "present.plots",
    "plot_op_histogram": "present.plots",
    # passes and runtimes, by name
    "run_pass": "passes",
    "passes": "passes",
    "runtimes": "runtimes",
    # where models come from
    "load_model": "sources",
    "teaching_model": "sources.torchvision",
    "ModelSource": "sources",
    # models for teaching
    "load_digits_model": "teach.digits",
    "load_digits_split": "teach.digits",
    "load_shapes_detector": "teach.shapes",
    "make_shapes": "teach.shapes",
    # whole jobs
    "run_pipeline": "workflows.pipeline",
    "validate_model": "workflows.validate",
    "optimize": "workflows.optimize",
    "report_card": "workflows.optimize",
    "OptimizeConfig": "workflows.optimize",
    "Goal": "workflows.optimize",
    "run_doctor": "workflows.doctor",
}

__all__ = [
    "CheckpointError",
    "EdgeError",
    "EmulationError",
    "ExportError",
    "FusionError",
    "GenerationError",
    "InputMismatchError",
    "LoadTestError",
    "MissingExtraError",
    "ModelFileError",
    "ModelSpecError",
    "OnnxDeployError",
    "OptimizeError",
    "OutputExistsError",
    "ProviderError",
    "QuantizationWarning",
    "QuantizeError",
    "ServeError",
    "SignatureError",
    "SlimError",
    "SurgeryError",
    "TensorRTError",
    "TritonError",
    "ValidationError",
    "WebError",
    "__version__",
]
__all__ += sorted([*_PUBLIC, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = importlib.import_module(f"onnx_deploy.{_MODULES[name]}")
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(f"onnx_deploy.{_PUBLIC[name]}"), name)
    else:
        raise AttributeError(f"module 'onnx_deploy' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
