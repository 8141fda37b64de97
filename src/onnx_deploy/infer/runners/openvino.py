"""The OpenVINO runner: the same ``.onnx`` file on OpenVINO's CPU plugin.

Torch-free, optional (``pip install 'onnx-deploy[openvino]'``). OpenVINO reads ONNX
directly (no conversion step) and compiles it for this CPU. Its CPU plugin picks the
arithmetic itself unless told: ``INFERENCE_PRECISION_HINT`` defaults to **bf16** on CPUs
with AVX512_BF16 or AMX, so a plain ``compile_model`` changes the model's precision without
anyone asking (about 2x faster than FP32 on the project's Zen 4 machine, 4-5x with AMX,
and errors of bf16 size: notebooks/MEASUREMENTS.md, "OpenVINO beside ONNX Runtime"). This
runner always sets the precision: ``precision="f32"`` (the default, FP32 as the file says),
``"bf16"`` (only where the CPU does bf16, else an error) or ``"f16"``.

What OpenVINO does with the files ``optimize`` builds: the FP32 graph runs in the hinted
precision; an FP16 graph's weights are stored in fp16 and computed in the hinted precision
(IR compression: a smaller file, not faster arithmetic); a QDQ INT8 graph runs its
convolutions and products on int8 (the low-precision transformations fuse the Q/DQ pairs).
``runtime_precisions`` counts what the compiled graph really runs in.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.extras import require
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.infer.runners.base import Runner

PRECISIONS = ("f32", "bf16", "f16")
# the OPTIMIZATION_CAPABILITIES entry that says the CPU runs each precision natively
CAPABILITY = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}


def openvino_module() -> Any:
    return require("openvino", "the OpenVINO runner")


def cpu_capabilities() -> tuple[str, ...]:
    """What OpenVINO's CPU plugin says this CPU runs (``FP32``, ``BF16``, ``INT8``, ...)."""
    ov = openvino_module()
    return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoRunner(Runner):
    """Run an ONNX file on OpenVINO (CPU), in an explicit inference precision.

    ``precision``: ``f32`` (default), ``bf16``, ``f16``: set as ``INFERENCE_PRECISION_HINT``,
    never left to the plugin's default. ``threads``: ``INFERENCE_NUM_THREADS`` (default:
    OpenVINO's, one per physical core). ``PERFORMANCE_HINT`` is ``LATENCY`` (one stream, as
    ONNX Runtime runs one call at a time).
    """

    backend = "openvino"

    def __init__(
        self,
        model: str | os.PathLike[str],
        precision: str = "f32",
        *,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        from onnx_deploy.infer.modelinfo import describe

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self._ov = openvino_module()
        path = Path(model)
        info = describe(path)  # a clear error for a missing or broken file, before OpenVINO
        self.model_path = str(path)
        self.precision = precision
        self.threads = threads
        self._inputs, self._outputs = info.inputs, info.outputs
        if precision != "f32" and CAPABILITY[precision] not in cpu_capabilities():
            raise ModelFileError(
                f"OpenVINO cannot run {precision} on this CPU (its capabilities: "
                f"{', '.join(cpu_capabilities())}); use precision='f32'"
            )
        super().__init__(name or path.name, "cpu")
        # the runtime's name (``onnx_deploy.runtimes``): results pair by it
        self.backend = "openvino" if precision == "f32" else f"openvino-{precision}"
        self._compiled: Any = None
        self._request: Any = None
        self._activate()
        self._active = True

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": self.precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config

    def _activate(self) -> None:
        if self._compiled is not None:
            return
        core = self._ov.Core()
        try:
            model = core.read_model(self.model_path)
            self._compiled = core.compile_model(model, "CPU", self._config())
        except RuntimeError as e:
            first = (str(e).strip().splitlines() or ["?"])[-1][:300]
            raise ModelFileError(
                f"OpenVINO cannot compile {self.model_path}: {first}. Check it on ONNX Runtime "
                "(onnx-deploy validate), or leave OpenVINO out (--runtimes onnxruntime)"
            ) from e
        self._request = self._compiled.create_infer_request()
        # OpenVINO's outputs in the order of the ONNX graph's, matched by name
        by_name = {}
        for port in self._compiled.outputs:
            for n in port.get_names():
                by_name[n] = port
        self._ports = [by_name.get(o.name, self._compiled.outputs[i])
                       for i, o in enumerate(self._outputs)]  # fmt: skip

    def _deactivate(self) -> None:
        self._request = None
        self._compiled = None

    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        results = self._request.infer(dict(feeds))
        return {
            o.name: np.array(results[p]) for o, p in zip(self._outputs, self._ports, strict=True)
        }

    def timed_call(self, data: Any) -> Any:
        feeds = self.feeds(data)
        self.activate()
        request = self._request
        for name, value in feeds.items():  # inputs set once: the timed call is infer() alone
            request.set_tensor(name, self._ov.Tensor(np.ascontiguousarray(value)))
        return request.infer

    def runtime_precisions(self) -> dict[str, int]:
        """How many nodes of the compiled graph run in each precision (``f32``, ``bf16``,
        ``u8``, ``i8``, ...), as OpenVINO's runtime model reports them."""
        self.activate()
        counts: Counter[str] = Counter()
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "runtimePrecision" in info:
                counts[str(info["runtimePrecision"].astype(str))] += 1
        return dict(counts.most_common())

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {"openvino": self._ov.__version__.split("-")[0],
                               "inference_precision": self.precision}  # fmt: skip
        if self._compiled is not None:
            env["intra_op_threads"] = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
            env["intra_op_threads_source"] = "set" if self.threads else "openvino default"
        return env
