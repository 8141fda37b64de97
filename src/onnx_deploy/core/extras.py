"""Optional dependencies, and the message that names the extra to install.

The core install (numpy, onnx, and ONNX Runtime: ``onnxruntime_wheel`` says which wheel) runs
models, inspects and benchmarks them;
exporting needs ``onnx-deploy[export]``, the notebooks and plots ``onnx-deploy[notebooks]``.
A module that needs an optional package asks for it through ``require`` when it runs, so
``import onnx_deploy`` and ``onnx-deploy --help`` work on the core install.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
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


# Where pyproject.toml installs onnxruntime-gpu (sys.platform, machine): its wheels serve every
# glibc this project supports there; elsewhere the CPU wheel `onnxruntime` (macOS has no GPU
# wheel; Linux aarch64's needs glibc 2.34 or newer). Both install the module `onnxruntime`.
GPU_WHEEL_PLATFORMS = frozenset({("linux", "x86_64"), ("win32", "amd64")})


def onnxruntime_wheel(sys_platform: str | None = None, machine: str | None = None) -> str:
    """The ONNX Runtime distribution this project installs on a platform (default: this one):
    ``onnxruntime-gpu`` on Linux and Windows x86-64, ``onnxruntime`` elsewhere, as the
    environment markers in pyproject.toml choose."""
    where = sys.platform if sys_platform is None else sys_platform
    arch = (platform.machine() if machine is None else machine).lower()
    return "onnxruntime-gpu" if (where, arch) in GPU_WHEEL_PLATFORMS else "onnxruntime"


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


SYMBOLIC_SHAPE_INFER = "onnxruntime.tools.symbolic_shape_infer"


def symbolic_shape_infer() -> ModuleType:
    """onnxruntime's ``symbolic_shape_infer`` module, loaded from its file without running
    ``onnxruntime/tools/__init__.py``, which imports torch wherever torch is installed (2.4 s
    here) for a helper nothing here uses. Registered under its own name, so
    ``quant_pre_process``'s import finds it too; loaded as usual once ``onnxruntime.tools``
    is imported."""
    import sys
    from pathlib import Path

    if SYMBOLIC_SHAPE_INFER in sys.modules:
        return sys.modules[SYMBOLIC_SHAPE_INFER]
    if "onnxruntime.tools" in sys.modules:
        return importlib.import_module(SYMBOLIC_SHAPE_INFER)
    ort = importlib.util.find_spec("onnxruntime")
    if ort is None or ort.origin is None:
        raise MissingExtraError(f"onnxruntime is not installed: {install_hint('onnxruntime')}")
    path = Path(ort.origin).parent / "tools" / "symbolic_shape_infer.py"
    spec = importlib.util.spec_from_file_location(SYMBOLIC_SHAPE_INFER, path)
    if spec is None or spec.loader is None:
        return importlib.import_module(SYMBOLIC_SHAPE_INFER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[SYMBOLIC_SHAPE_INFER] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[SYMBOLIC_SHAPE_INFER]
        raise
    return module
