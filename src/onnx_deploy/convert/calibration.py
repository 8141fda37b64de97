"""Calibration data for static quantization: from arrays, files or image folders to a
checked ``CalibrationDataReader`` keyed by the model's own input names.

The raw interface this implements::

    class Reader(onnxruntime.quantization.CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None: ...   # one batch, then None

Sources: an array (single-input models), a dict of arrays by input name, an iterable of
batches, a ``.npy``/``.npz``/``.pt`` file (``onnx_deploy.core.feeds.load_data``), or a folder
of images (resized to the model's input size, scaled to [0, 1], unless ``preprocess`` is
given). Every sample is checked against the model before calibration starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from onnx_deploy.core.contract import read_contract
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import QuantizeError
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.feeds import as_batches
from onnx_deploy.core.feeds import check_inputs
from onnx_deploy.core.feeds import fill_defaults
from onnx_deploy.core.feeds import load_data
from onnx_deploy.core.feeds import split
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.modelinfo import graph_io
from onnx_deploy.infer.modelinfo import load_onnx

if TYPE_CHECKING:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_images(
    folder: Path, spec: TensorSpec, preprocess: Callable[[Any], np.ndarray] | None = None
) -> np.ndarray:
    """The images of ``folder`` as one float32 batch for input ``spec`` (NCHW)."""
    from onnx_deploy.core.extras import require

    image = require("PIL.Image", "calibrating from an image folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise QuantizeError(f"{folder} has no {'/'.join(IMAGE_SUFFIXES)} images to calibrate with")
    if preprocess is None:
        if len(spec.shape) != 4 or not all(isinstance(d, int) for d in spec.shape[1:]):
            raise QuantizeError(
                f"cannot infer an image size from input {spec.describe()}; pass preprocess=..."
            )
        channels, height, width = spec.shape[1], spec.shape[2], spec.shape[3]

        def preprocess(img: Any) -> np.ndarray:
            img = img.convert("L" if channels == 1 else "RGB").resize((width, height))
            arr = np.asarray(img, dtype=np.float32) / 255.0
            return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    return np.stack([preprocess(image.open(f)) for f in files]).astype(np.float32)


def calibration_samples(
    data: Any, specs: tuple[TensorSpec, ...], preprocess: Callable[[Any], np.ndarray] | None
) -> list[Feeds]:
    """``data`` as a list of one-sample feeds (calibration runs one sample at a time)."""
    if isinstance(data, (str, os.PathLike)) and Path(data).is_dir():
        data = load_images(Path(data), specs[0], preprocess)
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.suffix.lower() not in (".npy", ".npz", ".pt", ".pth"):
            raise QuantizeError(
                f"{path}: calibration data must be a .npy, .npz or .pt file, or a folder of images"
            )
        data = load_data(path)
    try:
        batches = as_batches(data, specs)
    except InputMismatchError as e:
        raise QuantizeError(f"calibration data does not fit the model: {e}") from e
    return [one for batch in batches for one in split(batch, 1)]


class ArrayCalibrationReader:
    """A ``CalibrationDataReader`` over in-memory batches, checked against the model.

    Build it with ``calibration_reader(model, data)``; it can be rewound with
    ``rewind()`` so one set of data calibrates several variants.
    """

    def __init__(self, feeds: list[Feeds]) -> None:
        self.feeds = feeds
        self._it: Iterator[Feeds] = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)


def calibration_reader(
    model: str | os.PathLike[str] | onnx.ModelProto,
    data: Any,
    limit: int | None = None,
    preprocess: Callable[[Any], np.ndarray] | None = None,
) -> CalibrationDataReader:
    """Calibration batches for ``model`` from arrays, a dict, an iterable, a data file or
    a folder of images, keyed by the model's own input names and checked for shape and
    dtype. ``limit`` keeps the first N samples."""
    from onnxruntime.quantization import CalibrationDataReader

    proto = load_onnx(model, load_external_data=False) if not hasattr(model, "graph") else model
    specs, _ = graph_io(proto)
    feeds = calibration_samples(data, specs, preprocess)
    contract = read_contract(proto)
    if contract is not None and contract.defaults:  # token_type_ids = 0, as transformers
        feeds = [fill_defaults(f, specs, contract.defaults)[0] for f in feeds]
    if limit is not None:
        feeds = feeds[:limit]
    if not feeds or not any(v.size for v in feeds[0].values()):
        raise QuantizeError(
            "the calibration set is empty; pass at least one sample (100-500 is typical)"
        )
    try:
        for f in feeds:
            check_inputs(specs, f)
    except InputMismatchError as e:
        raise QuantizeError(f"calibration data does not fit the model: {e}") from e

    class _Reader(ArrayCalibrationReader, CalibrationDataReader):
        pass

    return _Reader(feeds)
