"""Which device to run on: the one answer to ``device="auto"``.

``auto`` means CUDA where it really works for the backend that will run, else the CPU.
"Really works" differs by backend: PyTorch says so with ``torch.cuda.is_available()``;
ONNX Runtime lists ``CUDAExecutionProvider`` even with no GPU, so a probe session decides
(``sessions.working_providers``).
"""

from __future__ import annotations

from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
Backend = Literal["onnxruntime", "torch", "any"]
DEVICES = ("auto", "cpu", "cuda")


def torch_cuda_available() -> bool:
    """True where torch is installed and sees a GPU (imports torch)."""
    from onnx_deploy.extras import available

    if not available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def ort_cuda_available() -> bool:
    """True where ONNX Runtime's CUDA provider really runs (a probe session decides)."""
    from onnx_deploy.sessions import working_providers

    return "CUDAExecutionProvider" in working_providers()


def resolve_device(device: str = "auto", backend: Backend = "onnxruntime") -> str:
    """``"cpu"`` or ``"cuda"`` for ``device`` (``auto``, ``cpu``, ``cuda``) on ``backend``.

    ``backend="any"``: CUDA if either PyTorch or ONNX Runtime can use it.
    """
    name = str(device).lower()
    if name in ("cpu", "cuda"):
        return name
    if name != "auto":
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if backend == "torch":
        return "cuda" if torch_cuda_available() else "cpu"
    if backend == "onnxruntime":
        return "cuda" if ort_cuda_available() else "cpu"
    return "cuda" if torch_cuda_available() or ort_cuda_available() else "cpu"
