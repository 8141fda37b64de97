"""Static INT8 (QDQ) with calibration data (``convert.quantize.quantize_static_model``).

Two passes: ``int8-static`` with the types this CPU's row calls for (``core.cpu``: u8/s8 on
x86 with VNNI, reduce_range without it, s8/s8 on ARM), and ``int8-static-x86`` with the
types that hold on every x86 CPU (the ``x86-no-vnni`` row: 7-bit weights, so the 16-bit
pair sums of CPUs without VNNI cannot saturate). On a CPU without VNNI the two are the
same file and only the first is built. Activations are calibrated on real samples.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import Needs
from onnx_deploy.passes import Pass

PORTABLE_ISA = "x86-no-vnni"


@dataclass(frozen=True)
class Int8StaticOptions:
    """The types (``None``: from ``target_isa``'s row, default this CPU), per-channel
    weights, QDQ or QOperator format, the calibration method, nodes kept in float, the op
    types to quantize (``None``: all), and onnxruntime's pre-processing."""

    activation_type: str | None = None
    weight_type: str | None = None
    reduce_range: bool | None = None
    target_isa: str | None = None
    per_channel: bool = True
    quant_format: str = "qdq"
    calibration_method: str = "minmax"
    nodes_to_exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] | None = None
    preprocess: bool = True


def same_types_here(target_isa: str, dynamic: bool) -> str:
    """'' when ``target_isa``'s types differ from this CPU's, else why the portable pass has
    nothing to add."""
    from onnx_deploy.convert.quantize import choose_types

    here = choose_types(dynamic=dynamic)
    there = choose_types(target_isa=target_isa, dynamic=dynamic)
    if here.short == there.short:
        return f"this CPU's types are the {target_isa} ones already ({here.short})"
    return ""


class Int8Static(Pass):
    name = "int8-static"
    title = "INT8 static"
    tag = "INT8"
    suffix = ".int8"
    precision = "int8"
    follows = ("slim", "fuse")
    needs = Needs(calibration=True)
    options = Int8StaticOptions
    command = "quantize"
    method = "static"
    order = 20

    float_input = True

    def run(self, source: Artifact, output: Path, ctx: Context, options: Any) -> Artifact:
        from onnx_deploy.convert.quantize import quantize_static_model

        result = quantize_static_model(
            source.path, output, ctx.calibration, calibration_size=ctx.calibration_size,
            **ctx.checks(), **asdict(options),
        )  # fmt: skip
        kind = "QDQ" if options.quant_format == "qdq" else "QOperator"
        per = "per-channel" if options.per_channel else "per-tensor"
        details = f"{kind} {result.types.short} {per} for {result.types.isa}"
        return self.made(source, output, details, result)


class X86Types:
    """Mixed into an INT8 pass: the types that hold on every x86 CPU (``PORTABLE_ISA``'s
    row), where this CPU's differ; the pass runs in a search only (its command is the
    original pass with ``--target-isa x86-no-vnni``)."""

    command = ""
    method = ""
    dynamic = False

    def default_options(self) -> Any:
        return replace(super().default_options(), target_isa=PORTABLE_ISA)  # type: ignore[misc]

    def applies(self, facts: Any, ctx: Context) -> str:
        own = super().applies(facts, ctx)  # type: ignore[misc]
        return own or same_types_here(PORTABLE_ISA, dynamic=self.dynamic)


class Int8StaticX86(X86Types, Int8Static):
    name = "int8-static-x86"
    order = 21
    title = "INT8 static x86"
    suffix = ".int8x86"
    follows = ("slim",)
