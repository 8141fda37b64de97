"""``onnx-deploy validate``: an ONNX file against another, or against its PyTorch model."""

from __future__ import annotations

import os
from collections.abc import Sequence

from onnx_deploy.build.runners.pytorch import TorchRunner
from onnx_deploy.core.defaults import REAL_DATA_BATCH, VALIDATE_BATCH_SIZES
from onnx_deploy.core.feeds import as_feeds, load_data, split, split_sizes
from onnx_deploy.core.signature import DimRange, InputSpec, Signature
from onnx_deploy.infer.compare import Tolerance, ValidationReport, compare, onnx_runner
from onnx_deploy.infer.runners.base import Runner
from onnx_deploy.teach.zoo import is_onnx_path, load_model


def validate_model(
    model: str | os.PathLike[str],
    reference: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    inputs: Sequence[InputSpec] = (),
    dims: Sequence[DimRange] = (),
    batch_sizes: Sequence[int] | None = None,
    precision: str | Tolerance = "fp32",
    device: str = "cpu",
    data_batch_size: int = REAL_DATA_BATCH,
) -> ValidationReport:
    """``onnx-deploy validate``: an ONNX file against a reference, which is another ONNX
    file or a model spec (``torchvision:NAME``, ``file.py:factory``) with ``weights``.

    Inputs: real samples from ``data`` (``.npz`` by input name, ``.npy``, ``.pt``), split
    into consecutive batches of the ``batch_sizes`` in turn when given (1, 8, 1, 8, ...),
    else of ``data_batch_size``; without data, random ones from the model's signature,
    with ranges and value ranges from ``dims`` and ``inputs``, at ``batch_sizes``
    (default ``VALIDATE_BATCH_SIZES``) and several sizes of every other dynamic dim.
    """
    candidate = onnx_runner(model, device)
    feeds = None
    if data is not None:
        real = as_feeds(load_data(data), candidate.inputs)
        feeds = split_sizes(real, batch_sizes) if batch_sizes else split(real, data_batch_size)
    batch_sizes = batch_sizes or VALIDATE_BATCH_SIZES
    signature = Signature.from_specs(candidate.inputs, dims, inputs)
    if is_onnx_path(reference):
        ref: Runner = onnx_runner(reference, device)
    else:
        module = load_model(reference, weights=weights)
        ref = TorchRunner(module, candidate.inputs, candidate.output_names, device=device)
    return compare(ref, candidate, feeds, precision, batch_sizes=batch_sizes, signature=signature)
