"""The TensorRT runner: a serialized engine on torch CUDA tensors and a CUDA stream.

It follows NVIDIA's Python API guide ("Performing Inference"): ``Runtime(logger)``,
``deserialize_cuda_engine(plan)``, ``create_execution_context()``; for each batch
``set_input_shape`` for every input, ``set_tensor_address`` for every input and output
(torch CUDA tensors give the pointers, outputs allocated at the shapes the context
reports), then ``execute_async_v3`` on a non-default stream (its docstring warns against
the default one). No pycuda or cuda-python is needed.

The specs come from the metadata file written beside the engine
(``onnx_deploy.convert.tensorrt.build_engine``), so ``inputs``/``outputs`` and the profile
check work before TensorRT is loaded; a batch outside the engine's profile is refused
with an error that names the profile.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import Signature
from onnx_deploy.infer.runners.base import Runner

Shape = tuple[int, ...]


def parse_profile_full(text: str) -> dict[str, tuple[Shape, Shape, Shape]]:
    """``Profile.text()`` back to ``{input: (min, opt, max)}``."""
    out = {}
    for part in filter(None, text.split(",")):
        name, _, shapes = part.rpartition(":")
        lo, opt, hi = (tuple(int(d) for d in s.split("x")) for s in shapes.split("/"))
        out[name] = (lo, opt, hi)
    return out


def parse_profile(text: str) -> dict[str, tuple[Shape, Shape]]:
    """``Profile.text()`` back to ``{input: (min shape, max shape)}``."""
    return {name: (lo, hi) for name, (lo, _, hi) in parse_profile_full(text).items()}


def check_profile(feeds: Mapping[str, np.ndarray], profiles: tuple[str, ...]) -> None:
    """Raise ``InputMismatchError`` when an input's shape is outside the engine's first
    profile, naming the profile (TensorRT would fail at ``set_input_shape``)."""
    if not profiles:
        return
    ranges = parse_profile(profiles[0])
    problems = []
    for name, value in feeds.items():
        if name not in ranges:
            continue
        lo, hi = ranges[name]
        shape = tuple(value.shape)
        if len(shape) != len(lo) or any(
            not a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)
        ):
            problems.append(f"{name} shape {list(shape)} outside min {list(lo)} .. max {list(hi)}")
    if problems:
        raise InputMismatchError(
            f"input outside the engine's optimization profile ({profiles[0]}): "
            + "; ".join(problems)
            + ". Split the batch, or rebuild with a wider profile (--shapes NAME=MIN:OPT:MAX)"
        )


class _HostStream:
    """A stand-in for ``torch.cuda.Stream`` when tests run on host tensors."""

    cuda_stream = 0

    def synchronize(self) -> None:
        pass


class TensorRTRunner(Runner):
    """Run a serialized TensorRT engine (``.plan``) on the GPU."""

    backend = "tensorrt"

    def __init__(
        self,
        plan: str | os.PathLike[str],
        name: str | None = None,
        *,
        trt: Any = None,
        tensor_device: str = "cuda",
    ) -> None:
        """``trt`` and ``tensor_device`` are for tests: a recording ``tensorrt`` module,
        and host tensors in place of CUDA ones."""
        from onnx_deploy.convert.tensorrt import meta_path
        from onnx_deploy.convert.tensorrt import read_meta

        self.plan = Path(plan)
        if not self.plan.is_file():
            raise InputMismatchError(f"{self.plan}: no such engine file; build one first")
        meta = read_meta(self.plan)
        if meta is None:
            raise InputMismatchError(
                f"{self.plan} has no {meta_path(self.plan).name}: build it with "
                "onnx-deploy trt build (the runner reads the engine's specs from there)"
            )
        self.meta = meta
        self._inputs, self._outputs = meta.inputs, meta.outputs
        super().__init__(name or self.plan.name, "cuda")
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._trt_module, self._tensor_device = trt, tensor_device

    def _activate(self) -> None:
        import torch

        from onnx_deploy.convert.tensorrt import gpu_identity
        from onnx_deploy.convert.tensorrt import load_tensorrt

        trt = self._trt_module or load_tensorrt()
        if self._tensor_device == "cuda":
            gpu_identity()  # a clear error where no GPU is visible
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if engine is None:
            raise InputMismatchError(
                f"TensorRT {trt.__version__} cannot load {self.plan}: engines are tied to the "
                f"TensorRT version and GPU they were built with ({self.meta.tensorrt}, "
                f"{self.meta.gpu}); rebuild it here"
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        # not the default stream (execute_async_v3's docstring warns against it)
        self._stream = torch.cuda.Stream() if self._tensor_device == "cuda" else _HostStream()

    def _deactivate(self) -> None:
        self._context = None
        self._engine = None
        self._stream = None

    def _bind(self, feeds: Feeds) -> dict[str, Any]:
        """Inputs on the GPU, shapes set, outputs allocated: every tensor's address set."""
        import torch

        check_profile(feeds, self.meta.profiles)
        tensors: dict[str, Any] = {}
        for spec in self.inputs:
            t = torch.from_numpy(np.ascontiguousarray(feeds[spec.name])).to(self._tensor_device)
            self._context.set_input_shape(spec.name, tuple(t.shape))
            tensors[spec.name] = t
        for spec in self.outputs:
            shape = tuple(self._context.get_tensor_shape(spec.name))
            tensors[spec.name] = torch.empty(
                shape, dtype=getattr(torch, spec.dtype), device=self._tensor_device
            )
        for name, t in tensors.items():
            self._context.set_tensor_address(name=name, memory=t.data_ptr())
        return tensors

    def _execute(self) -> None:
        if not self._context.execute_async_v3(stream_handle=self._stream.cuda_stream):
            raise InputMismatchError(f"TensorRT failed to run {self.plan.name} (see its log)")

    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        tensors = self._bind(feeds)
        self._execute()
        self._stream.synchronize()
        return {s.name: tensors[s.name].cpu().numpy() for s in self.outputs}

    def timed_call(self, data: Any) -> Callable[[], Any]:
        feeds = self.feeds(data)
        self.activate()
        self._bind(feeds)  # copies and addresses once, outside the timed call
        return self._execute

    def synchronize(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def dims(self) -> list[DimRange]:
        """The engine's first profile as dim ranges (``DimRange(name, min, max, opt)``) for
        every symbolic dim, so generated inputs stay inside what the engine takes."""
        ranges: dict[str, DimRange] = {}
        profile = parse_profile_full(self.meta.profiles[0]) if self.meta.profiles else {}
        for spec in self.inputs:
            if spec.name not in profile:
                continue
            lo, opt, hi = profile[spec.name]
            for axis, dim in enumerate(spec.shape):
                if isinstance(dim, str) and dim not in ranges and hi[axis] >= 2:
                    ranges[dim] = DimRange(dim, lo[axis], hi[axis], opt[axis])
        return list(ranges.values())

    def signature(self) -> Signature:
        """The engine's inputs with its profile's ranges: ``compare(..., signature=...)``."""
        return Signature.from_specs(self.inputs, self.dims())

    def example_inputs(
        self, batch_size: int = 2, seed: int = 0, dim_values: Mapping[str, int] | None = None
    ) -> Feeds:
        """Random inputs at the profile's OPT sizes, the batch at ``batch_size``."""
        sig = self.signature()
        sizes = {d: batch_size for d in sig.batch_dims} | dict(dim_values or {})
        return sig.examples(sizes, seed)

    def environment(self) -> dict[str, Any]:
        return {
            "tensorrt": self.meta.tensorrt,
            "gpu": self.meta.gpu,
            "precision": self.meta.precision,
            "profiles": list(self.meta.profiles),
        }


def ort_tensorrt_runner(
    model: str | os.PathLike[str],
    *,
    name: str | None = None,
    **options: Any,
) -> Runner:
    """onnxruntime's TensorRT execution provider behind the runner interface: an
    ``OnnxRuntimeRunner`` whose first provider is TensorRT with
    ``onnx_deploy.convert.tensorrt.ort_tensorrt_options(**options)``, then CUDA and CPU. It
    raises ``ProviderError`` where TensorRT's provider does not really run."""
    from onnx_deploy.convert.tensorrt import ort_tensorrt_options
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    return OnnxRuntimeRunner(
        model,
        providers=["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        provider_options={"TensorrtExecutionProvider": ort_tensorrt_options(**options)},
        name=name or f"{Path(model).name} [ort-trt]",
    )
