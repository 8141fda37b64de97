"""Read an ONNX file safely and describe it: I/O signature, opset, IR version, ops, size."""

from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size
from onnx_deploy.core.results import Result
from onnx_deploy.core.specs import Dim
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import from_onnx

__all__ = ["ModelInfo", "default_opset", "describe", "graph_io", "load_onnx"]

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class ModelInfo(Result):
    COMPUTED = ("num_nodes",)

    path: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    ir_version: int
    producer: str
    op_histogram: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    warnings: tuple[str, ...] = ()  # why the installed onnxruntime cannot load it (inspect)

    @property
    def num_nodes(self) -> int:
        return sum(self.op_histogram.values())

    def summary(self) -> str:
        lines = [
            f"model     {self.path} ({human_size(self.size_bytes)})",
            f"producer  {self.producer or '?'}   opset {self.opset}   IR version {self.ir_version}",
        ]
        lines += [f"input     {t}" for t in self.inputs]
        lines += [f"output    {t}" for t in self.outputs]
        ops = ", ".join(f"{k} {v}" for k, v in self.op_histogram.items())
        lines.append(f"nodes     {self.num_nodes}: {ops}")
        lines += [f"warning   {w}" for w in self.warnings]
        return "\n".join(lines)


def value_info_spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    tt = value_info.type.tensor_type
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(value_info.name, from_onnx(tt.elem_type), tuple(dims))


def load_onnx(path: str | os.PathLike[str], load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX file or raise ``ModelFileError`` saying what is wrong with it."""
    import onnx

    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such file. Check the path, or export a model first.")
    if p.is_dir():
        raise ModelFileError(f"{p} is a directory, not an ONNX file.")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{p} is empty (0 bytes); re-export or re-copy the model.")
    try:
        model = onnx.load(str(p), load_external_data=load_external_data)
    except FileNotFoundError as e:
        raise ModelFileError(
            f"{p}: its weights live in an external-data file that is missing ({e.filename}). "
            f"Copy it next to {p.name}, or re-export with external_data=False."
        ) from e
    except Exception as e:  # protobuf DecodeError and friends
        if "should be stored in" in str(e):  # onnx's message for missing external data
            raise ModelFileError(
                f"{p}: its weights live in an external-data file that is missing. Copy the "
                f".data file that was written with it next to {p.name}, or re-export with "
                "external_data=False."
            ) from e
        raise ModelFileError(
            f"{p} is not a readable ONNX model ({type(e).__name__}: {e}). "
            "It may be truncated or another format; re-export it."
        ) from e
    if not model.graph.node and not model.graph.output:
        # Random bytes sometimes decode as an empty protobuf message.
        raise ModelFileError(
            f"{p} parsed as an empty model: it is not an ONNX file or is truncated."
        )
    return model


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Count nodes per op type in the main graph, most frequent first."""
    counts = collections.Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        for n in model.graph.node
    )
    return dict(counts.most_common())


def graph_io(model: onnx.ModelProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Real graph inputs (initializers excluded) and outputs."""
    inits = {i.name for i in model.graph.initializer}
    inputs = tuple(value_info_spec(v) for v in model.graph.input if v.name not in inits)
    return inputs, tuple(value_info_spec(v) for v in model.graph.output)


def default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0


def missing_external_data(path: str | os.PathLike[str], model: onnx.ModelProto) -> list[str]:
    """External-data files the model's initializers point to that are not beside it."""
    import onnx

    missing = []
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in init.external_data if e.key == "location"), "")
        if location and not (Path(path).parent / location).is_file():
            missing.append(location)
    return sorted(set(missing))


def runtime_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the installed onnxruntime cannot open this model (``None``: it can): an IR
    version or op set newer than it reads, an op with no kernel, missing external data.
    Opens a CPU session with graph optimizations off (no inference runs)."""
    import onnxruntime as ort

    from onnx_deploy.infer.sessions import create_session

    try:
        create_session(path, "cpu", graph_optimization="disabled")
    except ModelFileError as e:  # onnxruntime's own error (Fail, InvalidGraph, ...) is the cause
        text = " ".join(str(e.__cause__ or e).split())
        text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
        text = re.sub(r"^Load model from \S+ failed: ?", "", text)
        text = re.sub(r"\S+\.(?:cc|h|cpp):\d+ .*?\) (?=[A-Z])", "", text)  # the C++ frame
        return f"onnxruntime {ort.__version__} cannot load it: {text[:300]}"
    return None


def load_problem(path: str | os.PathLike[str], model: onnx.ModelProto | None = None) -> str | None:
    """Why the installed onnxruntime cannot load the file (``None``: it can): missing
    external-data files, checked first without opening a session, else ``runtime_problem``."""
    model = model if model is not None else load_onnx(path, load_external_data=False)
    missing = missing_external_data(path, model)
    if missing:
        return (
            f"its weights live in external-data file(s) that are missing ({', '.join(missing)}); "
            f"copy them next to {Path(path).name}"
        )
    return runtime_problem(path)


def require_runtime_loads(path: str | os.PathLike[str], then: str) -> None:
    """Raise ``ModelFileError`` before anything is written when onnxruntime cannot load
    the model: ``then`` says what would have been written."""
    problem = load_problem(path)
    if problem:
        raise ModelFileError(
            f"{path}: {problem}. Nothing was written ({then}); re-export with a supported "
            "opset and IR version, or register the custom op's library."
        )


def describe(path: str | os.PathLike[str], runtime_check: bool = False) -> ModelInfo:
    """Describe an ONNX file without running it. ``runtime_check`` also opens it in
    onnxruntime and lists what stops it from loading in ``warnings``."""
    model = load_onnx(path, load_external_data=False)
    problem = load_problem(path, model) if runtime_check else None
    warnings = [problem] if problem else []
    inputs, outputs = graph_io(model)
    return ModelInfo(
        path=str(path),
        inputs=inputs,
        outputs=outputs,
        opset=default_opset(model),
        ir_version=int(model.ir_version),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        op_histogram=op_histogram(model),
        size_bytes=file_size(path),
        warnings=tuple(warnings),
    )
