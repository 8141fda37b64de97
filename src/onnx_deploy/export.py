"""torch -> ONNX with the dynamo exporter, dynamic batch, checks, and errors that help.

The raw call this wraps::

    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(model.eval(), (x,), "model.onnx", dynamo=True,
                      dynamic_shapes=({0: batch},), opset_version=20,
                      external_data=False, verbose=False)

What the wrapper adds: eval mode (with a warning if the model was training), examples
with standard strides, a batch of at least 2 (a size-1 example dim can be specialised to
a constant, pytorch issue 148629), quiet output, an atomic write that never overwrites
without ``force``,
``onnx.checker`` with ``full_check``, proof that dynamic dims came out symbolic, and an
``ExportError`` that names the failing construct and what to try.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from onnx_deploy._files import PROTOBUF_LIMIT, atomic_output, file_size, human_size
from onnx_deploy.defaults import DEFAULT_MAX_BATCH, DEFAULT_OPSET, MIN_OPSET
from onnx_deploy.errors import ExportError
from onnx_deploy.modelinfo import default_opset, graph_io
from onnx_deploy.specs import TensorSpec

if TYPE_CHECKING:
    import torch

Exporter = Literal["dynamo", "torchscript"]

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_OPSET", "MIN_OPSET", "ExportResult", "export_model"]


@dataclass(frozen=True)
class ExportResult:
    """What an export produced. ``program`` is the dynamo ``ONNXProgram`` (or None)."""

    path: str
    exporter: str
    opset: int
    ir_version: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    seconds: float
    size_bytes: int
    num_nodes: int
    external_data: bool = False
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    program: Any = field(default=None, repr=False, compare=False)

    def summary(self) -> str:
        lines = [
            f"export    {self.path}  {human_size(self.size_bytes)}  {self.seconds:.1f} s  "
            f"({self.exporter}, opset {self.opset}, IR {self.ir_version}, {self.num_nodes} nodes"
            f"{', external data' if self.external_data else ''})",
        ]
        lines += [f"  input   {t}" for t in self.inputs]
        lines += [f"  output  {t}" for t in self.outputs]
        lines += [f"  note    {n}" for n in self.notes]
        if self.warnings:
            lines.append(f"  {len(self.warnings)} exporter warning(s); see .warnings")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(dataclasses.replace(self, program=None))
        d.pop("program")
        return d


@contextlib.contextmanager
def quiet_exporter(capture: io.StringIO) -> Iterator[list[warnings.WarningMessage]]:
    """Capture the exporter's stdout/stderr and warnings and lower torch's chattiest loggers.

    A failing ``torch.onnx.export`` prints graph dumps and log lines; inside this block
    they go to ``capture`` instead. Yields the list of caught warnings.
    """
    noisy = [
        logging.getLogger(n)
        for n in (
            "torch.fx.experimental.symbolic_shapes",
            "torch.onnx",
            "torch.export",
            "torch._dynamo",
        )
    ]
    levels = [lg.level for lg in noisy]
    for lg in noisy:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(capture),
            contextlib.redirect_stderr(capture),
        ):
            warnings.simplefilter("always")
            yield caught
    finally:
        for lg, lvl in zip(noisy, levels, strict=True):
            lg.setLevel(lvl)


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    import torch

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, (list, tuple)):
        # Dense, standard strides: a tensor made from a numpy array with a size-1 axis
        # (e.g. images[:, None]) has odd strides that the dynamo exporter turns into an
        # as_strided/Gather chain (20 instead of 10 nodes for the digits CNN).
        return tuple(
            a.clone(memory_format=torch.contiguous_format) if isinstance(a, torch.Tensor) else a
            for a in example_inputs
        )
    raise ExportError(
        f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}"
    )


def _widen_batch(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], bool]:
    """Repeat size-1 batches to 2 so the exporter cannot specialise the batch dim."""
    import torch

    widened = False
    out = []
    for a in args:
        if isinstance(a, torch.Tensor) and a.ndim >= 1 and a.shape[0] == 1:
            a = torch.cat([a, a], dim=0)
            widened = True
        out.append(a)
    return tuple(out), widened


def _explain(exc: BaseException, log: str) -> ExportError:
    """Turn an exporter exception into an ExportError naming the construct and a fix."""
    text = f"{exc}\n{log}"
    where = ""
    m = re.search(
        r'The following call raised this error:\s*\n\s*File "([^"]+)", line (\d+)[^\n]*\n\s*(.+)',
        text,
    )
    if m:
        where = f" at {Path(m.group(1)).name}:{m.group(2)} (`{m.group(3).strip()}`)"
    op = re.search(
        r"No ONNX function found for <OpOverload\(op='([\w.]+)', overload='(\w+)'\)>", text
    )
    if op:
        name = op.group(1)
        return ExportError(
            f"the operator {name} has no ONNX translation{where}. Try: rewrite that step with "
            f"supported ops; or pass custom_translation_table={{torch.ops.{name}.{op.group(2)}: "
            "your_onnxscript_fn}; or a newer torch/onnxscript; or exporter='torchscript'.",
            details=text,
        )
    if re.search(r"data-dependent|GuardOnDataDependentSymNode|DataDependentOutputException", text):
        return ExportError(
            f"data-dependent control flow{where}: Python `if`/`while` on a tensor's value "
            "cannot be captured in a static graph. Try: torch.where(cond, a, b) to compute both "
            "branches, torch.cond(pred, true_fn, false_fn, (x,)) for real branching, or move the "
            "decision out of forward().",
            details=text,
        )
    if re.search(r"Constraints violated|ConstraintViolation|specializ", text):
        return ExportError(
            f"a dynamic dimension was forced to a constant{where}: the model's code fixes "
            "the batch size (e.g. x.view(1, -1) or a hard-coded shape). Try: x.flatten(1) "
            "or x.reshape(x.shape[0], -1), or export with a static batch "
            "(dynamic_batch=False / --static).",
            details=text,
        )
    first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return ExportError(
        f"export failed{where}: {type(exc).__name__}: {first}. Try exporter='torchscript' to "
        "compare, or read ExportError.details for the exporter's full report.",
        details=text,
    )


def _dynamic_shapes(args: tuple[Any, ...], max_batch: int) -> tuple[Any, ...]:
    import torch

    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return tuple({0: batch} if isinstance(a, torch.Tensor) and a.ndim >= 1 else None for a in args)


def _default_names(args: tuple[Any, ...], prefix: str) -> list[str]:
    return [prefix] if len(args) == 1 else [f"{prefix}_{i}" for i in range(len(args))]


def export_model(
    model: torch.nn.Module,
    example_inputs: Any,
    output: str | os.PathLike[str],
    *,
    exporter: Exporter = "dynamo",
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    max_batch: int = DEFAULT_MAX_BATCH,
    dynamic_shapes: Any = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    external_data: bool | None = None,
    force: bool = False,
) -> ExportResult:
    """Export ``model`` to ``output`` and check the result; see the module docstring.

    ``dynamic_batch`` makes axis 0 of every tensor input dynamic (``dynamic_shapes``
    overrides it with the exporter's own format). ``external_data=None`` writes one file
    unless the weights are too large for protobuf's 2 GiB limit.
    """
    import onnx

    from onnx_deploy.extras import require

    torch = require("torch", "exporting to ONNX")
    require("onnxscript", "the dynamo exporter")
    if exporter not in ("dynamo", "torchscript"):
        raise ExportError(f"exporter must be 'dynamo' or 'torchscript', got {exporter!r}")
    if opset < MIN_OPSET:
        raise ExportError(
            f"opset {opset} is too old; use {MIN_OPSET} or newer (default {DEFAULT_OPSET})"
        )
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model must be a torch.nn.Module, got {type(model).__name__}")

    notes: list[str] = []
    was_training = model.training
    if was_training:
        warnings.warn(
            "the model was in training mode; exporting in eval mode (dropout off, batch norm "
            "uses running stats). Call model.eval() yourself to silence this.",
            UserWarning,
            stacklevel=2,
        )
        notes.append("model was in training mode; exported in eval mode")
    args = _as_tuple(example_inputs)
    want_dynamic = dynamic_batch or dynamic_shapes is not None
    if dynamic_batch and dynamic_shapes is None:
        args, widened = _widen_batch(args)
        if widened:
            notes.append("example batch of 1 repeated to 2 so the batch dim stays dynamic")
        dynamic_shapes = _dynamic_shapes(args, max_batch)

    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if external_data is None:
        external_data = param_bytes > PROTOBUF_LIMIT
        if external_data:
            notes.append("weights over 2 GiB: written to an external .data file")

    in_names = list(input_names) if input_names else None
    out_names = list(output_names) if output_names else None
    log = io.StringIO()
    start = time.perf_counter()
    program = None
    try:
        model.eval()
        with (
            atomic_output(output, force=force) as tmp,
            quiet_exporter(log) as caught,
            torch.no_grad(),
        ):
            try:
                if exporter == "dynamo":
                    program = torch.onnx.export(
                        model,
                        args,
                        str(tmp),
                        dynamo=True,
                        dynamic_shapes=dynamic_shapes if want_dynamic else None,
                        opset_version=opset,
                        input_names=in_names,
                        output_names=out_names,
                        external_data=external_data,
                        verbose=False,
                    )
                else:
                    names = in_names or _default_names(args, "input")
                    axes = None
                    if want_dynamic:
                        outs = out_names or ["output"]
                        axes = {n: {0: "batch"} for n in [*names, *outs]}
                        out_names = outs
                    torch.onnx.export(
                        model,
                        args,
                        str(tmp),
                        dynamo=False,
                        opset_version=opset,
                        input_names=names,
                        output_names=out_names,
                        dynamic_axes=axes,
                        verbose=False,
                    )
            except Exception as e:
                raise _explain(e, log.getvalue()) from e
            warn_text = tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
            _check_exported(tmp, want_dynamic)
            wrote_external = any(p != tmp for p in tmp.parent.iterdir())
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start

    proto = onnx.load(str(output), load_external_data=False)
    inputs, outputs = graph_io(proto)
    return ExportResult(
        path=str(output),
        exporter=exporter,
        opset=default_opset(proto),
        ir_version=int(proto.ir_version),
        inputs=inputs,
        outputs=outputs,
        seconds=seconds,
        size_bytes=file_size(output),
        num_nodes=len(proto.graph.node),
        external_data=wrote_external,
        notes=tuple(notes),
        warnings=warn_text,
        program=program,
    )


def _check_exported(path: Path, want_dynamic: bool) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ExportError(
            f"the exported graph fails onnx.checker ({type(e).__name__}: {str(e)[:300]}). "
            "Try another opset or exporter='torchscript', and report it upstream."
        ) from e
    if want_dynamic:
        inputs, _ = graph_io(onnx.load(str(path), load_external_data=False))
        static = [str(t) for t in inputs if t.shape and isinstance(t.shape[0], int)]
        if static:
            raise ExportError(
                f"asked for a dynamic batch but the exporter fixed it: {static}. The model's "
                "code likely pins the batch size (x.view(1, -1), a hard-coded shape); use "
                "x.flatten(1), or export with dynamic_batch=False."
            )
