"""The ORT format for mobile and edge builds of onnxruntime, checked against the ONNX file.

onnxruntime's minimal builds (Android, iOS, embedded Linux) load only ``.ort`` files, a
FlatBuffers serialisation of an already optimised graph, and compile in only the
operators a model needs. The converter ships in onnxruntime's Python wheel::

    python -m onnxruntime.tools.convert_onnx_models_to_ort model.onnx --output_dir out \\
        --optimization_style Runtime

It writes ``model.with_runtime_opt.ort`` and the operator config that a minimal build takes
(``build.sh --minimal_build --include_ops_by_config FILE``). ``Runtime`` style saves only
basic optimisations and leaves the hardware-specific ones to the device; ``Fixed`` bakes in
this machine's (an x86 CPU's layout transforms are no use on ARM). ``to_ort_format`` runs
the converter, loads the ``.ort`` file in Python onnxruntime, compares its outputs with the
``.onnx`` file's on the same inputs, and times both loads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnx_deploy.core.errors import EdgeError
from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
from onnx_deploy.core.files import check_output_path
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size
from onnx_deploy.core.results import Result
from onnx_deploy.core.timing import latency_stats
from onnx_deploy.infer.compare import compare_results
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
from onnx_deploy.infer.sessions import create_session

STYLES = ("Runtime", "Fixed")


@dataclass(frozen=True)
class OrtFormatResult(Result):
    COMPUTED = ("ok",)

    onnx_path: str
    ort_path: str
    config_path: str
    style: str
    onnx_size: int
    ort_size: int
    onnx_load_ms: float
    ort_load_ms: float
    max_abs: float
    same_top1: bool | None
    operators: tuple[str, ...]
    agrees: bool  # every output within the same-graph tolerance of the .onnx file's

    @property
    def ok(self) -> bool:
        return self.agrees and self.same_top1 is not False

    def summary(self) -> str:
        top1 = "" if self.same_top1 is None else f", same top-1 {self.same_top1}"
        return (
            f"ort       {self.ort_path}  ({self.style} style; {human_size(self.ort_size)} vs "
            f"{human_size(self.onnx_size)} .onnx; load {self.ort_load_ms:.1f} vs "
            f"{self.onnx_load_ms:.1f} ms)\n"
            f"  check   vs the .onnx file: max abs {self.max_abs:.1e}{top1} "
            f"{'PASS' if self.ok else 'FAIL'}\n"
            f"  ops     {len(self.operators)} operators in {self.config_path} (for "
            "build.sh --minimal_build --include_ops_by_config)"
        )


def _load_ms(path: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        create_session(path, "cpu")
        times.append((time.perf_counter() - t0) * 1000)
    return latency_stats(times).median_ms


def to_ort_format(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    style: str = "Runtime",
    inputs: dict[str, np.ndarray] | None = None,
    load_repeats: int = 5,
    force: bool = False,
) -> OrtFormatResult:
    """Convert ``model`` to the ORT format in ``out_dir`` and check it (see the module)."""
    from onnx_deploy.core.signature import Signature
    from onnx_deploy.infer.modelinfo import load_onnx

    if style not in STYLES:
        raise EdgeError(f"style must be one of {STYLES}, got {style!r}")
    src = Path(model)
    load_onnx(src)  # a clear error for a missing or broken file
    out = Path(out_dir)
    suffix = ".with_runtime_opt" if style == "Runtime" else ""
    stem = src.name.removesuffix(".onnx")
    ort_name = f"{stem}{suffix}.ort"
    check_output_path(out / ort_name, force=force)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / src.name
        shutil.copyfile(src, work)
        data = src.with_name(src.name + EXTERNAL_DATA_SUFFIX)
        if data.exists():
            shutil.copyfile(data, work.with_name(data.name))
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(work),
               "--output_dir", str(Path(tmp) / "out"), "--optimization_style", style]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        produced = Path(tmp) / "out" / ort_name
        if proc.returncode != 0 or not produced.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise EdgeError(f"the ORT-format converter failed: {tail[0][:300]}")
        configs = list((Path(tmp) / "out").glob("*.config"))
        out.mkdir(parents=True, exist_ok=True)
        os.replace(produced, out / ort_name)
        config = out / configs[0].name
        shutil.copyfile(configs[0], config)
    ort_path = out / ort_name
    ops = operators(config.read_text())
    with (
        OnnxRuntimeRunner(src, "cpu", name=str(src)) as onnx_runner,
        OnnxRuntimeRunner(ort_path, "cpu", name=str(ort_path)) as ort_runner,
    ):
        if inputs is None:
            sig = Signature.from_specs(onnx_runner.inputs)
            inputs = sig.examples({d: 4 for d in sig.batch_dims})
        report = compare_results(onnx_runner.infer(inputs), ort_runner.infer(inputs), "same-graph")
    max_abs, same, agrees = report.max_abs, report.same_top1, report.ok
    return OrtFormatResult(
        str(src), str(ort_path), str(config), style, file_size(src), ort_path.stat().st_size,
        _load_ms(src, load_repeats), _load_ms(ort_path, load_repeats), max_abs, same, ops,
        agrees,
    )  # fmt: skip


def operators(config: str) -> tuple[str, ...]:
    """The operators in a required-operators config: ``DOMAIN;OPSET;Op1,Op2{types},...``
    per line (types are JSON, with commas of their own); domains other than ai.onnx prefix
    the name (``com.microsoft.FusedConv``)."""
    out = []
    for line in config.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        domain, _, rest = line.split(";", 2)
        depth, name = 0, ""
        for ch in rest + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                if name.strip():
                    out.append(name.strip() if domain == "ai.onnx" else f"{domain}.{name.strip()}")
                name = ""
            elif depth == 0:
                name += ch
    return tuple(out)
