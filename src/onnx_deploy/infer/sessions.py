"""The session factory: every ONNX Runtime session in the package opens here.

Torch-free on purpose: a production inference image ships onnxruntime and numpy only.

A session that asks for CUDA silently runs on the CPU when CUDA cannot start, so
``create_session`` asks only for providers that really run (``providers.working_providers``)
and checks ``session.get_providers()`` after opening. ``onnx_deploy.infer.runners.onnxrt``
runs models on these sessions.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Literal

from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.errors import ProviderError
from onnx_deploy.infer.providers import Device
from onnx_deploy.infer.providers import default_providers
from onnx_deploy.infer.providers import ort_module
from onnx_deploy.infer.providers import resolve_provider
from onnx_deploy.infer.providers import working_providers

if TYPE_CHECKING:
    import onnxruntime as ort

OnFallback = Literal["raise", "warn", "ignore"]

OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "layout", "all")


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


EXECUTION_MODES = ("sequential", "parallel")


@dataclass(frozen=True)
class SessionSettings:
    """The CPU session settings whose effect ``onnx_deploy.infer.tuning`` measures; ``None``
    keeps ONNX Runtime's default.

    ``threads``/``inter_op_threads``: the intra-op pool (one op's work split across cores;
    default one per physical core) and the inter-op pool (independent branches, used only
    in ``parallel`` execution mode). ``spinning``: ``session.intra_op.allow_spinning``
    (default on: idle pool threads busy-wait for the next op, which lowers latency and
    burns the cores another process, or a second session timed beside it, needs).
    ``memory_arena``: the CPU allocator's arena (default on); ``memory_pattern``: reuse the
    first run's allocation plan for inputs of the same shape (default on).
    ``stop_spinning``: ``session.force_spinning_stop`` (default off): the pool stops spinning
    when a call returns, instead of busy-waiting for the next one. Sessions timed in turns
    want it: measured on the 2-vCPU EPYC (Zen 4), a 0.65 ms call (a small DistilBERT-style
    classifier, batch 8) in 11 sessions taking turns of 10 calls: median 0.99 ms and 2.2%
    of calls stalled over 3 ms with the default, 0.65 ms and 0.1% with it; one session alone
    pays for it, a median of 0.145-0.161 ms -> 0.162-0.183 ms at batch 1 (three runs each).
    """

    threads: int | None = None
    inter_op_threads: int | None = None
    spinning: bool | None = None
    stop_spinning: bool | None = None
    execution_mode: str | None = None
    memory_arena: bool | None = None
    memory_pattern: bool | None = None

    def __post_init__(self) -> None:
        if self.execution_mode is not None and self.execution_mode not in EXECUTION_MODES:
            raise ValueError(
                f"execution_mode must be one of {EXECUTION_MODES}, got {self.execution_mode!r}"
            )

    @classmethod
    def taking_turns(cls, threads: int | None, spinning: bool | None) -> SessionSettings:
        """The settings of sessions timed in turns on one machine: ``threads`` and
        ``spinning`` as asked, and each pool stops spinning when its call returns (unless
        spinning is off anyway), so it does not take the cores from the next session."""
        return cls(
            threads=threads, spinning=spinning, stop_spinning=None if spinning is False else True
        )

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.__dict__.items() if v is not None]
        return ", ".join(parts) or "onnxruntime defaults"

    def options(self, graph_optimization: str = "all") -> ort.SessionOptions:
        """SessionOptions with these settings on top of ``session_options``'s."""
        so = session_options(self.threads, self.inter_op_threads, graph_optimization)
        ort_mod = ort_module()
        if self.execution_mode is not None:
            so.execution_mode = getattr(ort_mod.ExecutionMode, f"ORT_{self.execution_mode.upper()}")
        if self.spinning is not None:
            so.add_session_config_entry("session.intra_op.allow_spinning", str(int(self.spinning)))
            so.add_session_config_entry("session.inter_op.allow_spinning", str(int(self.spinning)))
        if self.stop_spinning is not None:
            so.add_session_config_entry("session.force_spinning_stop", str(int(self.stop_spinning)))
        if self.memory_arena is not None:
            so.enable_cpu_mem_arena = bool(self.memory_arena)
        if self.memory_pattern is not None:
            so.enable_mem_pattern = bool(self.memory_pattern)
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
    # the CPU provider always runs: no probe (and no GPU library loads) for CPU-only sessions
    usable = (
        ("CPUExecutionProvider",) if wanted == ["CPUExecutionProvider"] else working_providers()
    )
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
        if isinstance(model, (bytes, bytearray)):
            model, hint = "a model in memory", "it is not a valid ONNX graph"
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
