"""Runners: the one way to execute a model, whatever the backend.

A runner has a name, input and output specs (``onnx_deploy.specs.TensorSpec``),
``infer(feeds) -> {output_name: array}``, and a context manager for its resources (a
session, a module on a device). The comparison (``onnx_deploy.validate.compare``) and the
benchmark (``onnx_deploy.bench.benchmark``) take runners and never ask which backend made
the outputs, as Polygraphy's runners and Comparator do. A new backend is one new module
here with one ``Runner`` subclass::

    from onnx_deploy.runners import OnnxRuntimeRunner, TorchRunner

    with OnnxRuntimeRunner("model.onnx") as ort_runner:
        outputs = ort_runner.infer({"input": x})

``OnnxRuntimeRunner`` needs onnxruntime only; ``TorchRunner`` imports torch when used.
"""

from __future__ import annotations

from typing import Any

from onnx_deploy.runners.base import Runner

__all__ = ["NodeRunner", "OnnxRuntimeRunner", "Runner", "TorchRunner"]


def __getattr__(name: str) -> Any:  # import each backend's module only when it is asked for
    if name == "OnnxRuntimeRunner":
        from onnx_deploy.runners.onnxrt import OnnxRuntimeRunner

        return OnnxRuntimeRunner
    if name == "NodeRunner":
        from onnx_deploy.runners.node import NodeRunner

        return NodeRunner
    if name == "TorchRunner":
        from onnx_deploy.runners.pytorch import TorchRunner

        return TorchRunner
    raise AttributeError(name)
