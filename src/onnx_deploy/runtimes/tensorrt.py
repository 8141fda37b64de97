"""TensorRT on an NVIDIA GPU: it runs the engines (``.plan``) that the TensorRT engine pass
builds from an FP32, FP16 or QDQ INT8 graph (TensorRT 11 takes the precision from the
graph). It needs the ``tensorrt`` package and a GPU; where either is missing it says so
and how to get them (``convert.tensorrt.INSTALL_HINT``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from onnx_deploy.runtimes import Mode
from onnx_deploy.runtimes import Runtime

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner
    from onnx_deploy.infer.sessions import SessionSettings


class TensorRT(Runtime):
    name = "tensorrt"
    title = "TensorRT"
    package = "tensorrt"
    devices = ("cuda",)
    formats = (".plan",)
    order = 20

    def available(self, device: str = "cpu") -> str:
        if device != "cuda":
            return "TensorRT needs an NVIDIA GPU (--target cuda)"
        from onnx_deploy.core.extras import available

        if not available("tensorrt"):
            from onnx_deploy.convert.tensorrt import INSTALL_HINT

            return f"TensorRT is not installed: {INSTALL_HINT}"
        return ""

    def make_runner(
        self,
        path: str | os.PathLike[str],
        device: str,
        mode: Mode,
        settings: SessionSettings | None,
        name: str | None,
    ) -> Runner:
        from onnx_deploy.convert.runners.tensorrt import TensorRTRunner

        return TensorRTRunner(path, name=name)
