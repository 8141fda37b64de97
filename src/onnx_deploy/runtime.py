"""ONNX Runtime sessions that say which provider really runs, and a checked Predictor.

Torch-free on purpose: a production inference image ships onnxruntime and numpy only.

onnxruntime lists ``CUDAExecutionProvider`` as *available* whenever the GPU wheel is
installed, GPU or not, and a session that asks for CUDA silently runs on the CPU when
CUDA cannot start. So this module never trusts the list you asked for: it opens a tiny
probe session per provider to learn what works, and checks ``session.get_providers()``
after every session it creates.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from onnx_deploy.errors import InputMismatchError, ModelFileError, ProviderError

if TYPE_CHECKING:
    import onnxruntime as ort

Device = Literal["auto", "cpu", "cuda"]
OnFallback = Literal["raise", "warn", "ignore"]

PROVIDER_ALIASES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}

OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "layout", "all")

# A one-node Relu model (IR version 8, opset 13), built with onnx.helper and stored as
# bytes so that probing providers needs neither onnx nor a file. tests/test_runtime.py
# rebuilds it to prove these bytes are what they claim.
PROBE_MODEL = base64.b64decode(
    "CAgSC29ubngtZGVwbG95OjcKDAoBeBIBeSIEUmVsdRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgB"
    "EgQKAggBQgQKABAN"
)

_ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}


def _ort() -> Any:
    import onnxruntime

    quiet_logs()
    return onnxruntime


@functools.cache
def quiet_logs(severity: int = 3) -> None:
    """Silence onnxruntime's C++ warnings (3 = errors only).

    ``SessionOptions.log_severity_level`` does not silence provider-loading messages;
    the process-wide default logger does.
    """
    import onnxruntime

    onnxruntime.set_default_logger_severity(severity)


def resolve_provider(name: str) -> str:
    """``'cuda'`` -> ``'CUDAExecutionProvider'``; full names pass through."""
    if name.endswith("ExecutionProvider"):
        return name
    try:
        return PROVIDER_ALIASES[name.lower()]
    except KeyError:
        raise ProviderError(
            f"unknown provider {name!r}; use one of {sorted(PROVIDER_ALIASES)} "
            "or a full name such as 'CUDAExecutionProvider'"
        ) from None


@functools.cache
def working_providers() -> tuple[str, ...]:
    """Providers that really run here, found by opening a probe session with each.

    Compare with ``onnxruntime.get_available_providers()``, which lists what the wheel
    was built with (CUDA and TensorRT even on a machine without a GPU).
    """
    ort_mod = _ort()
    works = []
    # Failing providers log at ERROR level from C++ and print from Python; a probe
    # failure is an answer here, not an error, so silence both while probing.
    ort_mod.set_default_logger_severity(4)
    try:
        for provider in ort_mod.get_available_providers():
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    sess = ort_mod.InferenceSession(PROBE_MODEL, providers=[provider])
            except Exception:
                continue
            if sess.get_providers()[0] == provider:
                works.append(provider)
    finally:
        ort_mod.set_default_logger_severity(3)
    return tuple(works)


def default_providers(device: Device | str = "auto") -> list[str]:
    """Provider list for a device: ``auto`` takes CUDA only where CUDA really runs."""
    if device == "auto":
        return (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if "CUDAExecutionProvider" in working_providers()
            else ["CPUExecutionProvider"]
        )
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [resolve_provider(device), "CPUExecutionProvider"]


def session_options(
    threads: int | None = None,
    inter_op_threads: int | None = None,
    graph_optimization: str = "all",
    optimized_model_path: str | os.PathLike[str] | None = None,
) -> ort.SessionOptions:
    """SessionOptions with the knobs that matter; ``threads=None`` keeps ORT's default
    (one intra-op thread per physical core)."""
    ort_mod = _ort()
    if graph_optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(
            f"graph_optimization must be one of {OPTIMIZATION_LEVELS}, got {graph_optimization!r}"
        )
    level_name = {
        "disabled": "ORT_DISABLE_ALL",
        "basic": "ORT_ENABLE_BASIC",
        "extended": "ORT_ENABLE_EXTENDED",
        "layout": "ORT_ENABLE_LAYOUT",
        "all": "ORT_ENABLE_ALL",
    }[graph_optimization]
    so = ort_mod.SessionOptions()
    so.graph_optimization_level = getattr(
        ort_mod.GraphOptimizationLevel, level_name, ort_mod.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    if inter_op_threads is not None:
        so.inter_op_num_threads = int(inter_op_threads)
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
    so.log_severity_level = 3
    return so


def create_session(
    model: str | os.PathLike[str] | bytes,
    device: Device | str = "auto",
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    graph_optimization: str = "all",
    on_fallback: OnFallback = "raise",
    options: ort.SessionOptions | None = None,
) -> ort.InferenceSession:
    """Open an InferenceSession and make sure the provider asked for is the one running.

    ``device``: ``auto`` (CUDA where it works, else CPU), ``cpu``, ``cuda``. ``providers``
    overrides it with an explicit list. ``on_fallback``: what to do when the first
    provider asked for is not in use (``raise`` a ``ProviderError``, ``warn``, ``ignore``).
    """
    ort_mod = _ort()
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ModelFileError(f"{path}: no such file. Check the path, or export a model first.")
        source: str | bytes = str(path)
    else:
        source = model
    wanted = [resolve_provider(p) for p in providers] if providers else default_providers(device)
    usable = working_providers()
    if wanted[0] not in usable:
        # Known before trying: skip the provider rather than let onnxruntime fall back
        # silently (and spill C++ errors on stderr).
        _fallback(
            f"asked for {wanted[0]}, which does not run here (working: {list(usable)})", on_fallback
        )
        wanted = [p for p in wanted if p in usable] or ["CPUExecutionProvider"]
    so = options or session_options(threads=threads, graph_optimization=graph_optimization)
    try:
        sess = ort_mod.InferenceSession(source, sess_options=so, providers=wanted)
    except Exception as e:
        text = str(e)
        hint = "it is not a valid ONNX model (truncated or another format?); re-export it"
        if "IR version" in text or "opset" in text.lower():
            hint = (
                "this onnxruntime is too old for the model's IR version or opset; upgrade "
                "onnxruntime or re-export with a lower opset / set model.ir_version"
            )
        raise ModelFileError(f"onnxruntime cannot load {model!r:.80}: {hint}. ({text})") from e
    check_providers(sess, wanted[0], on_fallback)
    return sess


def check_providers(
    session: ort.InferenceSession, expected: str, on_fallback: OnFallback = "raise"
) -> None:
    """Raise or warn when ``expected`` is not the session's first provider."""
    in_use = session.get_providers()
    if in_use and in_use[0] == expected:
        return
    _fallback(f"asked for {expected} but the session runs on {in_use}", on_fallback)


def _fallback(what: str, on_fallback: OnFallback) -> None:
    msg = (
        f"{what}: onnxruntime would fall back to the CPU silently. Run `onnx-deploy doctor` "
        "to see which providers work here; for CUDA, check the GPU driver and that "
        "onnxruntime-gpu matches the installed CUDA/cuDNN (pass device='cpu' to run on CPU)."
    )
    if on_fallback == "raise":
        raise ProviderError(msg)
    if on_fallback == "warn":
        warnings.warn(msg, RuntimeWarning, stacklevel=4)


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: Any  # numpy dtype, or None for types numpy lacks (bfloat16)
    shape: tuple[int | str | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        dtype = np.dtype(self.dtype).name if self.dtype is not None else "?"
        return f"{self.name}: {dtype}[{dims}]"


def _specs(nodes: Sequence[Any]) -> tuple[InputSpec, ...]:
    return tuple(
        InputSpec(
            n.name,
            _ORT_DTYPES.get(n.type),
            tuple(d if isinstance(d, (int, str)) else None for d in n.shape),
        )
        for n in nodes
    )


def check_inputs(specs: Sequence[InputSpec], feeds: Mapping[str, Any]) -> None:
    """Raise ``InputMismatchError`` naming every problem with ``feeds``."""
    expected = {s.name for s in specs}
    problems = []
    missing = [s.name for s in specs if s.name not in feeds]
    unknown = [k for k in feeds if k not in expected]
    if missing or unknown:
        problems.append(
            f"model inputs are {sorted(expected)}; missing {missing}, unknown {unknown}"
        )
    for spec in specs:
        if spec.name not in feeds:
            continue
        value = feeds[spec.name]
        if not isinstance(value, np.ndarray):
            hint = (
                " (a torch tensor? use t.detach().cpu().numpy())" if hasattr(value, "numpy") else ""
            )
            problems.append(
                f"{spec.name!r} is a {type(value).__name__}, expected a numpy array{hint}"
            )
            continue
        if spec.dtype is not None and value.dtype != np.dtype(spec.dtype):
            want = np.dtype(spec.dtype).name
            problems.append(
                f"{spec.name!r} has dtype {value.dtype}, the model expects {want}: "
                f"convert with x.astype(np.{want})"
            )
        if len(value.shape) != len(spec.shape):
            hint = ""
            if len(value.shape) + 1 == len(spec.shape):
                hint = " (missing batch axis? use x[None])"
            problems.append(
                f"{spec.name!r} has shape {tuple(value.shape)} ({value.ndim} dims), the model "
                f"expects {len(spec.shape)} dims {spec.describe().split(':', 1)[1].strip()}{hint}"
            )
            continue
        for axis, (want_dim, got) in enumerate(zip(spec.shape, value.shape, strict=True)):
            if isinstance(want_dim, int) and want_dim != got:
                problems.append(
                    f"{spec.name!r} axis {axis} is {got}, the model needs {want_dim} "
                    f"(expected {spec.describe()}, got shape {tuple(value.shape)})"
                )
    if problems:
        raise InputMismatchError("input mismatch: " + "; ".join(problems))


class Predictor:
    """Run an ONNX model on numpy inputs with checks, batching and the right provider.

    >>> pred = Predictor("model.onnx")                     # doctest: +SKIP
    >>> logits = pred(np.zeros((8, 3, 224, 224), np.float32))  # doctest: +SKIP

    Inputs are checked against the model (names, rank, fixed dims, dtype) before running,
    batches larger than ``max_batch_size`` (or than a fixed batch dim) are split along
    axis 0, and on CUDA inputs and outputs go through IOBinding.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes | ort.InferenceSession,
        device: Device | str = "auto",
        max_batch_size: int | None = None,
        **session_kwargs: Any,
    ) -> None:
        if hasattr(model, "get_inputs"):
            self.session = model
        else:
            self.session = create_session(model, device=device, **session_kwargs)  # type: ignore[arg-type]
        self.inputs = _specs(self.session.get_inputs())
        self.outputs = _specs(self.session.get_outputs())
        self.output_names = [o.name for o in self.outputs]
        self.max_batch_size = max_batch_size
        fixed = {s.shape[0] for s in self.inputs if s.shape and isinstance(s.shape[0], int)}
        self._fixed_batch = fixed.pop() if len(fixed) == 1 else None
        self.uses_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"

    @property
    def providers(self) -> list[str]:
        """Providers really in use, first one first."""
        return list(self.session.get_providers())

    def as_feeds(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Positional arrays, one dict, or keyword arrays -> ``{input_name: value}``."""
        if kwargs:
            if args:
                raise InputMismatchError("pass inputs either by position or by name, not both")
            return dict(kwargs)
        if len(args) == 1 and isinstance(args[0], Mapping):
            return dict(args[0])
        if len(args) != len(self.inputs):
            raise InputMismatchError(
                f"the model takes {len(self.inputs)} input(s) "
                f"({', '.join(s.describe() for s in self.inputs)}), got {len(args)}"
            )
        return {s.name: a for s, a in zip(self.inputs, args, strict=True)}

    def run(self, *args: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """Run and return ``{output_name: array}``."""
        feeds = self.as_feeds(args, kwargs)
        batch = self._batch_size(feeds)
        chunk = self._chunk_size(batch)
        if batch is not None and chunk is not None and batch > chunk:
            if batch % chunk and self._fixed_batch is not None:
                raise InputMismatchError(
                    f"the model has a fixed batch size of {self._fixed_batch} and the input "
                    f"batch {batch} is not a multiple of it; pad the batch or re-export "
                    "with a dynamic batch dimension"
                )
            parts = [
                self._run_checked({k: v[i : i + chunk] for k, v in feeds.items()})
                for i in range(0, batch, chunk)
            ]
            return {n: np.concatenate([p[n] for p in parts]) for n in self.output_names}
        return self._run_checked(feeds)

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run; a single-output model returns its array, others a tuple in output order."""
        out = self.run(*args, **kwargs)
        values = tuple(out[n] for n in self.output_names)
        return values[0] if len(values) == 1 else values

    def _batch_size(self, feeds: Mapping[str, Any]) -> int | None:
        sizes = {v.shape[0] for v in feeds.values() if isinstance(v, np.ndarray) and v.ndim}
        return sizes.pop() if len(sizes) == 1 else None

    def _chunk_size(self, batch: int | None) -> int | None:
        if self._fixed_batch is not None:
            return self._fixed_batch
        return self.max_batch_size

    def _run_checked(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, feeds)
        if self.uses_cuda:
            return self._run_iobinding(feeds)
        values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))

    def _run_iobinding(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ort_mod = _ort()
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(
                name, ort_mod.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), "cuda", 0)
            )
        for name in self.output_names:
            binding.bind_output(name, "cuda", 0)
        self.session.run_with_iobinding(binding)
        values = binding.copy_outputs_to_cpu()
        return dict(zip(self.output_names, values, strict=True))

    def example_inputs(self, batch_size: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
        """Random inputs that fit the model, symbolic dims set to ``batch_size``."""
        return random_inputs(self.inputs, batch_size=batch_size, seed=seed)


def random_inputs(
    specs: Sequence[Any],
    batch_size: int = 2,
    seed: int = 0,
    dim_values: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Random arrays for input specs (``InputSpec`` or ``modelinfo.TensorSpec``).

    Symbolic dims take ``dim_values[name]`` if given, else ``batch_size`` on axis 0 and an
    error elsewhere (a shape the caller must decide).
    """
    rng = np.random.default_rng(seed)
    dim_values = dict(dim_values or {})
    feeds = {}
    for spec in specs:
        shape = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int):
                shape.append(d)
            elif isinstance(d, str) and d in dim_values:
                shape.append(dim_values[d])
            elif axis == 0:
                shape.append(batch_size)
            else:
                raise InputMismatchError(
                    f"input {spec.name!r} axis {axis} is dynamic ({d!r}); pass "
                    f"dim_values={{{d!r}: N}} to choose its size"
                )
        dtype = np.dtype(spec.dtype) if spec.dtype is not None else np.dtype(np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            feeds[spec.name] = rng.integers(0, 10, shape).astype(dtype)
    return feeds
