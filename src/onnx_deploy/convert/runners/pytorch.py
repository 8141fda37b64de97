"""The PyTorch runner: eager mode on the CPU or CUDA, as the reference for comparisons.

A module has no declared inputs, so the runner takes specs (usually the exported ONNX
model's, so both sides use the same names) and passes the feeds positionally, in spec
order. Outputs (a tensor, a tuple, a list or a dict of them, nested) are flattened in
order; names come from ``output_names`` or are ``output_0``, ``output_1``, ...

The caller's module is left as it was: it runs in eval mode, and its training flag is
restored on ``close()``; if it has to move to another device, a copy moves.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from onnx_deploy.core.errors import ValidationError
from onnx_deploy.core.extras import require
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.feeds import to_numpy
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import from_torch
from onnx_deploy.infer.providers import check_device
from onnx_deploy.infer.runners.base import Runner

if TYPE_CHECKING:
    import torch


def flatten_outputs(out: Any) -> list[Any]:
    """A module's outputs in order: tensors from tensors, tuples, lists and dicts."""
    if hasattr(out, "detach"):
        return [out]
    if isinstance(out, Mapping):
        return [a for v in out.values() for a in flatten_outputs(v)]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in flatten_outputs(v)]
    raise ValidationError(f"cannot compare a model output of type {type(out).__name__}")


def output_names_of(out: Any) -> list[str] | None:
    """Names for a module's flattened outputs (``flatten_outputs``' order) from their
    structure: dict and ``ModelOutput`` keys (``logits``), namedtuple fields, joined with
    ``.`` when nested (``hidden_states.0``). None when nothing in it has a name (a tensor,
    a plain tuple): the exporter's own names stay."""
    named = False

    def walk(value: Any, prefix: str) -> list[str]:
        nonlocal named
        if hasattr(value, "detach"):
            return [prefix or "output"]
        if isinstance(value, Mapping):
            named = True
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, tuple) and hasattr(value, "_fields"):
            named = True
            items = list(zip(value._fields, value, strict=True))
        elif isinstance(value, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            raise ValidationError(f"cannot name a model output of type {type(value).__name__}")
        return [n for k, v in items for n in walk(v, f"{prefix}.{k}" if prefix else k)]

    names = walk(out, "")
    return names if named else None


def forward_parameters(model: Any) -> tuple[list[str], bool]:
    """The names ``model.forward`` takes (after self), and whether it takes ``*args``."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return [], True
    names = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return names, any(p.kind == p.VAR_POSITIONAL for p in params)


def _module_device(module: torch.nn.Module) -> str:
    for p in module.parameters():
        return p.device.type
    for b in module.buffers():
        return b.device.type
    return "cpu"


def torch_cuda_available() -> bool:
    """True where torch is installed and sees a GPU (imports torch)."""
    from onnx_deploy.core.extras import available

    if not available("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def torch_device(device: str = "auto") -> str:
    """``"cpu"`` or ``"cuda"`` for PyTorch: ``auto`` is CUDA where torch sees a GPU.
    ONNX Runtime's answer is ``onnx_deploy.resolve_device`` (a probe session decides)."""
    name = check_device(device)
    if name != "auto":
        return name
    return "cuda" if torch_cuda_available() else "cpu"


class TorchRunner(Runner):
    """Run ``module`` eagerly under ``torch.inference_mode``.

    ``inputs``: the specs to feed (names, dtypes, shapes); ``output_names``: names for the
    flattened outputs; ``device``: ``auto`` (CUDA if torch sees a GPU), ``cpu``, ``cuda``.
    ``load``: instead of a module, how to build it (``TorchRunner.loading``).
    """

    backend = "torch"

    def __init__(
        self,
        module: torch.nn.Module | None,
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str] | None = None,
        device: str = "cpu",
        name: str | None = None,
        *,
        load: Callable[[], torch.nn.Module] | None = None,
    ) -> None:
        require("torch", "the PyTorch runner")
        if (module is None) == (load is None):
            raise ValueError("TorchRunner takes a module or load=, one of them")
        default = "torch" if module is None else f"torch:{type(module).__name__}"
        super().__init__(name or default, torch_device(device))
        self.module = module
        self._load = load
        self._named = name is not None or module is not None  # else named once built
        self._inputs = tuple(inputs)
        self._output_names = list(output_names) if output_names else None
        self._outputs: tuple[TensorSpec, ...] = ()
        self._running: torch.nn.Module | None = None
        self._was_training = False
        self._keywords = False

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """Known after the first run (a module does not declare its outputs)."""
        if self._outputs:
            return self._outputs
        return tuple(TensorSpec(n, "?", ()) for n in self._output_names or ())

    @classmethod
    def loading(
        cls,
        load: Callable[[], torch.nn.Module],
        inputs: Sequence[TensorSpec],
        output_names: Sequence[str] | None = None,
        device: str = "cpu",
        name: str | None = None,
    ) -> TorchRunner:
        """A runner that builds its module with ``load()`` when it is first used and frees
        it when released (``compare`` releases the reference before the candidate runs):
        a model of N bytes is then held once, not beside the ONNX session of the same
        weights. The module is built again if the runner is used after that. ``name``:
        default ``torch:`` and the built module's class, as for a module given."""
        return cls(None, inputs, output_names, device, name, load=load)

    def _activate(self) -> None:
        if self.module is None and self._load is not None:
            self.module = self._load()
            if not self._named:
                self.name = f"torch:{type(self.module).__name__}"
        self._was_training = self.module.training
        running = self.module
        if _module_device(running) != self.device:
            running = copy.deepcopy(running).to(self.device)  # the caller's stays put
        self._running = running.eval()
        self._keywords = self.by_keyword

    def _deactivate(self) -> None:
        if self._running is not None and self._running is self.module:
            self.module.train(self._was_training)
        self._running = None
        if self._load is not None and self.module is not None:  # built here, so freed here
            from onnx_deploy.core.memory import release_freed_memory

            self.module = None
            release_freed_memory()

    def _tensors(self, feeds: Feeds) -> list[Any]:
        import torch

        return [
            torch.from_numpy(np.ascontiguousarray(feeds[s.name])).to(self.device)
            for s in self._inputs
        ]

    @property
    def by_keyword(self) -> bool:
        """Inputs go to ``forward`` by keyword when their names are its parameters (the
        dynamo exporter names ONNX inputs after them, in the order they were passed),
        else by position in spec order."""
        params, _ = forward_parameters(self.module)
        return bool(self._inputs) and all(s.name in params for s in self._inputs)

    def _forward(self, tensors: list[Any]) -> list[Any]:
        import torch

        assert self._running is not None
        with torch.inference_mode():
            if self._keywords:
                named = dict(zip((s.name for s in self._inputs), tensors, strict=True))
                return flatten_outputs(self._running(**named))
            return flatten_outputs(self._running(*tensors))

    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        outs = self._forward(self._tensors(feeds))
        names = self._output_names or [f"output_{i}" for i in range(len(outs))]
        if len(names) != len(outs):
            raise ValidationError(
                f"{self.name} returned {len(outs)} outputs, expected {len(names)} ({names})"
            )
        if not self._outputs:
            self._outputs = tuple(
                TensorSpec(n, from_torch(o.dtype), tuple(o.shape))
                for n, o in zip(names, outs, strict=True)
            )
        return {n: to_numpy(o) for n, o in zip(names, outs, strict=True)}

    def timed_call(self, data: Any) -> Callable[[], Any]:
        feeds = self.feeds(data)
        self.activate()
        tensors = self._tensors(feeds)  # on the device once, outside the timed call
        return lambda: self._forward(tensors)

    def environment(self) -> dict[str, Any]:
        import torch

        env: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
        if self.device == "cuda":
            env["gpu"] = torch.cuda.get_device_name()
        return env

    def synchronize(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
