"""TensorRT on an NVIDIA GPU: it runs the engines (``.plan``) that the TensorRT engine pass
builds from an FP32, FP16 or QDQ INT8 graph (TensorRT 11 takes the precision from the
graph). It needs the ``tensorrt`` package and a GPU; where either is missing it says so
and how to get them (``convert.tensorrt.INSTALL_HINT``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from onnx_deploy.runtimes import Request
from onnx_deploy.runtimes import Runtime

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner


class TensorRT(Runtime):
    name = "tensorrt"
    title = "TensorRT"
    package = "tensorrt"
    devices = ("cuda",)  # an NVIDIA GPU: --target cuda
    formats = (".plan",)
    order = 20

    def install_hint(self) -> str:
        from onnx_deploy.convert.tensorrt import INSTALL_HINT

        return INSTALL_HINT

    def make_runner(self, request: Request) -> Runner:
        from onnx_deploy.convert.runners.tensorrt import TensorRTRunner

        return TensorRTRunner(request.path, name=request.name)
