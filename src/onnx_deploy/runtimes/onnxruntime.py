"""ONNX Runtime: the CPU provider, or CUDA where it really runs. It runs every ``.onnx``
file this package makes, ``com.microsoft`` contrib ops included (the fused transformer
graphs, dynamic INT8), with the session settings of ``infer.sessions.SessionSettings``
(threads, spinning, execution mode, memory arena and pattern)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnx_deploy.runtimes import Request
from onnx_deploy.runtimes import Runtime

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    title = "ONNX Runtime"
    package = "onnxruntime"
    devices = ("cpu", "cuda", "auto")
    contrib_ops = True
    order = 0

    def make_runner(self, request: Request) -> Runner:
        from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

        return OnnxRuntimeRunner(
            request.path, request.device, settings=request.settings, name=request.name
        )
