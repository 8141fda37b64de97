"""onnxruntime-genai: the folder its model builder writes (``genai_config.json`` and its
``model.onnx``), run by its own ``Generator`` (``infer.genai.GenaiRunner``: one decode step,
for timing beside this project's decoder files). It takes folders, not ``.onnx`` files: the
report card offers it the folder given with ``optimize --genai DIR``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from onnx_deploy.runtimes import DEFAULT_MODE
from onnx_deploy.runtimes import Mode
from onnx_deploy.runtimes import Request
from onnx_deploy.runtimes import Runtime

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner


class OnnxRuntimeGenai(Runtime):
    name = "onnxruntime-genai"
    title = "onnxruntime-genai"
    package = "onnxruntime_genai"
    formats = ()  # a folder
    contrib_ops = True
    order = 5

    def install_hint(self) -> str:
        from onnx_deploy.infer.genai import INSTALL

        return INSTALL

    def accepts(self, path: str | os.PathLike[str], mode: Mode = DEFAULT_MODE) -> str:
        from onnx_deploy.infer.genai import is_genai_folder

        if is_genai_folder(path):
            return ""
        return (
            f"{self.title} runs the folder its model builder writes (genai_config.json), "
            f"not {os.path.basename(str(path))}"
        )

    def make_runner(self, request: Request) -> Runner:
        from onnx_deploy.infer.genai import GenaiRunner

        threads = request.settings.threads if request.settings is not None else None
        return GenaiRunner(request.path, threads=threads, name=request.name)
