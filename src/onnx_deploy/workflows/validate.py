"""``onnx-deploy validate``: an ONNX file against another, or against its PyTorch model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from onnx_deploy.convert.hf import is_hf_spec
from onnx_deploy.convert.hf import reference_module
from onnx_deploy.convert.runners.pytorch import TorchRunner
from onnx_deploy.core.defaults import REAL_DATA_BATCH
from onnx_deploy.core.defaults import VALIDATE_BATCH_SIZES
from onnx_deploy.core.feeds import as_feeds
from onnx_deploy.core.feeds import load_data
from onnx_deploy.core.feeds import split
from onnx_deploy.core.feeds import split_sizes
from onnx_deploy.infer.compare import Tolerance
from onnx_deploy.infer.compare import ValidationReport
from onnx_deploy.infer.compare import compare
from onnx_deploy.infer.compare import onnx_runner
from onnx_deploy.infer.runners.base import Runner
from onnx_deploy.sources import ModelSource
from onnx_deploy.sources import load_model


def validate_model(
    model: str | ModelSource,
    reference: str | ModelSource,
    *,
    batch_sizes: Sequence[int] | None = None,
    precision: str | Tolerance = "fp32",
    device: str = "cpu",
    data_batch_size: int = REAL_DATA_BATCH,
) -> ValidationReport:
    """``onnx-deploy validate``: an ONNX file against a reference, which is another ONNX
    file or a model spec (``torchvision:NAME``, ``file.py:factory``) with its ``weights``.

    A candidate with NMS in its graph (``add_nms``, ``add_letterbox``) is held to the
    same steps in PyTorch (``DetectionPipeline``: the spec's model, torchvision's
    ``batched_nms``), its detections matched by IoU.

    Inputs: real samples from the model source's ``data`` (``.npz`` by input name, ``.npy``,
    ``.pt``), split into consecutive batches of the ``batch_sizes`` in turn when given (1, 8,
    1, 8, ...), else of ``data_batch_size``; without data, random ones from the model's
    signature, with ranges and value ranges from its ``dims`` and ``inputs``, at
    ``batch_sizes`` (default ``VALIDATE_BATCH_SIZES``) and several sizes of every other
    dynamic dim.
    """
    source, ref_source = ModelSource.of(model), ModelSource.of(reference)
    candidate = onnx_runner(source.target, device)
    feeds = None
    if source.data is not None:
        real = as_feeds(load_data(source.data), candidate.inputs)
        feeds = split_sizes(real, batch_sizes) if batch_sizes else split(real, data_batch_size)
    batch_sizes = batch_sizes or VALIDATE_BATCH_SIZES
    signature = candidate.signature(source.dims, source.inputs)  # the file's contract
    if ref_source.is_onnx:
        ref: Runner = onnx_runner(ref_source.target, device)
    else:
        settings = _served_detector(source.target, candidate.output_names)
        names = [s.name for s in candidate.inputs]

        def load() -> Any:
            module = load_model(ref_source.target, weights=ref_source.weights)
            if is_hf_spec(ref_source.target):  # a decoder file with its cache: the same
                module = reference_module(module, names)
            if settings is not None:  # NMS (and letterbox) in the graph: the same in PyTorch
                from onnx_deploy.convert.detectors import DetectionPipeline

                module = DetectionPipeline(module, settings)
            return module

        # built when compare runs it, freed before the ONNX side runs: the weights are held
        # once (the 600M decoder peaked at 4.4x its file with both in memory)
        ref = TorchRunner.loading(load, candidate.inputs, candidate.output_names, device=device)
    return compare(ref, candidate, feeds, precision, batch_sizes=batch_sizes, signature=signature)


def _served_detector(path: str, output_names: Sequence[str]) -> dict | None:
    """The detection settings of a graph with ``add_nms``'s outputs, or None."""
    from onnx_deploy.convert.surgery.detection import detection_metadata
    from onnx_deploy.infer.detections import detection_layout
    from onnx_deploy.infer.modelinfo import load_onnx

    if detection_layout(list(output_names)) != "padded":
        return None
    return detection_metadata(load_onnx(path, load_external_data=False))
