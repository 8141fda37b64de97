"""``path/to/file.py:factory``: a function in a Python file that returns an ``nn.Module``.

The file is imported as a module (it runs: point this at code you trust) and the factory
called with no arguments. The model's signature is the user's (``--input``/``--dim`` or
example data) or one float input of ``--input-shape``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.sources import Source

if TYPE_CHECKING:
    import torch


class PythonFileSource(Source):
    name = "file"
    example = "path/to/file.py:factory"
    help = "a function in a Python file that returns an nn.Module"

    def matches(self, spec: str) -> bool:
        return spec.rsplit(":", 1)[0].endswith(".py")

    def short_name(self, spec: str) -> str:
        return spec.rsplit(":", 1)[-1]

    def load_module(self, spec: str, **options: Any) -> torch.nn.Module:
        import torch

        path, factory = spec.rsplit(":", 1)
        file = Path(path)
        if not file.is_file():
            raise ModelSpecError(f"{file}: no such file (model spec 'path/to/file.py:factory')")
        mod_name = f"_onnx_deploy_user_{file.stem}"
        spec_obj = importlib.util.spec_from_file_location(mod_name, file)
        if spec_obj is None or spec_obj.loader is None:
            raise ModelSpecError(f"cannot import {file} as a Python module")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[mod_name] = module
        spec_obj.loader.exec_module(module)
        fn = getattr(module, factory, None)
        if fn is None:
            names = [n for n in vars(module) if not n.startswith("_") and callable(vars(module)[n])]
            raise ModelSpecError(f"{file} has no {factory!r}; callables there: {names}")
        model = fn(**options)
        if not isinstance(model, torch.nn.Module):
            raise ModelSpecError(
                f"{file}:{factory} returned {type(model).__name__}, not an nn.Module"
            )
        return model
