"""Which providers really run here, and the one answer to ``device="auto"``.

Torch-free on purpose: a production inference image ships onnxruntime and numpy only.

onnxruntime lists ``CUDAExecutionProvider`` as *available* whenever the GPU wheel is
installed, GPU or not, and a session that asks for CUDA silently runs on the CPU when
CUDA cannot start. So ``working_providers`` opens a tiny probe session per provider to learn
what works, and ``auto`` means CUDA only where that probe ran. PyTorch's answer is
``onnx_deploy.convert.runners.pytorch.torch_device`` (it needs torch).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
from typing import Any
from typing import Literal

from onnx_deploy.core.errors import ProviderError

Device = Literal["auto", "cpu", "cuda"]
DEVICES = ("auto", "cpu", "cuda")

PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}

# A one-node Relu model (IR version 8, opset 13), built with onnx.helper and stored as
# bytes so that probing providers needs neither onnx nor a file. tests/test_runtime.py
# rebuilds it to prove these bytes are what they claim.
PROBE_MODEL = base64.b64decode(
    "CAgSC29ubngtZGVwbG95OjcKDAoBeBIBeSIEUmVsdRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgB"
    "EgQKAggBQgQKABAN"
)


def ort_module() -> Any:
    import onnxruntime

    quiet_logs()
    return onnxruntime


@functools.cache
def quiet_logs(severity: int = 3) -> None:
    """Silence onnxruntime's C++ warnings (3 = errors only).

    ``SessionOptions.log_severity_level`` does not silence provider-loading messages;
    the process-wide default logger does.
    """
    import onnxruntime

    onnxruntime.set_default_logger_severity(severity)


def resolve_provider(name: str) -> str:
    """``'cuda'`` -> ``'CUDAExecutionProvider'``; full names pass through."""
    if name.endswith("ExecutionProvider"):
        return name
    try:
        return PROVIDER_ALIASES[name.lower()]
    except KeyError:
        raise ProviderError(
            f"unknown provider {name!r}; use one of {sorted(PROVIDER_ALIASES)} "
            "or a full name such as 'CUDAExecutionProvider'"
        ) from None


@functools.cache
def working_providers() -> tuple[str, ...]:
    """Providers that really run here, found by opening a probe session with each.

    Compare with ``onnxruntime.get_available_providers()``, which lists what the wheel
    was built with (CUDA and TensorRT even on a machine without a GPU).
    """
    ort_mod = ort_module()
    works = []
    # Failing providers log at ERROR level from C++ and print from Python; a probe
    # failure is an answer here, not an error, so silence both while probing.
    ort_mod.set_default_logger_severity(4)
    try:
        for provider in ort_mod.get_available_providers():
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    sess = ort_mod.InferenceSession(PROBE_MODEL, providers=[provider])
            except Exception:
                continue
            if sess.get_providers()[0] == provider:
                works.append(provider)
    finally:
        ort_mod.set_default_logger_severity(3)
    return tuple(works)


def default_providers(device: Device | str = "auto") -> list[str]:
    """Provider list for a device: ``auto`` takes CUDA only where CUDA really runs."""
    if device in ("auto", "cpu", "cuda"):
        device = resolve_device(device)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [resolve_provider(device), "CPUExecutionProvider"]


def check_device(device: str) -> str:
    """``device`` lower-cased, after checking it is one of ``DEVICES``."""
    name = str(device).lower()
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return name


def ort_cuda_available() -> bool:
    """True where ONNX Runtime's CUDA provider really runs (a probe session decides)."""
    return "CUDAExecutionProvider" in working_providers()


def resolve_device(device: str = "auto") -> str:
    """``"cpu"`` or ``"cuda"`` for ``device`` (``auto``, ``cpu``, ``cuda``) on ONNX Runtime:
    ``auto`` is CUDA where its provider really runs, else the CPU."""
    name = check_device(device)
    if name != "auto":
        return name
    return "cuda" if ort_cuda_available() else "cpu"
