"""``project:NAME``: this package's trained models, with the labelled data they ship with.

``project:digits_cnn`` is a small CNN trained on scikit-learn's real 8x8 digits
(``teach.digits``); ``project:shapes_detector`` a one-stage detector trained on images the
package draws with exact boxes (``teach.shapes``). Both come with their data, so a command
pointed at them (the report card's default) calibrates and validates on real samples.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.core.contract import ModelContract
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.sources import LoadedModel
from onnx_deploy.sources import ModelSource
from onnx_deploy.sources import Source
from onnx_deploy.sources import TaskData

if TYPE_CHECKING:
    import torch

SHAPES = {"shapes_detector": (3, 160, 160), "digits_cnn": (1, 8, 8)}


class ProjectSource(Source):
    name = "project"
    example = "project:digits_cnn"
    help = "this package's trained models: digits_cnn (with its digits data), shapes_detector"

    def load_module(self, spec: str, **options: Any) -> torch.nn.Module:
        name = spec.partition(":")[2]
        if name == "shapes_detector":
            from onnx_deploy.teach.shapes import load_shapes_detector

            return load_shapes_detector()
        if name == "digits_cnn":
            from onnx_deploy.teach.digits import load_digits_model

            return load_digits_model()
        raise ModelSpecError(
            f"no project model {name!r}; use project:shapes_detector or project:digits_cnn"
        )

    def sample_shape(self, spec: str) -> tuple[int, ...] | None:
        return SHAPES.get(spec.partition(":")[2])

    def trained(self, source: ModelSource) -> bool:
        return True  # shipped checkpoints, loaded with weights_only=True

    def contract(self, source: ModelSource, loaded: LoadedModel) -> ModelContract:
        base = super().contract(source, loaded)
        if source.target.endswith("shapes_detector"):
            return replace(base, family="detector", task="detection", judge="elementwise")
        return replace(base, family="classifier", task="classification")

    def task_data(self, source: ModelSource) -> TaskData | None:
        """The digits CNN's splits: its training images to calibrate, the labelled test
        images to validate on."""
        if not source.target.endswith("digits_cnn"):
            return None
        from onnx_deploy.teach.digits import load_digits_split

        data = load_digits_split()
        return TaskData(
            data.x_train, data.x_test, data.y_test,
            f"digits: {len(data.x_train)} training images to calibrate, "
            f"{len(data.x_test)} labelled test images",
        )  # fmt: skip
