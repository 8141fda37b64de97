"""OpenVINO's CPU plugin on the same ``.onnx`` file (``infer.runners.openvino``).

Two modes: the default computes in f32, as the file says; ``bf16`` tells the plugin to
compute in bf16 (where the CPU has AVX512_BF16 or AMX), which changes the precision of an
FP32 file without changing a byte of it, so it is judged by the bf16 tolerance. The plugin
picks bf16 by itself on such CPUs when not told; the runner always tells it. OpenVINO
cannot read ONNX Runtime's ``com.microsoft`` contrib ops (fused transformer graphs,
dynamic INT8). Of the session settings it takes the thread count.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from onnx_deploy.runtimes import DEFAULT_MODE
from onnx_deploy.runtimes import Mode
from onnx_deploy.runtimes import Request
from onnx_deploy.runtimes import Runtime

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner


class OpenVino(Runtime):
    name = "openvino"
    title = "OpenVINO"
    package = "openvino"
    modes = (
        Mode("", "", "f32"),
        Mode("bf16", "BF16", "bf16", precision="bf16", cpu=("BF16",)),
    )
    order = 10

    def accepts(self, path: str | os.PathLike[str], mode: Mode = DEFAULT_MODE) -> str:
        why = super().accepts(path, mode)
        if why or not mode.cpu:
            return why
        from onnx_deploy.infer.runners.openvino import cpu_capabilities

        missing = [c for c in mode.cpu if c not in cpu_capabilities()]
        return f"this CPU has no {', '.join(missing)} for OpenVINO" if missing else ""

    def make_runner(self, request: Request) -> Runner:
        from onnx_deploy.infer.runners.openvino import OpenVinoRunner

        threads = request.settings.threads if request.settings is not None else None
        hint = request.mode.setting or "f32"
        return OpenVinoRunner(request.path, hint, threads=threads, name=request.name)

    def describe_run(self, runner: Runner) -> str:
        kinds = ", ".join(
            f"{n} {k}"
            for k, n in runner.runtime_precisions().items()
            if k != "dynamic"  # type: ignore[attr-defined]
        )
        return f"INFERENCE_PRECISION_HINT {runner.precision}; nodes run in {kinds}"  # type: ignore[attr-defined]
