"""Optional dependencies, and the message that names the extra to install.

The core install (numpy, onnx, onnxruntime-gpu) runs models, inspects and benchmarks them;
exporting needs ``onnx-deploy[export]``, the notebooks and plots ``onnx-deploy[notebooks]``.
A module that needs an optional package asks for it through ``require`` when it runs, so
``import onnx_deploy`` and ``onnx-deploy --help`` work on the core install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from onnx_deploy.core.errors import MissingExtraError

# top-level module -> (the extra that installs it, its name on PyPI)
EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("export", "torch"), "torchvision": ("export", "torchvision"),
    "onnxscript": ("export", "onnxscript"), "onnxslim": ("export", "onnxslim"),
    "onnx_ir": ("export", "onnx-ir"),
    "transformers": ("hf", "transformers"), "openvino": ("openvino", "openvino"),
    "matplotlib": ("notebooks", "matplotlib"), "sklearn": ("notebooks", "scikit-learn"),
    "papermill": ("notebooks", "papermill"), "nbformat": ("notebooks", "nbformat"),
    "nbclient": ("notebooks", "nbclient"), "PIL": ("notebooks", "pillow"),
}  # fmt: skip


def install_hint(module: str) -> str:
    extra, pip_name = EXTRAS.get(module.split(".")[0], ("", module))
    if extra:
        return f"pip install 'onnx-deploy[{extra}]' (or pip install {pip_name})"
    return f"pip install {pip_name}"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` saying what needs it and how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if getattr(e, "name", None) not in (None, module, module.split(".")[0]):
            raise  # the package is there but one of its own imports failed: show that
        raise MissingExtraError(
            f"{purpose} needs {EXTRAS.get(module.split('.')[0], ('', module))[1]}, which is "
            f"not installed: {install_hint(module)}"
        ) from e


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
