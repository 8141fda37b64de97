"""The ``Runner`` interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import numpy as np

from onnx_deploy.core.contract import ModelContract
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.feeds import as_feeds
from onnx_deploy.core.feeds import check_inputs
from onnx_deploy.core.feeds import fill_defaults
from onnx_deploy.core.feeds import random_inputs
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import describe_all


class Runner(abc.ABC):
    """Runs one model on one device.

    Subclasses set ``backend`` and ``_inputs``/``_outputs`` (or override ``inputs`` and
    ``outputs``), and implement ``_activate``, ``_deactivate`` and ``_infer``; they may override ``timed_call`` (what a benchmark
    times: inputs prepared once, no checks, no copies) and ``synchronize``.

    Resources are acquired on first use or on ``with runner:`` and released by
    ``close()`` or at the end of the ``with`` block that acquired them, so nested
    ``with`` blocks and a runner passed to several comparisons share one session. A
    runner that opens its session on construction to read its inputs (ONNX Runtime,
    OpenVINO) holds it from there on, but is not in use until it runs or is entered:
    ``release()`` frees it until then.
    """

    backend: str = "?"
    _inputs: tuple[TensorSpec, ...] = ()
    _outputs: tuple[TensorSpec, ...] = ()
    contract: ModelContract | None = None  # what the file's source recorded (core.contract)
    max_batch: int | None = None  # the largest batch it runs (None: any), and why
    max_batch_reason: str = ""

    def __init__(self, name: str, device: str) -> None:
        self.name = name
        self.device = device
        self._active = False
        self._used = False  # run or entered since it was last closed: release() keeps it
        self._entered: list[bool] = []

    # --- interface -----------------------------------------------------------------

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]: ...

    # --- shared behaviour --------------------------------------------------------------

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    @property
    def active(self) -> bool:
        return self._active

    def activate(self) -> Runner:
        if not self._active:
            self._activate()
            self._active = True
        self._used = True
        return self

    def close(self) -> None:
        """Free what the runner holds; the next use opens it again."""
        if self._active:
            self._deactivate()
            self._active = False
        self._used = False

    def release(self) -> None:
        """Free what a runner holds while nobody uses it (an ONNX Runtime session opened
        to read its inputs, not yet run or entered); the next use opens it again. A model
        of several GB is then held once at a time, not twice."""
        if not self._used:
            self._deactivate()
            self._active = False

    def __enter__(self) -> Runner:
        self._entered.append(not self._active)
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._entered.pop():
            self.close()

    def feeds(self, data: Any) -> Feeds:
        """``data`` (an array, a tuple in input order, a dict by name) as checked feeds."""
        feeds = as_feeds(data, self.inputs)
        if self.contract is not None and self.contract.defaults:
            feeds, _ = fill_defaults(feeds, self.inputs, self.contract.defaults)
        check_inputs(self.inputs, feeds)
        return feeds

    def infer(self, data: Any) -> dict[str, np.ndarray]:
        """Run on ``data`` (checked against ``inputs``) and return ``{output_name: array}``."""
        feeds = self.feeds(data)
        self.activate()
        return self._infer(feeds)

    def timed_call(self, data: Any) -> Callable[[], Any]:
        """A call with no arguments that runs the model on ``data``, for a benchmark to
        time: checks and preparation happen here, once, not inside the call."""
        feeds = self.feeds(data)
        self.activate()
        return lambda: self._infer(feeds)

    def synchronize(self) -> None:  # noqa: B027 - a no-op is right for synchronous backends
        """Wait for queued device work (CUDA); a benchmark calls it after each timed call."""

    def environment(self) -> dict[str, Any]:
        """What this runner's timings depend on, beyond the machine (providers, threads)."""
        return {}

    def signature(
        self, dims: Iterable[DimRange] = (), declared: Iterable[InputSpec] = ()
    ) -> Signature:
        """The model's inputs as a ``Signature``: kinds, value ranges and dim ranges from
        its contract where it has one, else guessed from names and dtypes; ``dims`` and
        ``declared`` (the caller's) win by name."""
        if self.contract is not None:
            return self.contract.signature(self.inputs, dims, declared)
        return Signature.from_specs(self.inputs, dims, declared)

    def example_inputs(
        self, batch_size: int = 2, seed: int = 0, dim_values: Mapping[str, int] | None = None
    ) -> Feeds:
        """Random inputs that fit the model, symbolic dims chosen by name or batch size;
        with a contract, valid ones (token ids below the vocabulary, padding masks, other
        dims at their example size)."""
        if self.contract is None:
            return random_inputs(
                self.inputs, batch_size=batch_size, seed=seed, dim_values=dim_values
            )
        sig = self.signature()
        sizes = {d: batch_size for d in sig.batch_dims} | dict(dim_values or {})
        return sig.examples(sizes, seed)

    def describe(self) -> str:
        return (
            f"{self.name} [{self.backend}/{self.device}]: {describe_all(self.inputs)} -> "
            f"{describe_all(self.outputs) or '?'}"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
