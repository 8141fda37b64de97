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
import functools
import io
import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from onnx_deploy.convert.runners.pytorch import forward_parameters
from onnx_deploy.core.contract import ModelContract
from onnx_deploy.core.contract import stamp_file
from onnx_deploy.core.defaults import DEFAULT_MAX_BATCH
from onnx_deploy.core.defaults import DEFAULT_OPSET
from onnx_deploy.core.defaults import MIN_OPSET
from onnx_deploy.core.errors import ExportError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import PROTOBUF_LIMIT
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size
from onnx_deploy.core.results import Result
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.modelinfo import default_opset
from onnx_deploy.infer.modelinfo import graph_io

if TYPE_CHECKING:
    import torch

Exporter = Literal["dynamo", "torchscript"]

__all__ = ["ExportResult", "export_model"]


@dataclass(frozen=True)
class ExportResult(Result):
    """What an export produced. ``program`` is the dynamo ``ONNXProgram`` (or None)."""

    COMPUTED = ("symbolic_dims",)
    HIDDEN = ("program",)

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
    dims: tuple[DimRange, ...] = ()  # the dynamic dims asked for, with their ranges
    fallback_reason: str = ""  # why dynamo failed, when the TorchScript fallback exported
    program: Any = field(default=None, repr=False, compare=False)

    @property
    def symbolic_dims(self) -> dict[str, tuple[str, ...]]:
        """Each input's symbolic dims, by input name (``{"ids": ("batch", "seq")}``)."""
        return {t.name: tuple(d for d in t.shape if isinstance(d, str)) for t in self.inputs}

    def summary(self) -> str:
        lines = [
            f"export    {self.path}  {human_size(self.size_bytes)}  {self.seconds:.1f} s  "
            f"({self.exporter}, opset {self.opset}, IR {self.ir_version}, {self.num_nodes} nodes"
            f"{', external data' if self.external_data else ''})",
        ]
        lines += [f"  input   {t}" for t in self.inputs]
        if self.dims:
            lines.append(f"  dims    {', '.join(d.text() for d in self.dims)}")
        lines += [f"  output  {t}" for t in self.outputs]
        lines += [f"  note    {n}" for n in self.notes]
        if self.warnings:
            lines.append(f"  {len(self.warnings)} exporter warning(s); see .warnings")
        return "\n".join(lines)


def torch_dynamic_shapes(signature: Signature) -> dict[str, dict[int, Any]]:
    """``dynamic_shapes`` for ``torch.onnx.export`` keyed by input name: one
    ``torch.export.Dim`` per dim name, shared by every input that uses it."""
    import torch

    made = {d.name: torch.export.Dim(d.name, min=d.min, max=d.max) for d in signature.dims}
    return {
        i.name: {a: made[d] for a, d in enumerate(i.shape) if isinstance(d, str)}
        for i in signature.inputs
    }


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
            "torch.export._trace",  # logs a failed capture at ERROR before raising it
            "torch._dynamo",
            "onnx_ir",  # its passes log at INFO, which a root handler would print
            "onnxscript",
        )
    ]
    levels = [lg.level for lg in noisy]
    for lg in noisy:  # the failure itself is raised and explained: no log lines too
        lg.setLevel(logging.CRITICAL)
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


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The dynamo exporter's three steps, as its errors number them ("This is step 2/3").
EXPORT_STEPS = {
    1: "torch.export could not capture the model",
    2: "the captured graph could not be decomposed into ONNX-compatible ops",
    3: "the graph could not be translated to ONNX",
}


# torch warns once per input that reuses a Dim object ("The axis name: seq will not be
# used, since it shares the same shape constraints with another axis: seq."): that
# sharing is what a signature asks for, so it is not reported as an exporter warning.
SHARED_DIM_NOTICE = re.compile(r"axis name: (\w+) will not be used, since it shares .* axis: \1\.")


# Failures the TorchScript exporter may get past. Not data-dependent control flow (it
# traces one branch and bakes it in: a wrong graph that passes on some inputs), a
# dynamic dim forced to a constant (it would fix the same size) or an input type it
# cannot take either.
FALLBACK_KINDS = frozenset({"name_clash", "unsupported_op", "other"})


def clean(text: str) -> str:
    """An exporter message without terminal colour codes."""
    return ANSI.sub("", text)


def exception_summary(text: str) -> str:
    """The cause the dynamo exporter puts under ``## Exception summary`` (cleaned), or ''."""
    m = re.search(
        r"## Exception summary\s*\n(.*?)(?:\n\s*\(Refer to the full stack trace|\Z)", text, re.S
    )
    if not m:
        return ""
    cause = m.group(1).strip()
    return re.sub(r"^<class '([\w.]+)'>:\s*", lambda g: g.group(1).rsplit(".", 1)[-1] + ": ", cause)


def _to_tensor(value: Any, name: str) -> Any:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        # Dense, standard strides: a tensor made from a numpy array with a size-1 axis
        # (e.g. images[:, None]) has odd strides that the dynamo exporter turns into an
        # as_strided/Gather chain (20 instead of 10 nodes for the digits CNN).
        return value.clone(memory_format=torch.contiguous_format)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise ExportError(f"example input {name!r} is a {type(value).__name__}; pass tensors or arrays")


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    import torch

    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if isinstance(example_inputs, (list, tuple)):
        return tuple(
            _to_tensor(a, f"#{i}") if isinstance(a, torch.Tensor) else a
            for i, a in enumerate(example_inputs)
        )
    raise ExportError(
        "example_inputs must be a tensor, a tuple of tensors or a dict of tensors by "
        f"parameter name, got {type(example_inputs).__name__}"
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


def _widen_dims(examples: dict[str, Any], signature: Signature) -> tuple[dict[str, Any], list[str]]:
    """Repeat every dynamic dim whose example size is 1 to 2, in every input that uses
    it, so the exporter cannot specialise it to the constant 1 (pytorch issue 148629)."""
    widened = []
    out = dict(examples)
    for dim in signature.dims:
        uses = [
            (i.name, a) for i in signature.inputs for a, d in enumerate(i.shape) if d == dim.name
        ]
        if uses and all(out[n].shape[a] == 1 for n, a in uses) and dim.max >= 2:
            for n, a in uses:
                out[n] = out[n].repeat_interleave(2, dim=a)
            widened.append(dim.name)
    return out, widened


@dataclass
class _Call:
    """How the exporter calls the model: positional or keyword inputs, and their dims."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    dynamic_shapes: Any
    input_names: list[str] | None
    signature: Signature | None
    notes: list[str]


def _signature_call(model: Any, example_inputs: Any, signature: Signature) -> _Call:
    """Examples for a signature (generated when none are given), passed by keyword when
    the input names are ``forward``'s parameters, else by position."""
    import torch

    names = signature.names
    if example_inputs is None:
        examples = {n: torch.from_numpy(a) for n, a in signature.examples().items()}
    elif isinstance(example_inputs, Mapping):
        examples = {str(k): _to_tensor(v, str(k)) for k, v in example_inputs.items()}
    else:
        values = _as_tuple(example_inputs)
        if len(values) != len(names):
            raise ExportError(
                f"{len(values)} example input(s) for {len(names)} declared inputs {names}"
            )
        examples = {n: _to_tensor(v, n) for n, v in zip(names, values, strict=True)}
    examples, widened = _widen_dims(examples, signature)
    signature.check({n: t.numpy() for n, t in examples.items()})
    notes = [f"example size 1 of dim {d} repeated to 2 so it stays dynamic" for d in widened]
    examples = {n: examples[n] for n in names}  # signature order: the ONNX input order
    params, var_args = forward_parameters(model)
    shapes = torch_dynamic_shapes(signature)
    if all(n in params for n in names):
        missing = [p for p in _required_parameters(model) if p not in names]
        if missing:
            raise ExportError(
                f"{type(model).__name__}.forward({', '.join(params)}) needs {missing}, which "
                "no input declares: add --input NAME:DTYPE:DIMS for each (library: an "
                "InputSpec in the signature)"
            )
        return _Call((), examples, shapes, None, signature, notes)
    if var_args or len(params) >= len(names):
        return _Call(
            tuple(examples.values()), {}, tuple(shapes[n] for n in names), names, signature, notes
        )
    raise ExportError(
        f"the inputs {names} do not fit {type(model).__name__}.forward({', '.join(params)}): "
        "name each input after the forward parameter it feeds, or give as many inputs as "
        "forward takes, in order"
    )


def _required_parameters(model: Any) -> list[str]:
    """``forward``'s parameters that have no default."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds and p.default is p.empty]


def _plain_call(
    example_inputs: Any,
    dynamic_batch: bool,
    dynamic_shapes: Any,
    max_batch: int,
    input_names: Sequence[str] | None,
) -> _Call:
    """Positional examples with a dynamic batch on axis 0 of every tensor (the
    tutorial case), or the caller's own ``dynamic_shapes``."""
    import torch

    args = _as_tuple(example_inputs)
    notes = []
    if dynamic_batch and dynamic_shapes is None:
        args, widened = _widen_batch(args)
        if widened:
            notes.append("example batch of 1 repeated to 2 so the batch dim stays dynamic")
        batch = torch.export.Dim("batch", min=1, max=max_batch)
        dynamic_shapes = tuple(
            {0: batch} if isinstance(a, torch.Tensor) and a.ndim >= 1 else None for a in args
        )
    names = list(input_names) if input_names else None
    return _Call(args, {}, dynamic_shapes, names, None, notes)


@dataclass(frozen=True)
class KnownFailure:
    """One known exporter failure: the text that identifies it and what to tell the user.

    ``message`` is a ``str.format`` template over ``where`` (the user's line), ``at`` (the
    exporter step), ``cause`` (torch's own summary), the match's groups ``g`` and what
    ``fields`` derives from the match and the text."""

    kind: str
    pattern: str
    message: str
    fields: Callable[[re.Match[str], str], dict[str, str]] | None = None


def _allowed_range(m: re.Match[str], text: str) -> dict[str, str]:
    lo, hi = m.group(2), m.group(3)
    return {"allowed": lo if lo == hi else f"{lo}..{hi}"}


def _suggested_fixes(m: re.Match[str], text: str) -> dict[str, str]:
    fixes = re.findall(r"^\s*(\w+ = .+)$", text.split("Suggested fixes:", 1)[-1], re.M)
    has = "Suggested fixes:" in text and fixes
    return {"hint": f" torch suggests: {'; '.join(fixes[:4])}." if has else ""}


# the first that matches explains the failure; anything else gets the generic message
KNOWN_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        "unsupported_op",
        r"No ONNX function found for <OpOverload\(op='([\w.]+)', overload='(\w+)'\)>",
        "the operator {g[1]} has no ONNX translation{where}{at}. Try: rewrite that step with "
        "supported ops; or pass custom_translation_table={{torch.ops.{g[1]}.{g[2]}: "
        "your_onnxscript_fn}}; or a newer torch/onnxscript; or exporter='torchscript'.",
    ),
    KnownFailure(
        "data_dependent",
        r"data-dependent|GuardOnDataDependentSymNode|DataDependentOutputException",
        "data-dependent control flow{where}{at}: Python `if`/`while` on a tensor's value "
        "cannot be captured in a static graph. Try: torch.where(cond, a, b) to compute both "
        "branches, torch.cond(pred, true_fn, false_fn, (x,)) for real branching, or move the "
        "decision out of forward().",
    ),
    KnownFailure(
        "name_clash",
        r"target ([\w.]+) references nonexistent attribute (\w+) of (\w+)",
        "a submodule or attribute named `{g[3]}` clashes with a name torch.fx uses for "
        "itself{at} (torch: {cause_or_match}). Try: rename it in the model "
        "(self.{g[3]} -> self.{g[3]}_net, and in forward); old checkpoints still load "
        "with their keys renamed ({{k.replace('{g[3]}.', '{g[3]}_net.', 1): v}}); or use "
        "exporter='torchscript' (CLI: the TorchScript fallback).",
    ),
    KnownFailure(
        "input_type",
        r"Unsupported input type <class '(?:[^']+\.)?([^'.]+)'>",
        "an input of type {g[1]} cannot be exported{at}: "
        "the exporter takes tensors (and lists, tuples and dicts of them) as inputs. Try: "
        "pass the tensors the object holds as separate inputs, or register the type with "
        "torch.export.register_dataclass / torch.utils._pytree.register_pytree_node.",
    ),
    KnownFailure(
        "dynamic_dim",
        r"(\d+) not in VR\[(-?\d+), (-?\d+)\]",
        "the model cannot take a dim of size {g[1]}: its code only allows {allowed} "
        "there{at} (a fixed-length table, a hard-coded shape). Try: example inputs the "
        "model runs on (run it once on them in PyTorch), declare that dim fixed, or "
        "change the code to read sizes from x.shape.",
        _allowed_range,
    ),
    KnownFailure(
        "dynamic_dim",
        r"Constraints violated|ConstraintViolation|specializ",
        "a dynamic dimension was forced to a constant{where}{at}: the model's code fixes "
        "its size (e.g. x.view(1, -1), a hard-coded shape, a fixed-length table).{hint}"
        " Try: x.flatten(1) or x.reshape(x.shape[0], -1), narrow the dim's range (--dim "
        "NAME=MIN:MAX), make that dim fixed, or export with a static batch "
        "(dynamic_batch=False / --static).",
        _suggested_fixes,
    ),
)


def explain_failure(exc: BaseException, log: str) -> ExportError:
    """Turn an exporter exception into an ExportError naming the construct, the step
    that failed, the exporter's own cause, and a fix (``KNOWN_FAILURES``)."""
    text = clean(f"{exc}\n{log}")
    step_m = re.search(r"This is step (\d)/3", text)
    step = int(step_m.group(1)) if step_m else None
    at = f" [exporter step {step}/3: {EXPORT_STEPS[step]}]" if step in EXPORT_STEPS else ""
    cause = exception_summary(text)
    where = ""
    m = re.search(
        r'The following call raised this error:\s*\n\s*File "([^"]+)", line (\d+)[^\n]*\n\s*(.+)',
        text,
    )
    if m:
        where = f" at {Path(m.group(1)).name}:{m.group(2)} (`{m.group(3).strip()}`)"
    for known in KNOWN_FAILURES:
        match = re.search(known.pattern, text)
        if match:
            fields = known.fields(match, text) if known.fields else {}
            groups = {i: g for i, g in enumerate((match.group(0), *match.groups()))}
            message = known.message.format(
                g=groups, where=where, at=at, cause=cause,
                cause_or_match=cause or match.group(0), **fields,
            )  # fmt: skip
            return ExportError(message, details=text, step=step, cause=cause, kind=known.kind)
    first = cause or next(
        (ln for ln in clean(str(exc)).splitlines() if ln.strip()), type(exc).__name__
    )
    first = first if first.rstrip().endswith(".") else f"{first.rstrip()}."
    return ExportError(
        f"export failed{where}{at}: {type(exc).__name__}: {first} Try exporter='torchscript' to "
        "compare; ExportError.details (CLI: --report DIR) holds the exporter's full report.",
        details=text, step=step, cause=cause,
    )  # fmt: skip


def _run_exporter(
    torch: Any,
    model: Any,
    call: _Call,
    tmp: Path,
    exporter: Exporter,
    opset: int,
    want_dynamic: bool,
    output_names: list[str] | None,
    external_data: bool,
    report_dir: str | os.PathLike[str] | None,
) -> Any:
    """One call of ``torch.onnx.export`` with the chosen exporter; the dynamo program."""
    if exporter == "dynamo":
        extra: dict[str, Any] = {}
        if report_dir is not None:
            Path(report_dir).mkdir(parents=True, exist_ok=True)
            extra = {"report": True, "artifacts_dir": str(report_dir)}
        return torch.onnx.export(
            model,
            call.args,
            str(tmp),
            kwargs=call.kwargs or None,
            dynamo=True,
            dynamic_shapes=call.dynamic_shapes if want_dynamic else None,
            opset_version=opset,
            input_names=call.input_names,
            output_names=output_names,
            external_data=external_data,
            verbose=False,
            **extra,
        )
    args = call.args
    names = call.input_names
    if call.kwargs:  # TorchScript takes positions: forward's order
        params, _ = forward_parameters(model)
        ordered = [p for p in params if p in call.kwargs]
        if ordered != params[: len(ordered)]:
            raise ExportError(
                f"TorchScript passes inputs by position; forward({', '.join(params)}) has "
                f"other parameters before {ordered}"
            )
        args, names = tuple(call.kwargs[p] for p in ordered), ordered
    names = names or _default_names(args, "input")
    axes = None
    if want_dynamic:
        if call.signature is not None:
            axes = {
                i.name: {a: d for a, d in enumerate(i.shape) if isinstance(d, str)}
                for i in call.signature.inputs
            }
            output_names = output_names or _output_names(model(*args))
            if len(call.signature.batch_dims) == 1:  # outputs share the inputs' batch dim
                axes |= {n: {0: call.signature.batch_dims[0]} for n in output_names}
        else:
            output_names = output_names or ["output"]
            axes = {n: {0: "batch"} for n in [*names, *output_names]}
    torch.onnx.export(
        model,
        args,
        str(tmp),
        dynamo=False,
        opset_version=opset,
        input_names=names,
        output_names=output_names,
        dynamic_axes=axes,
        verbose=False,
    )
    return None


def _structured_names(model: Any, call: _Call) -> list[str] | None:
    """Output names from the model's own output structure (``ModelOutput`` / dict keys,
    namedtuple fields), found by running it once on the example; None for a plain tensor
    or tuple (the exporter names those). The dynamo exporter would otherwise call a
    transformer's ``logits`` after its last node (``linear_13``)."""
    import torch

    from onnx_deploy.convert.runners.pytorch import output_names_of

    try:
        with torch.no_grad():
            out = model(*call.args, **call.kwargs)
    except Exception as e:
        # the model itself, not the exporter: say so, and on what
        names = list(call.input_names or []) + [f"input_{i}" for i in range(len(call.args))]
        shown = [
            f"{n}{_shape_text(v)}"
            for n, v in [*zip(names, call.args, strict=False), *call.kwargs.items()]
            if hasattr(v, "shape")
        ]
        raise ExportError(
            f"PyTorch itself failed on the example inputs ({', '.join(shown)}): "
            f"{type(e).__name__}: {first_line(e)}. This is the model, not the exporter: pass "
            "real inputs (CLI: --example FILE.npz by input name; library: example_inputs) or "
            "declare the inputs and their ranges (--input, --dim)",
            kind="model_failed",
        ) from e
    try:
        return output_names_of(out)
    except Exception:
        return None  # an output type without names: the exporter names them


def _shape_text(value: Any) -> str:
    dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
    return f" {dtype}{list(value.shape)}"


def _output_names(out: Any) -> list[str]:
    """Names for a module's outputs: a dict's keys, else ``output`` / ``output_<i>``."""
    from onnx_deploy.convert.runners.pytorch import flatten_outputs

    if isinstance(out, Mapping) and all(hasattr(v, "detach") for v in out.values()):
        return [str(k) for k in out]
    return _default_names(tuple(flatten_outputs(out)), "output")


def _default_names(args: tuple[Any, ...], prefix: str) -> list[str]:
    return [prefix] if len(args) == 1 else [f"{prefix}_{i}" for i in range(len(args))]


def export_model(
    model: torch.nn.Module,
    example_inputs: Any,
    output: str | os.PathLike[str],
    *,
    signature: Signature | None = None,
    exporter: Exporter = "dynamo",
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    max_batch: int = DEFAULT_MAX_BATCH,
    dynamic_shapes: Any = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    external_data: bool | None = None,
    fallback: bool = False,
    report_dir: str | os.PathLike[str] | None = None,
    contract: ModelContract | None = None,
    force: bool = False,
) -> ExportResult:
    """Export ``model`` to ``output`` and check the result; see the module docstring.

    ``example_inputs``: a tensor, a tuple of tensors (positional), or a dict of tensors by
    ``forward`` parameter name (keyword arguments); None with a ``signature`` generates
    valid examples. ``signature`` declares the inputs' dtypes and dynamic dims (any
    axis, each with its range); without it, ``dynamic_batch`` makes axis 0 of every
    tensor dynamic (``dynamic_shapes`` overrides it with the exporter's own format).
    ``fallback=True`` retries with the TorchScript exporter when dynamo fails, and says
    so in ``notes`` and ``fallback_reason``. ``report_dir`` keeps torch's export report.
    ``external_data=None`` writes one file unless the weights are too large for
    protobuf's 2 GiB limit. ``contract`` (``core.contract``: what the model's source knows
    and the graph cannot say) is written into the file's metadata.
    """
    torch = _check_arguments(model, exporter, opset)
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
    call, want_dynamic = _make_call(
        model, example_inputs, signature, dynamic_batch, dynamic_shapes, max_batch, input_names
    )
    notes += call.notes
    external_data = _external_data(model, external_data, notes)
    start = time.perf_counter()
    try:
        model.eval()
        out_names = list(output_names) if output_names else _structured_names(model, call)
        with atomic_output(output, force=force) as tmp, torch.no_grad():
            run = functools.partial(
                _run_exporter, torch, model, call, tmp, opset=opset, want_dynamic=want_dynamic,
                output_names=out_names, external_data=external_data, report_dir=report_dir,
            )  # fmt: skip
            caught: list[warnings.WarningMessage] = []
            program, used, fallback_reason = _export_with_fallback(
                run, exporter, fallback, caught, notes, getattr(model, "TORCHSCRIPT_SAFE", "")
            )
            _check_exported(tmp, want_dynamic, call.signature)
            stamp_file(tmp, contract)
            wrote_external = any(p != tmp for p in tmp.parent.iterdir())
    finally:
        model.train(was_training)
    warn_text = tuple(
        dict.fromkeys(
            f"{w.category.__name__}: {w.message}"
            for w in caught
            if not SHARED_DIM_NOTICE.search(str(w.message))
        )
    )
    return _describe_export(
        output, used, time.perf_counter() - start, wrote_external, notes, warn_text,
        call.signature, fallback_reason, program,
    )  # fmt: skip


def _check_arguments(model: Any, exporter: str, opset: int) -> Any:
    """Step 1: torch and onnxscript are there, and the arguments make sense; torch."""
    from onnx_deploy.core.extras import require

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
    return torch


def _make_call(
    model: Any,
    example_inputs: Any,
    signature: Signature | None,
    dynamic_batch: bool,
    dynamic_shapes: Any,
    max_batch: int,
    input_names: Sequence[str] | None,
) -> tuple[_Call, bool]:
    """Step 2: the call to trace (arguments, dynamic shapes, names) from a signature, a
    dict of examples or plain tensors, and whether any dim should come out dynamic."""
    if signature is None and isinstance(example_inputs, Mapping):
        from onnx_deploy.core.feeds import to_numpy

        arrays = {str(k): to_numpy(v, str(k)) for k, v in example_inputs.items()}
        signature = Signature.from_examples(arrays, dynamic_batch=dynamic_batch)
    if signature is not None:
        call = _signature_call(model, example_inputs, signature)
        return call, any(i.symbols for i in signature.inputs)
    call = _plain_call(example_inputs, dynamic_batch, dynamic_shapes, max_batch, input_names)
    return call, dynamic_batch or dynamic_shapes is not None


def _external_data(model: Any, external_data: bool | None, notes: list[str]) -> bool:
    """Step 3: one file, or weights in a .data file beside it (``None``: over 2 GiB)."""
    if external_data is not None:
        return external_data
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if param_bytes > PROTOBUF_LIMIT:
        notes.append("weights over 2 GiB: written to an external .data file")
        return True
    return False


def _export_with_fallback(
    run: Callable[..., Any],
    exporter: Exporter,
    fallback: bool,
    caught: list[warnings.WarningMessage],
    notes: list[str],
    torchscript_safe: str = "",
) -> tuple[Any, str, str]:
    """Step 4: run the exporter; when dynamo fails in a way TorchScript may not, and
    ``fallback``, try TorchScript and say so. (program, exporter used, why it fell back).
    ``torchscript_safe``: a model's own word (its ``TORCHSCRIPT_SAFE`` attribute) that its
    data-dependent steps are written for tracing, so the fallback is taken for those too."""
    try:
        return run_captured(run, exporter, caught), exporter, ""
    except ExportError as first_error:
        kinds = FALLBACK_KINDS | ({"data_dependent"} if torchscript_safe else set())
        if not (fallback and exporter == "dynamo" and first_error.kind in kinds):
            raise
        try:
            program = run_captured(run, "torchscript", caught)
        except ExportError as second:
            raise ExportError(
                f"{first_error} The TorchScript fallback failed too: {second}",
                details=first_error.details,
                step=first_error.step,
                cause=first_error.cause,
                kind=first_error.kind,
            ) from second
        step = f" at step {first_error.step}/3" if first_error.step else ""
        why = (
            f" {torchscript_safe}."
            if torchscript_safe and first_error.kind == "data_dependent"
            else ""
        )
        cause = (first_error.cause or "see fallback_reason").strip().splitlines()[0][:200]
        notes.append(
            f"the dynamo exporter failed{step} ({cause}); "
            f"exported with the TorchScript fallback (deprecated upstream):{why} validate it"
        )
        return program, "torchscript", str(first_error)


def _describe_export(
    output: str | os.PathLike[str],
    used: str,
    seconds: float,
    wrote_external: bool,
    notes: list[str],
    warn_text: tuple[str, ...],
    signature: Signature | None,
    fallback_reason: str,
    program: Any,
) -> ExportResult:
    """Step 5: what was written, read back from the file."""
    import onnx

    proto = onnx.load(str(output), load_external_data=False)
    inputs, outputs = graph_io(proto)
    return ExportResult(
        path=str(output),
        exporter=used,
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
        dims=signature.dims if signature is not None else (),
        fallback_reason=fallback_reason,
        program=program,
    )


def run_captured(
    run: Callable[..., Any], exporter: Exporter, caught: list[warnings.WarningMessage]
) -> Any:
    """``run(exporter=...)`` with its output captured; exporter failures as ExportError."""
    log = io.StringIO()
    with quiet_exporter(log) as warned:
        try:
            return run(exporter=exporter)
        except ExportError:
            raise
        except Exception as e:
            raise explain_failure(e, log.getvalue()) from e
        finally:
            caught.extend(warned)


def _check_exported(path: Path, want_dynamic: bool, signature: Signature | None) -> None:
    """onnx.checker (full), and every dim asked to be dynamic came out symbolic."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ExportError(
            f"the exported graph fails onnx.checker ({type(e).__name__}: {first_line(e)}). "
            "Try another opset or exporter='torchscript', and report it upstream."
        ) from e
    if not want_dynamic:
        return
    inputs, _ = graph_io(onnx.load(str(path), load_external_data=False))
    if signature is None:
        static = [str(t) for t in inputs if t.shape and isinstance(t.shape[0], int)]
        if static:
            raise ExportError(
                f"asked for a dynamic batch but the exporter fixed it: {static}. The model's "
                "code likely pins the batch size (x.view(1, -1), a hard-coded shape); use "
                "x.flatten(1), or export with dynamic_batch=False."
            )
        return
    by_name = {t.name: t for t in inputs}
    fixed = []
    for pos, spec in enumerate(signature.inputs):
        got = by_name.get(spec.name) or (inputs[pos] if pos < len(inputs) else None)
        if got is None:
            fixed.append(
                f"input {spec.name} is not in the exported graph (inputs: {list(by_name)})"
            )
            continue
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str) and axis < len(got.shape) and isinstance(got.shape[axis], int):
                fixed.append(f"{spec.name} axis {axis} ({dim}) = {got.shape[axis]}")
    if fixed:
        raise ExportError(
            f"asked for dynamic dims but the exporter fixed them: {'; '.join(fixed)}. The "
            "model's code likely fixes those sizes (x.view(1, -1), a hard-coded shape, a "
            "fixed-length table); use x.flatten(1) or sizes read from x.shape, or declare "
            "those dims fixed.",
            kind="dynamic_dim",
        )
