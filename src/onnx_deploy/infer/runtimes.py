"""The runtimes an ONNX file can be timed and validated on, by name: one place that turns
``--runtimes onnxruntime,openvino`` into runners.

``onnxruntime`` is ONNX Runtime (the CPU or CUDA provider); ``openvino`` is OpenVINO's CPU
plugin in FP32, ``openvino-bf16`` the same plugin told to compute in bf16 (where the CPU
has AVX512_BF16 or AMX). OpenVINO is optional: ``check_runtimes`` says how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.extras import available
from onnx_deploy.core.extras import install_hint

RUNTIMES = ("onnxruntime", "openvino", "openvino-bf16")
OPENVINO_PRECISION = {"openvino": "f32", "openvino-bf16": "bf16"}


def parse_runtimes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"onnxruntime,openvino"`` -> ``("onnxruntime", "openvino")``, checked."""
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        raise ValueError(f"unknown runtime {unknown or text!r}; use some of {', '.join(RUNTIMES)}")
    return tuple(dict.fromkeys(names))


def check_runtimes(runtimes: Sequence[str]) -> None:
    """Raise ``MissingExtraError`` when a runtime asked for is not installed."""
    if any(r.startswith("openvino") for r in runtimes) and not available("openvino"):
        raise MissingExtraError(
            f"--runtimes {','.join(runtimes)} needs OpenVINO, which is not installed: "
            f"{install_hint('openvino')}; or leave it out (--runtimes onnxruntime)"
        )


def runtime_runner(
    runtime: str,
    model: str | os.PathLike[str],
    device: str = "cpu",
    *,
    threads: int | None = None,
    name: str | None = None,
) -> Any:
    """A runner for ``model`` on ``runtime`` (one of ``RUNTIMES``)."""
    if runtime == "onnxruntime":
        from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model, device, threads=threads, name=name)
    if runtime in OPENVINO_PRECISION:
        from onnx_deploy.infer.runners.openvino import OpenVinoRunner

        return OpenVinoRunner(model, OPENVINO_PRECISION[runtime], threads=threads, name=name)
    raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
