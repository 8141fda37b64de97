"""The runtimes a model file can run on: one registry, one file per runtime.

A runtime is one module in this folder with one ``Runtime`` subclass that says whether it
is available here (and how to install it when not), which files it accepts (its file
formats; ONNX Runtime's ``com.microsoft`` contrib ops run on ONNX Runtime alone), the
modes it runs a file in (OpenVINO computes an FP32 file in bf16 when told to, judged then
by the bf16 tolerance) and its runner (``infer.runners``: the one way to execute a model).
``bench --runtimes``, ``compare`` and the report card take runtimes by name from here; a
new runtime is one new file (``core.registry``).

A name is ``RUNTIME`` (its default mode) or ``RUNTIME-MODE``: ``onnxruntime``,
``openvino``, ``openvino-bf16``, ``tensorrt``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.extras import available
from onnx_deploy.core.extras import install_hint
from onnx_deploy.core.registry import discover

if TYPE_CHECKING:
    from onnx_deploy.infer.runners.base import Runner
    from onnx_deploy.infer.sessions import SessionSettings

CONTRIB_DOMAINS = ("com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental")


@dataclass(frozen=True)
class Mode:
    """One way a runtime runs a file: ``name`` ('' for the default), ``title`` for tables,
    the runtime's own ``setting`` (OpenVINO's inference precision), the tolerance preset
    its outputs are judged by (``precision``; '' keeps the file's own), and the CPU
    capabilities it needs (``cpu``: ``BF16``, as OpenVINO's CPU plugin names them)."""

    name: str = ""
    title: str = ""
    setting: str = ""
    precision: str = ""
    cpu: tuple[str, ...] = ()


DEFAULT_MODE = Mode()


@dataclass(frozen=True)
class Request:
    """What a runner is made for: the file, the device, the runtime's mode, the session
    settings (threads, spinning: where the runtime has them) and the runner's name."""

    path: str
    device: str = "cpu"
    mode: Mode = DEFAULT_MODE
    settings: SessionSettings | None = None
    name: str | None = None


class Runtime:
    """One runtime. Subclasses set the class attributes and implement ``make_runner``;
    they may override ``available`` and ``accepts``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    package: ClassVar[str] = ""  # the module that must import (``core.extras`` names its extra)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    formats: ClassVar[tuple[str, ...]] = (".onnx",)
    contrib_ops: ClassVar[bool] = False  # runs ONNX Runtime's com.microsoft ops
    modes: ClassVar[tuple[Mode, ...]] = (DEFAULT_MODE,)
    order: ClassVar[int] = 50  # where it is listed (ONNX Runtime first)

    def mode(self, name: str) -> Mode:
        for m in self.modes:
            if m.name == name:
                return m
        raise ValueError(f"{self.name} has no mode {name!r}; its modes: {self.mode_names()}")

    def mode_names(self) -> list[str]:
        return [self.full_name(m) for m in self.modes]

    def full_name(self, mode: Mode = DEFAULT_MODE) -> str:
        return f"{self.name}-{mode.name}" if mode.name else self.name

    def display(self, mode: Mode = DEFAULT_MODE) -> str:
        return f"{self.title} {mode.title}".strip()

    def install_hint(self) -> str:
        """How to install the runtime (``core.extras`` names the extra)."""
        return install_hint(self.package)

    def available(self, device: str = "cpu") -> str:
        """'' when the runtime runs here on ``device``, else why not and how to get it."""
        if device not in self.devices:
            return f"{self.title} runs on {' or '.join(self.devices)}, not {device}"
        if self.package and not available(self.package):
            return f"{self.title} is not installed: {self.install_hint()}"
        return ""

    def accepts(self, path: str | os.PathLike[str], mode: Mode = DEFAULT_MODE) -> str:
        """'' when this runtime can run the file at ``path`` in ``mode``, else why not."""
        suffix = Path(path).suffix
        if suffix not in self.formats:
            return f"{self.title} runs {'/'.join(self.formats)} files, not {suffix}"
        if not self.contrib_ops and suffix == ".onnx":
            contrib = sorted(op for dom, op in graph_ops(str(path)) if dom in CONTRIB_DOMAINS)
            if contrib:
                return (
                    f"{self.title} cannot run ONNX Runtime's contrib ops "
                    f"({', '.join(contrib[:4])}{', ...' if len(contrib) > 4 else ''})"
                )
        return ""

    def make_runner(self, request: Request) -> Runner:
        raise NotImplementedError

    def describe_run(self, runner: Runner) -> str:
        """What the runtime did with the file, for a report ('' when there is nothing to
        say): OpenVINO names its precision hint and what the compiled graph runs in."""
        return ""

    def runner(
        self,
        path: str | os.PathLike[str],
        device: str = "cpu",
        *,
        mode: Mode | str = DEFAULT_MODE,
        settings: SessionSettings | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> Runner:
        """A runner for ``path`` in ``mode``; ``settings`` (or just ``threads``) are the
        session settings, where the runtime has them."""
        from onnx_deploy.infer.sessions import SessionSettings

        if isinstance(mode, str):
            mode = self.mode(mode)
        if settings is None and threads is not None:
            settings = SessionSettings(threads=threads)
        return self.make_runner(Request(str(path), device, mode, settings, name))


def graph_ops(path: str | os.PathLike[str]) -> frozenset[tuple[str, str]]:
    """The (domain, op type) pairs of an ONNX file's nodes ('' for the default domain),
    read once per version of the file."""
    stat = os.stat(path)
    return _graph_ops(str(path), stat.st_mtime_ns, stat.st_size)


@cache
def _graph_ops(path: str, mtime_ns: int, size: int) -> frozenset[tuple[str, str]]:
    from onnx_deploy.infer.modelinfo import load_onnx

    model = load_onnx(path, load_external_data=False)
    return frozenset((n.domain or "", n.op_type) for n in model.graph.node)


@cache
def runtimes() -> dict[str, Runtime]:
    """Every runtime, by name, in listing order."""
    found = [cls() for cls in discover(__name__, Runtime).values()]
    return {r.name: r for r in sorted(found, key=lambda r: (r.order, r.name))}


def names() -> list[str]:
    """Every runtime's name with each of its modes (``onnxruntime``, ``openvino-bf16``)."""
    return [n for r in runtimes().values() for n in r.mode_names()]


def resolve(name: str) -> tuple[Runtime, Mode]:
    """``"openvino-bf16"`` -> (the OpenVINO runtime, its bf16 mode)."""
    for runtime in runtimes().values():
        for mode in runtime.modes:
            if runtime.full_name(mode) == name:
                return runtime, mode
    raise ValueError(f"unknown runtime {name!r}; use some of {', '.join(names())}")


def parse_runtimes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"onnxruntime,openvino"`` -> ``("onnxruntime", "openvino")``, checked."""
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = [t.strip() for t in items if t.strip()]
    unknown = [n for n in wanted if n not in names()]
    if unknown or not wanted:
        raise ValueError(f"unknown runtime {unknown or text!r}; use some of {', '.join(names())}")
    return tuple(dict.fromkeys(wanted))


def check_runtimes(wanted: Sequence[str], device: str = "cpu") -> None:
    """Raise ``MissingExtraError`` when a runtime asked for is not installed."""
    for name in wanted:
        runtime, _ = resolve(name)
        if runtime.package and not available(runtime.package):
            raise MissingExtraError(
                f"--runtimes {','.join(wanted)} needs {runtime.title}, which is not installed: "
                f"{runtime.install_hint()}; or leave it out (--runtimes onnxruntime)"
            )


def usable_runtimes(
    wanted: Sequence[str], path: str | os.PathLike[str]
) -> tuple[list[str], list[str]]:
    """The runtimes of ``wanted`` that can run the file at ``path`` here, and why each
    other one cannot (``Runtime.accepts``: OpenVINO and contrib ops, bf16 on a CPU
    without it). A comparison goes on without those and says so."""
    kept, notes = [], []
    for name in wanted:
        runtime, mode = resolve(name)
        why = runtime.accepts(path, mode)
        if why:
            notes.append(f"{name} left out for {Path(path).name}: {why}")
        else:
            kept.append(name)
    return kept, notes


def runtime_runner(
    name: str,
    model: str | os.PathLike[str],
    device: str = "cpu",
    *,
    threads: int | None = None,
    settings: SessionSettings | None = None,
    name_as: str | None = None,
) -> Any:
    """A runner for ``model`` on the runtime ``name`` (``names()``)."""
    runtime, mode = resolve(name)
    return runtime.runner(
        model, device, mode=mode, settings=settings, threads=threads, name=name_as
    )
