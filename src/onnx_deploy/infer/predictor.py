"""``Predictor``: an ONNX Runtime runner you call like a function.

Torch-free on purpose: a production inference image ships onnxruntime and numpy only.
It is ``OnnxRuntimeRunner`` with input checks and batching.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.feeds import as_feeds
from onnx_deploy.core.feeds import batch_size_of
from onnx_deploy.core.feeds import split
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

if TYPE_CHECKING:
    import onnxruntime as ort


class Predictor(OnnxRuntimeRunner):
    """Run an ONNX model on numpy inputs with checks, batching and the right provider.

    >>> pred = Predictor("model.onnx")                     # doctest: +SKIP
    >>> logits = pred(np.zeros((8, 3, 224, 224), np.float32))  # doctest: +SKIP

    Inputs are checked against the model (names, rank, fixed dims, dtype) before running,
    batches larger than ``max_batch_size`` (or than a fixed batch dim) are split along
    axis 0, and on CUDA inputs and outputs go through IOBinding, bound once per shape.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes | ort.InferenceSession,
        device: str = "auto",
        max_batch_size: int | None = None,
        **session_kwargs: Any,
    ) -> None:
        super().__init__(model, device, **session_kwargs)
        self.max_batch_size = max_batch_size
        fixed = {s.shape[0] for s in self.inputs if s.shape and isinstance(s.shape[0], int)}
        self._fixed_batch = fixed.pop() if len(fixed) == 1 else None

    def as_feeds(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Positional arrays, one dict, or keyword arrays -> ``{input_name: value}``."""
        if kwargs:
            if args:
                raise InputMismatchError("pass inputs either by position or by name, not both")
            return dict(kwargs)
        return as_feeds(args[0] if len(args) == 1 else tuple(args), self.inputs)

    def run(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """Run and return ``{output_name: array}``."""
        feeds = self.as_feeds(args, kwargs)
        batch = batch_size_of(feeds)
        chunk = self._fixed_batch if self._fixed_batch is not None else self.max_batch_size
        if batch is not None and chunk is not None and batch > chunk:
            if batch % chunk and self._fixed_batch is not None:
                raise InputMismatchError(
                    f"the model has a fixed batch size of {self._fixed_batch} and the input "
                    f"batch {batch} is not a multiple of it; pad the batch or re-export "
                    "with a dynamic batch dimension"
                )
            parts = [self.infer(part) for part in split(feeds, chunk)]
            return {n: np.concatenate([p[n] for p in parts]) for n in self.output_names}
        return self.infer(feeds)

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run; a single-output model returns its array, others a tuple in output order."""
        out = self.run(*args, **kwargs)
        values = tuple(out[n] for n in self.output_names)
        return values[0] if len(values) == 1 else values
