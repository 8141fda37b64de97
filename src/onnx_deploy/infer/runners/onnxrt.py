"""The ONNX Runtime runner: a checked session on the provider that really runs.

Torch-free. On CUDA, inputs and outputs go through IOBinding, bound once per input
shape and reused: ``infer`` copies new values into the bound device buffers
(``OrtValue.update_inplace``) and the outputs back; a benchmark's ``timed_call`` copies
its inputs once, so the timed path is ``run_with_iobinding`` alone.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from onnx_deploy.core.contract import read_contract
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.files import file_size
from onnx_deploy.core.memory import LARGE_MODEL_BYTES
from onnx_deploy.core.memory import release_freed_memory
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import from_ort
from onnx_deploy.infer.runners.base import Runner
from onnx_deploy.infer.sessions import OnFallback
from onnx_deploy.infer.sessions import SessionSettings
from onnx_deploy.infer.sessions import create_session
from onnx_deploy.infer.sessions import ort_module

if TYPE_CHECKING:
    import onnxruntime as ort

MAX_BINDINGS = 8  # input shapes whose IOBinding is kept (least recently used dropped)


def session_specs(nodes: Any) -> tuple[TensorSpec, ...]:
    """Specs from an InferenceSession's ``get_inputs()`` / ``get_outputs()``."""
    return tuple(
        TensorSpec(
            n.name,
            from_ort(n.type),
            tuple(d if isinstance(d, (int, str)) else None for d in n.shape),
        )
        for n in nodes
    )


def intra_op_threads(session: Any) -> dict[str, Any]:
    """The intra-op threads a CPU session runs with: the number set in its options, or
    ONNX Runtime's default when it was left at 0 (one thread per physical core)."""
    from onnx_deploy.core.cpu import cpu_info

    set_to = int(session.get_session_options().intra_op_num_threads)
    if set_to > 0:
        return {"intra_op_threads": set_to, "intra_op_threads_source": "set"}
    info = cpu_info()
    cores = info["physical_cores"] or info["logical_cpus"]
    return {
        "intra_op_threads": cores,
        "intra_op_threads_source": "onnxruntime default (one per physical core)",
    }


@dataclass
class _Bound:
    binding: Any  # onnxruntime.IOBinding
    inputs: dict[str, Any]  # name -> OrtValue on the bound device


class OnnxRuntimeRunner(Runner):
    """Run an ONNX model (a path, bytes, or an open ``InferenceSession``) on ONNX Runtime.

    ``device``: ``auto`` (CUDA where it really runs), ``cpu``, ``cuda``; ``providers``
    overrides it. ``threads``, ``graph_optimization``, ``on_fallback``, ``options`` and
    ``provider_options`` go to ``sessions.create_session``; ``settings`` (a
    ``SessionSettings``: threads, spinning, execution mode, memory arena and pattern) makes
    the ``options``. ``io_binding``: bind inputs and outputs to device
    buffers (default: on CUDA only; ``True`` on the CPU exercises the same path).
    ``open_now=False``: a file of ``LARGE_MODEL_BYTES`` or more on the CPU (no
    ``providers``) has its inputs, outputs and contract read from its graph, weights left
    on disk, and its session opens when it first runs.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes | ort.InferenceSession,
        device: str = "auto",
        *,
        providers: list[str] | None = None,
        threads: int | None = None,
        graph_optimization: str = "all",
        on_fallback: OnFallback = "raise",
        options: ort.SessionOptions | None = None,
        io_binding: bool | None = None,
        name: str | None = None,
        provider_options: Mapping[str, Mapping[str, str]] | None = None,
        settings: SessionSettings | None = None,
        open_now: bool = True,
    ) -> None:
        self._source = model
        self.model_path = str(model) if isinstance(model, (str, os.PathLike)) else None
        self.settings = settings
        if settings is not None and options is None:
            options = settings.options(graph_optimization)
        self._session_kwargs: dict[str, Any] = {
            "device": device,
            "providers": providers,
            "threads": threads,
            "graph_optimization": graph_optimization,
            "on_fallback": on_fallback,
            "options": options,
            "provider_options": provider_options,
        }
        if hasattr(model, "get_inputs"):
            self.session: Any = model
        elif not open_now and self._can_defer(device, providers):
            self._read_graph(model, name, bool(io_binding))  # type: ignore[arg-type]
            return
        else:
            self.session = create_session(model, **self._session_kwargs)  # type: ignore[arg-type]
        self.uses_cuda = self.session.get_providers()[0] in (
            "CUDAExecutionProvider",
            "TensorrtExecutionProvider",
        )
        default_name = Path(model).name if isinstance(model, (str, os.PathLike)) else "onnx"
        super().__init__(name or default_name, "cuda" if self.uses_cuda else "cpu")
        self._inputs = session_specs(self.session.get_inputs())
        self._outputs = session_specs(self.session.get_outputs())
        self.contract = read_contract(self.session.get_modelmeta().custom_metadata_map)
        self.io_binding = self.uses_cuda if io_binding is None else bool(io_binding)
        self._bindings: OrderedDict[tuple[Any, ...], _Bound] = OrderedDict()
        self._last: _Bound | None = None
        self._active = True  # the session is open from here on

    def _can_defer(self, device: str, providers: list[str] | None) -> bool:
        """A large file on the CPU: its inputs can be read without loading its weights."""
        if self.model_path is None or device != "cpu" or providers is not None:
            return False
        return _on_disk(self.model_path) >= LARGE_MODEL_BYTES

    def _read_graph(
        self, model: str | os.PathLike[str], name: str | None, io_binding: bool
    ) -> None:
        """Inputs, outputs and contract from the file's graph, its weights left on disk:
        the session opens at the first run. For a model of several GB a session opened
        only to read its inputs cost a full load before the one that runs."""
        from onnx_deploy.infer.modelinfo import load_onnx
        from onnx_deploy.infer.modelinfo import value_info_spec

        graph_file = load_onnx(model, load_external_data=False)
        weights = {t.name for t in graph_file.graph.initializer}
        self.session = None
        self.uses_cuda = False
        super().__init__(name or Path(model).name, "cpu")
        self._inputs = tuple(
            value_info_spec(v) for v in graph_file.graph.input if v.name not in weights
        )
        self._outputs = tuple(value_info_spec(v) for v in graph_file.graph.output)
        self.contract = read_contract({p.key: p.value for p in graph_file.metadata_props})
        self.io_binding = io_binding  # as asked: the CPU's default is off
        self._bindings = OrderedDict()
        self._last = None

    @property
    def providers(self) -> list[str]:
        """Providers really in use, first one first."""
        self.activate()
        return list(self.session.get_providers())

    def _activate(self) -> None:
        if self.session is None:
            self.session = create_session(self._source, **self._session_kwargs)  # type: ignore[arg-type]

    def _deactivate(self) -> None:
        self._bindings.clear()
        self._last = None
        if not hasattr(self._source, "get_inputs") and self.session is not None:
            self.session = None  # a session we opened: let onnxruntime free it
            if self.model_path and _on_disk(self.model_path) >= LARGE_MODEL_BYTES:
                release_freed_memory(collect=False)  # freed by refcount: only the trim

    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        if self.io_binding:
            bound = self._bind(feeds)
            self.session.run_with_iobinding(bound.binding)
            values = bound.binding.copy_outputs_to_cpu()
        else:
            values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))

    def _bind(self, feeds: Feeds) -> _Bound:
        """The IOBinding for these input shapes, made once; new values are copied into
        its device buffers in place."""
        key = tuple((n, v.shape, v.dtype.str) for n, v in sorted(feeds.items()))
        bound = self._bindings.get(key)
        if bound is None:
            ort_mod = ort_module()
            where = "cuda" if self.uses_cuda else "cpu"
            binding = self.session.io_binding()
            values = {}
            for name, value in feeds.items():
                values[name] = ort_mod.OrtValue.ortvalue_from_numpy(
                    np.ascontiguousarray(value), where, 0
                )
                binding.bind_ortvalue_input(name, values[name])
            for name in self.output_names:
                binding.bind_output(name, where, 0)
            bound = _Bound(binding, values)
            self._bindings[key] = bound
            while len(self._bindings) > MAX_BINDINGS:
                self._bindings.popitem(last=False)
        else:
            self._bindings.move_to_end(key)
            for name, value in feeds.items():
                bound.inputs[name].update_inplace(np.ascontiguousarray(value))
        self._last = bound
        return bound

    def timed_call(self, data: Any) -> Any:
        feeds = self.feeds(data)
        self.activate()
        if self.io_binding:
            binding = self._bind(feeds).binding  # inputs copied to the device here, once
            run = self.session.run_with_iobinding
            return lambda: run(binding)
        run_plain, names = self.session.run, self.output_names
        return lambda: run_plain(names, feeds)

    def synchronize(self) -> None:
        if self.io_binding and self._last is not None:
            self._last.binding.synchronize_outputs()

    def environment(self) -> dict[str, Any]:
        env = {  # `providers` opens a session not yet opened
            "providers": self.providers,
            "io_binding": self.io_binding,
            **intra_op_threads(self.session),
        }
        if self.settings is not None:
            env["session_settings"] = self.settings.describe()
        return env

    @property
    def bound_shapes(self) -> int:
        """How many input shapes have an IOBinding (for tests and diagnostics)."""
        return len(self._bindings)


def _on_disk(path: str) -> int:
    """The model's bytes on disk, external data included (0 once the file is gone)."""
    try:
        return file_size(path)
    except OSError:
        return 0
