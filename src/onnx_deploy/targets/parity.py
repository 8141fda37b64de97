"""One model, three runtimes beyond Python, each compared with Python onnxruntime:
onnxruntime-node (native CPU), onnxruntime-web in headless Chromium (WebAssembly), and the
ORT format that onnxruntime's mobile and edge builds load. Parity is measured on the
target, never assumed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.files import human_size
from onnx_deploy.core.results import Result
from onnx_deploy.infer.compare import PRESETS
from onnx_deploy.infer.compare import compare_results

TOLERANCE = PRESETS["same-graph"]  # the same graph on another build of onnxruntime


@dataclass(frozen=True)
class TargetCheck(Result):
    COMPUTED = ("ok",)

    target: str
    status: str  # ok, failed, skipped
    runtime: str = ""
    max_abs: float | None = None
    same_top1: bool | None = None
    size: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class TargetsResult(Result):
    COMPUTED = ("ok",)

    model: str
    checks: tuple[TargetCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        lines = [
            f"targets   {self.model} vs Python onnxruntime (fp32: atol {TOLERANCE.atol}, rtol {TOLERANCE.rtol})"
        ]
        for c in self.checks:
            if c.status == "skipped":
                lines.append(f"  {c.target:<8} skipped: {c.detail}")
                continue
            top1 = "" if c.same_top1 is None else f", same top-1 {c.same_top1}"
            size = "" if c.size is None else f", {human_size(c.size)}"
            lines.append(
                f"  {c.target:<8} {'PASS' if c.status == 'ok' else 'FAIL'} {c.runtime}: max abs "
                f"{c.max_abs:.1e}{top1}{size}{'; ' + c.detail if c.detail else ''}"
            )
        return "\n".join(lines)


def _compare(
    ref: dict[str, np.ndarray], got: dict[str, np.ndarray]
) -> tuple[float, bool | None, bool]:
    """(max |difference|, same top-1 on the first output, within tolerance and same top-1)."""
    report = compare_results(ref, {name: got[name] for name in ref}, TOLERANCE)
    same = report.same_top1
    return report.max_abs, same, report.ok and same is not False


def check_targets(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    only: Sequence[str] = ("node", "browser", "ort"),
    inputs: Any = None,
    force: bool = False,
    screenshot: bool = True,
) -> TargetsResult:
    """Run the checks in ``only``; a target whose tools are missing is skipped with what
    to install. ``inputs``: real samples (array, dict or file), else random ones."""
    from onnx_deploy.core.errors import MissingExtraError
    from onnx_deploy.core.feeds import as_feeds
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.core.signature import Signature
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.targets.edge import to_ort_format
    from onnx_deploy.targets.web import node_executable
    from onnx_deploy.targets.web import node_modules
    from onnx_deploy.targets.web import run_in_browser
    from onnx_deploy.targets.web import write_web_app

    out = Path(out_dir)
    python = OnnxRuntimeRunner(model, "cpu", name="python")
    if inputs is None:
        sig = Signature.from_specs(python.inputs)
        feeds = sig.examples({d: 4 for d in sig.batch_dims}, seed=0)
    else:
        feeds = as_feeds(
            load_data(inputs) if isinstance(inputs, (str, os.PathLike)) else inputs, python.inputs
        )
    with python:
        ref = python.infer(feeds)
    checks = []
    for target in only:
        try:
            if target == "node":
                from onnx_deploy.infer.runners.node import NodeRunner

                node_executable(), node_modules()
                with NodeRunner(model) as node:
                    got = node.infer(feeds)
                    version = f"onnxruntime-node {node.version}"
                worst, same, ok = _compare(ref, got)
                checks.append(TargetCheck("node", "ok" if ok else "failed", version, worst, same))
            elif target == "browser":
                app = write_web_app(model, out / "web", force=force)
                shot = out / "web" / "screenshot.png" if screenshot else None
                run = run_in_browser(app.folder, feeds=feeds, screenshot=shot)
                worst, same, ok = _compare(ref, run.outputs)
                detail = f"page {app.folder}/index.html" + (f", screenshot {shot}" if shot else "")
                checks.append(
                    TargetCheck(
                        "browser",
                        "ok" if ok else "failed",
                        f"onnxruntime-web {run.version} (WASM, Chromium)",
                        worst,
                        same,
                        app.size,
                        detail,
                    )
                )
            elif target == "ort":
                r = to_ort_format(model, out / "ort", inputs=feeds, force=force)
                checks.append(
                    TargetCheck(
                        "ort",
                        "ok" if r.ok else "failed",
                        "ORT format (Python onnxruntime)",
                        r.max_abs,
                        r.same_top1,
                        r.ort_size,
                        f"load {r.ort_load_ms:.1f} vs {r.onnx_load_ms:.1f} ms; "
                        f"{len(r.operators)} operators in {Path(r.config_path).name}",
                    )
                )
            else:
                raise ValueError(f"unknown target {target!r}")
        except MissingExtraError as e:
            checks.append(TargetCheck(target, "skipped", detail=str(e)))
    return TargetsResult(str(model), tuple(checks))
