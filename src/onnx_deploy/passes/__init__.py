"""Transformations of a model file: one registry, one file per pass.

A pass turns one file into another: onnxslim, FP16, static and dynamic INT8 with the types
of this CPU or of any x86 CPU, ONNX Runtime's transformer fusions, TensorRT's QDQ graph and
its engine. Each is one module in this folder with one ``Pass`` subclass that declares

- what it needs (``Needs``: calibration samples, labels, a GPU, a package) and what it
  applies to (``applies``: a CNN has nothing for dynamic INT8; a graph with no transformer
  block has nothing to fuse);
- where it sits in a chain (``follows``: the passes whose output it takes, '' for the FP32
  model) and the suffix of its file;
- its options (``options``: a frozen dataclass whose fields and defaults are the options);
- the command that runs it alone (``command`` and ``method``: ``slim``, ``fuse``,
  ``quantize --method static``).

``chains()`` is the one table of chains (slim -> INT8 dynamic, slim -> fuse -> INT8
dynamic, ...): every path the ``follows`` declarations allow. The report card builds the
chains, the ``slim``, ``fuse`` and ``quantize`` commands run a pass alone, and a new pass is
one new file (``core.registry``). Passes never validate inside a search: the card's
evaluator does, through the one comparator (``infer.compare``); run alone by a command
(``Context.validate``), the pass's function checks its result with the same comparator.
Olive's ``olive/passes`` (one class per pass with a typed config, a registry) is the anchor.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from functools import cache
from pathlib import Path
from typing import Any
from typing import ClassVar

from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.registry import discover

ROOT = ""  # the FP32 model every chain starts from


def _quiet(_: str) -> None:
    pass


class NothingToDo(OnnxDeployError):
    """A pass ran and found nothing to do on this graph (a fusion pass that fused nothing):
    in a search its candidate is skipped, with this reason."""


@dataclass(frozen=True)
class Needs:
    """What a pass needs beyond its input file."""

    calibration: bool = False  # real samples to calibrate activation ranges
    labels: bool = False
    gpu: bool = False  # an NVIDIA GPU (--target cuda)
    packages: tuple[str, ...] = ()  # modules that must import (``core.extras`` names the extra)

    def describe(self) -> str:
        parts = [
            *(["calibration data"] if self.calibration else []),
            *(["labels"] if self.labels else []),
            *(["an NVIDIA GPU"] if self.gpu else []),
            *self.packages,
        ]
        return ", ".join(parts) or "nothing else"


@dataclass(frozen=True)
class NoOptions:
    """A pass without options."""


@dataclass(frozen=True)
class Artifact:
    """A file a chain of passes made (or the FP32 file it started from): its ``path``, the
    tolerance preset it is judged by, the passes applied (``chain``), what they did
    (``details``) and the runtimes that can run it (empty: any that accepts the file).
    ``result`` is the pass's own result (a ``QuantizeResult``, ``SlimResult``, ...)."""

    path: str
    precision: str = "fp32"
    chain: tuple[str, ...] = ()
    details: str = ""
    runtimes: tuple[str, ...] = ()
    result: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Context:
    """What a pass may use besides its input. ``validate``: check the result against its
    input (a command running one pass); a search leaves it off and validates candidates
    itself. ``hooks``: stand-ins for tests (a recording TensorRT module, a GPU identity)."""

    calibration: Any = None
    calibration_size: int | None = 200
    target: str = "cpu"
    force: bool = False  # replace an existing output file
    validate: bool = False
    validation_inputs: Any = None
    labels: Any = None
    batch_sizes: tuple[int, ...] = (1, 8)
    log: Callable[[str], None] = _quiet
    hooks: dict[str, Any] = field(default_factory=dict)

    def checks(self) -> dict[str, Any]:
        """The keyword arguments a convert function takes for checking and writing its
        output: ``validate``, ``validation_inputs``, ``labels``, ``force``."""
        return {
            "validate": self.validate, "validation_inputs": self.validation_inputs,
            "labels": self.labels, "force": self.force,
        }  # fmt: skip


@dataclass(frozen=True)
class Facts:
    """What ``applies`` looks at: the input file's op counts and domains, its contract."""

    path: str
    ops: dict[str, int]
    domains: frozenset[str]
    quantized: bool
    contract: Any = None

    @property
    def matmuls(self) -> int:
        return self.ops.get("MatMul", 0) + self.ops.get("Gemm", 0)

    @property
    def convolutions(self) -> int:
        return self.ops.get("Conv", 0) + self.ops.get("ConvTranspose", 0)

    @property
    def matmul_heavy(self) -> bool:
        """More MatMul/Gemm nodes than convolutions: transformers, MLPs (dynamic INT8's
        kind of model)."""
        return self.matmuls > self.convolutions

    def balance(self) -> str:
        return f"{self.matmuls} MatMul/Gemm vs {self.convolutions} Conv nodes"

    def not_matmul_heavy(self, what: str) -> str:
        """'' for a MatMul-heavy graph, else why ``what`` does not suit it."""
        return "" if self.matmul_heavy else f"not MatMul-heavy ({self.balance()}): {what}"


def facts(path: str | os.PathLike[str]) -> Facts:
    """``Facts`` of an ONNX file (read once per version of the file)."""
    stat = os.stat(path)
    return _facts(str(path), stat.st_mtime_ns, stat.st_size)


@cache
def _facts(path: str, mtime_ns: int, size: int) -> Facts:
    from onnx_deploy.convert.quantize import QUANTIZED_OPS
    from onnx_deploy.core.contract import read_contract
    from onnx_deploy.infer.modelinfo import load_onnx
    from onnx_deploy.infer.modelinfo import op_histogram

    model = load_onnx(path, load_external_data=False)
    ops = op_histogram(model)
    return Facts(
        path, ops, frozenset(n.domain or "" for n in model.graph.node),
        any(op in QUANTIZED_OPS for op in ops), read_contract(model),
    )  # fmt: skip


class Pass:
    """One transformation (the module docstring). Subclasses set the class attributes and
    implement ``run``; they may override ``applies`` and ``title_in``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    tag: ClassVar[str] = ""  # how it shows in a candidate's name when a later pass follows
    suffix: ClassVar[str] = ""  # the file is model<suffix of each pass><extension>
    extension: ClassVar[str] = ".onnx"
    precision: ClassVar[str] = ""  # the tolerance preset of its output ('' keeps the input's)
    follows: ClassVar[tuple[str, ...]] = (ROOT,)
    needs: ClassVar[Needs] = Needs()
    options: ClassVar[type] = NoOptions
    runtimes: ClassVar[tuple[str, ...]] = ()  # the runtimes its output needs ('' any)
    command: ClassVar[str] = ""  # the CLI command that runs it alone
    method: ClassVar[str] = ""  # that command's --method value
    optional: ClassVar[bool] = False  # when it cannot run, chains go on from its input
    in_search: ClassVar[bool] = True  # a card tries it (False: only its command runs it)
    order: ClassVar[int] = 50  # where its candidates are listed
    float_input: ClassVar[bool] = False  # it needs a float graph (not a quantized one)

    def applies(self, facts: Facts, ctx: Context) -> str:
        """'' when the pass has something to do on this input, else why not (a subclass
        adds its own reasons to ``super().applies``)."""
        return "the graph is quantized already" if self.float_input and facts.quantized else ""

    def missing(self, ctx: Context) -> str:
        """'' when what the pass needs is here, else what is missing and how to get it."""
        from onnx_deploy.core.extras import available
        from onnx_deploy.core.extras import install_hint

        if self.needs.gpu and ctx.target != "cuda":
            return f"{self.title} needs an NVIDIA GPU (--target cuda)"
        if self.needs.calibration and ctx.calibration is None:
            return (
                "no calibration data: it needs 100-500 real samples (CLI: --calibration, a "
                ".npy/.npz/.pt file or an image folder)"
            )
        for package in self.needs.packages:
            if package not in ctx.hooks and not available(package):
                return f"needs {package}, which is not installed: {install_hint(package)}"
        return ""

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        raise NotImplementedError

    def title_in(self, chain: tuple[Pass, ...]) -> str:
        """The candidate's name when this pass ends ``chain``: its title, then the tags of
        the passes before it (``INT8 dynamic fused``)."""
        tags = [p.tag for p in chain[:-1] if p.tag]
        return " ".join([self.title, *tags])

    def made(
        self, source: Artifact, path: str | os.PathLike[str], details: str, result: Any
    ) -> Artifact:
        """The ``Artifact`` this pass made from ``source``."""
        return Artifact(
            str(path), self.precision or source.precision, (*source.chain, self.name), details,
            self.runtimes or source.runtimes, result,
        )  # fmt: skip

    def default_options(self) -> Any:
        return self.options()

    def option_fields(self) -> list[dataclasses.Field[Any]]:
        return list(dataclasses.fields(self.options))


@cache
def passes() -> dict[str, Pass]:
    """Every pass, by name (one module each in this folder), in listing order."""
    found = sorted(discover(__name__, Pass).values(), key=lambda cls: (cls.order, cls.name))
    return {cls.name: cls() for cls in found}


def get_pass(name: str) -> Pass:
    try:
        return passes()[name]
    except KeyError:
        raise ValueError(f"unknown pass {name!r}; passes: {', '.join(passes())}") from None


def by_command(command: str) -> dict[str, Pass]:
    """The passes a command runs, by their ``method`` (``quantize``: static, dynamic, ...)."""
    return {p.method or p.name: p for p in passes().values() if p.command == command}


def chains() -> list[tuple[str, ...]]:
    """The one table of chains: every sequence of passes that the ``follows`` declarations
    allow, from the FP32 model, shortest first (each chain after the chain it extends)."""
    table: list[tuple[str, ...]] = []

    def grow(prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        last = prefix[-1] if prefix else ROOT
        for p in passes().values():
            if last in p.follows and p.name not in prefix:
                yield (*prefix, p.name)

    frontier: list[tuple[str, ...]] = [()]
    while frontier:
        nxt = [c for prefix in frontier for c in grow(prefix)]
        table += nxt
        frontier = nxt
    return table


def chain_title(chain: tuple[str, ...]) -> str:
    """A candidate's name: ``FP32`` for the model as given, else its last pass's title with
    the tags of the passes before it."""
    if not chain:
        return "FP32"
    steps = tuple(get_pass(n) for n in chain)
    return steps[-1].title_in(steps)


def chain_file(folder: str | os.PathLike[str], chain: tuple[str, ...], stem: str = "model") -> Path:
    """Where a chain's file goes: ``folder/model.slim.dynint8.onnx``."""
    steps = [get_pass(n) for n in chain]
    ext = steps[-1].extension if steps else ".onnx"
    return Path(folder) / (stem + "".join(p.suffix for p in steps) + ext)


def run_pass(
    name: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    ctx: Context | None = None,
    options: Any = None,
) -> Artifact:
    """Run one pass alone (what the ``slim``, ``fuse`` and ``quantize`` commands do): its
    options default to the pass's own, and ``ctx.validate`` checks the result against the
    input, the file written only when it passes (the pass's function does both)."""
    ctx = ctx or Context(validate=True)
    step = get_pass(name)
    why = step.missing(ctx)
    if why:
        raise OnnxDeployError(f"{step.title}: {why}")
    source = Artifact(str(input_path))
    return step.run(source, Path(output_path), ctx, options or step.default_options())


def describe_registry() -> str:
    """Every pass (what it needs, what it runs on, its options with their defaults) and the
    table of chains, as ``onnx-deploy optimize --list-passes`` prints it."""
    lines = ["passes:"]
    for p in passes().values():
        defaults = dataclasses.asdict(p.default_options())
        opts = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "none"
        alone = f"; alone: onnx-deploy {p.command}" + (f" --method {p.method}" if p.method else "")
        lines.append(
            f"  {p.name:<18} {p.title}: needs {p.needs.describe()}; after "
            f"{', '.join(f or 'the FP32 model' for f in p.follows)}"
            f"{alone if p.command else ''}; options: {opts}"
        )
    lines.append("chains (the candidates a card builds, each after the chain it extends):")
    lines += [f"  {chain_title(c):<24} {' -> '.join(c)}" for c in chains()]
    return "\n".join(lines)
