"""ONNX Runtime: the CPU provider, or CUDA where it really runs. It runs every ``.onnx``
file this package makes, ``com.microsoft`` contrib ops included (the fused transformer
graphs, dynamic INT8), with the session settings of ``infer.sessions.SessionSettings``
(threads, spinning, execution mode, memory arena and pattern)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from onnx_deploy.runtimes import Mode
from onnx_deploy.runtimes import Runtime

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner
    from onnx_deploy.infer.sessions import SessionSettings


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    title = "ONNX Runtime"
    package = "onnxruntime"
    devices = ("cpu", "cuda", "auto")
    contrib_ops = True
    order = 0

    def make_runner(
        self,
        path: str | os.PathLike[str],
        device: str,
        mode: Mode,
        settings: SessionSettings | None,
        name: str | None,
    ) -> Runner:
        from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, device, settings=settings, name=name)
