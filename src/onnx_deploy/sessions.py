"""ONNX Runtime sessions that say which provider really runs.

Torch-free on purpose: a production inference image ships onnxruntime and numpy only.

onnxruntime lists ``CUDAExecutionProvider`` as *available* whenever the GPU wheel is
installed, GPU or not, and a session that asks for CUDA silently runs on the CPU when
CUDA cannot start. So this module never trusts the list you asked for: it opens a tiny
probe session per provider to learn what works, and checks ``session.get_providers()``
after every session it creates. ``onnx_deploy.runners.onnxrt`` runs models on these
sessions.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from onnx_deploy.device import Device, resolve_device
from onnx_deploy.errors import ModelFileError, ProviderError

if TYPE_CHECKING:
    import onnxruntime as ort

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


def ort_module() -> Any:
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
    ort_mod = ort_module()
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
    if device in ("auto", "cpu", "cuda"):
        device = resolve_device(device, backend="onnxruntime")
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
    ort_mod = ort_module()
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
    level = getattr(ort_mod.GraphOptimizationLevel, level_name, None)
    if level is None:  # "layout" arrived in onnxruntime 1.22
        raise ValueError(
            f"onnxruntime {ort_mod.__version__} has no {graph_optimization!r} optimization level; "
            "use 'extended' or 'all', or upgrade onnxruntime"
        )
    so = ort_mod.SessionOptions()
    so.graph_optimization_level = level
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
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
) -> ort.InferenceSession:
    """Open an InferenceSession and make sure the provider asked for is the one running.

    ``device``: ``auto`` (CUDA where it works, else CPU), ``cpu``, ``cuda``. ``providers``
    overrides it with an explicit list, and ``provider_options`` gives options by
    provider name (``{"TensorrtExecutionProvider": {"trt_fp16_enable": "True"}}``).
    ``on_fallback``: what to do when the first provider asked for is not in use (``raise``
    a ``ProviderError``, ``warn``, ``ignore``).
    """
    ort_mod = ort_module()
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
        by_provider = {resolve_provider(k): dict(v) for k, v in (provider_options or {}).items()}
        sess = ort_mod.InferenceSession(
            source,
            sess_options=so,
            providers=wanted,
            provider_options=[by_provider.get(p, {}) for p in wanted],
        )
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
