"""onnxslim with a before/after account and a numerics check.

The raw call::

    slimmed = onnxslim.slim(onnx.load("model.onnx"))   # a ModelProto, or None
    onnx.save(slimmed, "model.slim.onnx")

``onnxslim.slim`` returns ``None`` when its own model check fails, and known bugs have
changed outputs (OnnxSlim issues 277, 15, 321). This wrapper counts nodes per op type
before and after, and compares the two models on ONNX Runtime before the slimmed file
is moved into place, so a slimming that changes results never lands on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.core.defaults import SLIM_CHECK_BATCH_SIZES
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import SlimError
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import copy_external_data
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import has_external_data
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import write_onnx
from onnx_deploy.core.results import Result
from onnx_deploy.infer.compare import ValidationReport
from onnx_deploy.infer.compare import compare_onnx
from onnx_deploy.infer.modelinfo import graph_io
from onnx_deploy.infer.modelinfo import load_onnx
from onnx_deploy.infer.modelinfo import op_histogram


@dataclass(frozen=True)
class SlimResult(Result):
    COMPUTED = ("nodes_before", "nodes_after")

    input_path: str
    output_path: str
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    size_before: int
    size_after: int
    seconds: float
    validation: ValidationReport | None
    notes: tuple[str, ...] = ()

    @property
    def nodes_before(self) -> int:
        return sum(self.ops_before.values())

    @property
    def nodes_after(self) -> int:
        return sum(self.ops_after.values())

    def op_changes(self) -> dict[str, int]:
        """Per op type: after minus before, only the types that changed."""
        keys = dict.fromkeys([*self.ops_before, *self.ops_after])
        changes = {k: self.ops_after.get(k, 0) - self.ops_before.get(k, 0) for k in keys}
        return {k: v for k, v in changes.items() if v}

    def summary(self) -> str:
        changes = ", ".join(f"{k} {v:+d}" for k, v in self.op_changes().items()) or "no op changes"
        lines = [
            f"slim      {self.output_path}  {human_size(self.size_after)}  {self.seconds:.1f} s  "
            f"({self.nodes_before} -> {self.nodes_after} nodes: {changes}; "
            f"{human_size(self.size_before)} -> {human_size(self.size_after)})"
        ]
        if self.validation is not None:
            lines.append(
                f"  numerics {'PASS' if self.validation.ok else 'FAIL'} vs the input model, "
                f"max abs {self.validation.max_abs:.2e}"
            )
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def slim_model(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    force: bool = False,
    check_numerics: bool = True,
    inputs: Iterable[Any] | None = None,
    batch_sizes: tuple[int, ...] = SLIM_CHECK_BATCH_SIZES,
    precision: str = "fp32",
    **slim_kwargs: Any,
) -> SlimResult:
    """Slim ``input_path`` into ``output_path``; raise ``SlimError`` if results change.

    ``slim_kwargs`` go to ``onnxslim.slim`` (``skip_fusion_patterns``, ``no_shape_infer``,
    ...). Note that ``input_shapes=`` fixes shapes and so removes a dynamic batch.
    """
    from onnx_deploy.core.extras import require

    onnxslim = require("onnxslim", "slimming")

    # weights in external data stay on disk: onnxslim works on the graph (it reads a
    # weight only to fold it, from the model's folder), and the weights are copied
    # tensor by tensor into the output's data file (``copy_external_data``)
    source_dir = Path(input_path).resolve().parent
    external = has_external_data(input_path)
    model = load_onnx(input_path, load_external_data=not external)
    before = op_histogram(model)
    inputs_before, _ = graph_io(model)
    size_before = file_size(input_path)
    notes: list[str] = []
    start = time.perf_counter()
    with atomic_output(output_path, force=force) as tmp:
        try:
            with contextlib.chdir(source_dir) if external else contextlib.nullcontext():
                slimmed = onnxslim.slim(model, **slim_kwargs)
        except Exception as e:
            raise SlimError(
                f"onnxslim failed on {input_path}: {type(e).__name__}: {e}. Keep the unslimmed "
                "model, or retry with skip_fusion_patterns=[...] / no_shape_infer=True."
            ) from e
        if slimmed is None:
            raise SlimError(
                f"onnxslim returned None for {input_path}: its own model check failed. Keep the "
                "unslimmed model, or retry with no_shape_infer=True or skip_fusion_patterns."
            )
        if external:
            copy_external_data(slimmed, source_dir, tmp)
        else:
            write_onnx(slimmed, tmp)
        seconds = time.perf_counter() - start
        inputs_after, _ = graph_io(slimmed)
        after = op_histogram(slimmed)
        del model, slimmed  # the numerics check opens the files: free the weights first
        lost = [
            str(a)
            for a, b in zip(inputs_after, inputs_before, strict=False)
            if len(a.dynamic_axes) < len(b.dynamic_axes)
        ]
        if lost:
            notes.append(f"dynamic dims became fixed: {lost} (input_shapes= does this)")
        report = None
        if check_numerics:
            try:
                report = compare_onnx(
                    input_path, tmp, inputs=inputs, batch_sizes=batch_sizes, precision=precision
                )
                report = dataclasses.replace(report, candidate=str(output_path))
            except InputMismatchError as e:
                raise SlimError(
                    f"cannot make test inputs for the numerics check ({e}); pass inputs=[...] "
                    "or check_numerics=False"
                ) from e
            if not report.ok:
                raise SlimError(
                    "slimming changed the model's results, so the slimmed file was not written:\n"
                    + report.summary()
                    + "\nKeep the unslimmed model, or find the culprit pass with skip_fusion_patterns."
                )
    return SlimResult(
        input_path=str(input_path),
        output_path=str(output_path),
        ops_before=before,
        ops_after=after,
        size_before=size_before,
        size_after=file_size(output_path),
        seconds=seconds,
        validation=report,
        notes=tuple(notes),
    )
