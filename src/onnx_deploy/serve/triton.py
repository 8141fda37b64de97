"""A Triton Inference Server model repository for an ONNX model or a TensorRT plan.

Triton serves ONNX files through its onnxruntime backend and TensorRT plans through its
TensorRT backend, from a folder laid out as (Triton's model_repository.md)::

    REPO/NAME/config.pbtxt
    REPO/NAME/1/model.onnx        # or 1/model.onnx/ (a folder) with external data
    REPO/NAME/1/model.plan        # a TensorRT engine, tied to its GPU and TensorRT version

The config comes from the model's own signature: ``max_batch_size`` with the batch dim
left out of ``dims`` (``0`` for a model whose batch is fixed), ``-1`` for other dynamic
dims, Triton's data types, ``dynamic_batching``, ``instance_group``, a warm-up, and for
ONNX on a GPU optionally onnxruntime's TensorRT accelerator. Every config is parsed with
protobuf's ``text_format`` into Triton's own ``ModelConfig`` message (shipped in
``tritonclient.grpc.model_config_pb2``) before anything is written, and the folder is
written atomically.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.core.defaults import DEFAULT_DIM_SIZE
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.errors import TritonError
from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
from onnx_deploy.core.files import staged_folder
from onnx_deploy.core.results import Result
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import to_triton

DEFAULT_MAX_BATCH = 64
DEFAULT_QUEUE_DELAY_US = 100
KINDS = ("cpu", "gpu")


def triton_type(dtype: str) -> str:
    """The config's data type for a dtype name: ``"float32"`` -> ``"TYPE_FP32"``."""
    name = to_triton(dtype)
    if name is None:
        raise TritonError(f"Triton has no data type for {dtype!r}")
    return f"TYPE_{name}"


def model_config_pb2() -> Any:
    """Triton's own ``ModelConfig`` protobuf module (from tritonclient's grpc extra)."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2
    except ImportError as e:
        raise MissingExtraError(
            f"checking a Triton config needs tritonclient ({e}); pip install "
            '"onnx-deploy[triton]" (or pip install "tritonclient[grpc,http]")'
        ) from e
    return pb2


def parse_config(text: str) -> Any:
    """Parse config.pbtxt text into Triton's ``ModelConfig``; a ``TritonError`` names the
    line that does not fit the schema."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, model_config_pb2().ModelConfig())
    except text_format.ParseError as e:
        raise TritonError(f"the config does not fit Triton's ModelConfig schema: {e}") from e


@dataclass(frozen=True)
class Batching:
    """How the model batches: ``max_batch_size`` (0: no batching, the batch is fixed or
    absent) and the dim name that is the batch (shared by every input and output)."""

    max_batch_size: int
    dim: str | None
    note: str = ""


def batching(
    inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], max_batch_size: int
) -> Batching:
    """Whether the first dim of every input and output is one symbolic batch dim."""
    firsts = [s.shape[0] if s.shape else None for s in (*inputs, *outputs)]
    names = {d for d in firsts if isinstance(d, str)}
    if firsts and all(isinstance(d, str) for d in firsts) and len(names) == 1:
        return Batching(max_batch_size, names.pop())
    fixed = [f"{s.name}{s.shape_text}" for s in (*inputs, *outputs) if not s.shape or not isinstance(s.shape[0], str)]  # fmt: skip
    return Batching(
        0, None,
        "max_batch_size 0: Triton cannot batch this model because the first dim is not one "
        f"shared symbolic batch dim ({', '.join(fixed) or 'names differ'}); re-export with a "
        "dynamic batch (onnx-deploy export --batch 1:64) to batch requests",
    )  # fmt: skip


def _dims(spec: TensorSpec, batched: bool) -> list[int]:
    dims = spec.shape[1:] if batched else spec.shape
    return [d if isinstance(d, int) else -1 for d in dims]


def _tensor(spec: TensorSpec, batched: bool) -> str:
    dims = ", ".join(str(d) for d in _dims(spec, batched))
    return f'  {{ name: "{spec.name}" data_type: {triton_type(spec.dtype)} dims: [ {dims} ] }}'


def _warmup(inputs: Sequence[TensorSpec], batched: bool) -> str:
    parts = []
    for s in inputs:
        dims = [d if d > 0 else DEFAULT_DIM_SIZE for d in _dims(s, batched)]
        data = "random_data: true" if s.dtype.startswith("float") else "zero_data: true"
        parts.append(
            f'    inputs {{ key: "{s.name}" value: {{ data_type: {triton_type(s.dtype)} '
            f"dims: [ {', '.join(map(str, dims))} ] {data} }} }}"
        )
    batch = "batch_size: 1\n" if batched else ""
    return 'model_warmup [\n  {\n    name: "warmup"\n    ' + batch + "\n".join(parts) + "\n  }\n]"


def config_text(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    platform: str = "onnxruntime_onnx",
    max_batch_size: int = DEFAULT_MAX_BATCH,
    preferred_batch_sizes: Sequence[int] = (),
    queue_delay_us: int | None = DEFAULT_QUEUE_DELAY_US,
    kind: str = "cpu",
    instances: int = 1,
    tensorrt_fp16: bool = False,
    trt_cache: str = "/tmp/triton_trt_cache",
    warmup: bool = True,
) -> tuple[str, Batching]:
    """config.pbtxt for one model, and how it batches. ``queue_delay_us=None`` turns
    dynamic batching off; ``tensorrt_fp16`` adds onnxruntime's TensorRT accelerator
    (GPU instances of an ONNX model only)."""
    if kind not in KINDS:
        raise TritonError(f"kind must be one of {KINDS}, got {kind!r}")
    if instances < 1:
        raise TritonError(f"instances must be at least 1, got {instances}")
    b = batching(inputs, outputs, max_batch_size)
    batched = b.max_batch_size > 0
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {b.max_batch_size}",
        "input [\n" + ",\n".join(_tensor(s, batched) for s in inputs) + "\n]",
        "output [\n" + ",\n".join(_tensor(s, batched) for s in outputs) + "\n]",
    ]
    if batched and queue_delay_us is not None:
        sizes = [s for s in preferred_batch_sizes if s <= b.max_batch_size]
        pref = f"preferred_batch_size: [ {', '.join(map(str, sizes))} ] " if sizes else ""
        lines.append(f"dynamic_batching {{ {pref}max_queue_delay_microseconds: {queue_delay_us} }}")
    lines.append(f"instance_group [ {{ count: {instances} kind: KIND_{kind.upper()} }} ]")
    if tensorrt_fp16:
        if platform != "onnxruntime_onnx" or kind != "gpu":
            raise TritonError(
                "the TensorRT accelerator is for an ONNX model on GPU instances (--kind gpu)"
            )
        lines.append(
            "optimization { execution_accelerators { gpu_execution_accelerator: [ {\n"
            '  name: "tensorrt"\n'
            '  parameters { key: "precision_mode" value: "FP16" }\n'
            '  parameters { key: "max_workspace_size_bytes" value: "4294967296" }\n'
            '  parameters { key: "trt_engine_cache_enable" value: "1" }\n'
            f'  parameters {{ key: "trt_engine_cache_path" value: "{trt_cache}" }}\n'
            "} ] } }"
        )
    if warmup:
        lines.append(_warmup(inputs, batched))
    return "\n".join(lines) + "\n", b


@dataclass(frozen=True)
class RepositoryResult(Result):
    repo: str
    name: str
    platform: str
    config_path: str
    model_path: str
    max_batch_size: int
    config: str
    files: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        lines = [
            f"triton    {self.repo}/{self.name}  ({self.platform}, max_batch_size "
            f"{self.max_batch_size}; config parsed with Triton's ModelConfig)",
            *(f"  file    {f}" for f in self.files),
        ]
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def check_layout(model_dir: str | os.PathLike[str]) -> list[str]:
    """Problems with a model folder as Triton would load it (empty when none)."""
    d = Path(model_dir)
    problems = []
    if not (d / "config.pbtxt").is_file():
        problems.append(f"{d}/config.pbtxt is missing")
        return problems
    config = parse_config((d / "config.pbtxt").read_text())
    if config.name != d.name:
        problems.append(f"config name {config.name!r} differs from the folder name {d.name!r}")
    versions = [p for p in d.iterdir() if p.is_dir() and p.name.isdigit()]
    if not versions:
        problems.append(f"{d} has no numeric version folder (1/)")
    expected = {"onnxruntime_onnx": "model.onnx", "tensorrt_plan": "model.plan"}.get(
        config.platform
    )
    for v in versions:
        if expected and not (v / expected).exists():
            problems.append(f"{v} has no {expected}")
        onnx_dir = v / "model.onnx"
        if onnx_dir.is_dir() and not (onnx_dir / "model.onnx").is_file():
            problems.append(f"{onnx_dir}/ holds no model.onnx")
    return problems


def export_repository(
    model: str | os.PathLike[str],
    repo: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: int = 1,
    max_batch_size: int = DEFAULT_MAX_BATCH,
    preferred_batch_sizes: Sequence[int] = (4, 8, 16),
    queue_delay_us: int | None = DEFAULT_QUEUE_DELAY_US,
    kind: str = "cpu",
    instances: int = 1,
    tensorrt_fp16: bool = False,
    warmup: bool = True,
    force: bool = False,
) -> RepositoryResult:
    """Write ``REPO/NAME/config.pbtxt`` and ``REPO/NAME/VERSION/model.onnx`` (or
    ``model.plan`` for a TensorRT engine with its ``.plan.json``). The config is parsed
    with Triton's schema and the layout checked before the folder replaces anything;
    an existing model folder is replaced only with ``force``."""
    from onnx_deploy.infer.modelinfo import describe

    src = Path(model)
    if not src.is_file():
        raise TritonError(f"{src}: no such file; give an .onnx model or a TensorRT .plan")
    name = name or src.name.split(".")[0]
    if not name.replace("_", "").replace("-", "").isalnum():
        raise TritonError(f"model name {name!r}: use letters, digits, '_' and '-'")
    if src.suffix == ".plan":
        from onnx_deploy.convert.tensorrt import read_meta

        meta = read_meta(src)
        if meta is None or not meta.inputs:
            raise TritonError(
                f"{src} has no metadata with its inputs and outputs ({src}.json): build it "
                "with onnx-deploy trt build"
            )
        inputs, outputs, platform, target = meta.inputs, meta.outputs, "tensorrt_plan", "model.plan"
        notes = [
            f"the engine runs only on {meta.gpu} (compute capability "
            f"{meta.compute_capability}) with TensorRT {meta.tensorrt}"
        ]
        kind = "gpu"
    else:
        from onnx_deploy.infer.modelinfo import require_runtime_loads

        require_runtime_loads(src, "no model repository")
        info = describe(src)
        inputs, outputs, platform, target = (
            info.inputs,
            info.outputs,
            "onnxruntime_onnx",
            "model.onnx",
        )
        notes = []
    from onnx_deploy.infer.detections import detection_layout

    if detection_layout([o.name for o in outputs]) == "padded":
        k = next(o.shape[1] for o in outputs if o.name == "scores")
        notes.append(
            f"detections: boxes, scores and classes are padded to {k} per image; a client "
            "reads the first num_detections of each"
        )
    text, b = config_text(
        name, inputs, outputs, platform=platform, max_batch_size=max_batch_size,
        preferred_batch_sizes=preferred_batch_sizes, queue_delay_us=queue_delay_us, kind=kind,
        instances=instances, tensorrt_fp16=tensorrt_fp16, warmup=warmup,
    )  # fmt: skip
    parse_config(text)
    if b.note:
        notes.append(b.note)
    final = Path(repo) / name
    if final.exists() and not force:
        raise OutputExistsError(
            f"{final} already exists; choose another --name or pass --force to replace it"
        )
    with staged_folder(final, force=True) as tmp:  # refused above unless force
        vdir = tmp / str(version)
        vdir.mkdir(parents=True)
        (tmp / "config.pbtxt").write_text(text)
        data = src.with_name(src.name + EXTERNAL_DATA_SUFFIX)
        if target == "model.onnx" and data.exists():  # external data: a folder model.onnx/
            (vdir / "model.onnx").mkdir()
            shutil.copyfile(src, vdir / "model.onnx" / "model.onnx")
            shutil.copyfile(data, vdir / "model.onnx" / data.name)
            notes.append("external data: 1/model.onnx/ is a folder holding the model and its data")
        else:
            shutil.copyfile(src, vdir / target)
        if problems := check_layout(tmp):
            raise TritonError("; ".join(problems))
    files = tuple(str(p.relative_to(Path(repo))) for p in sorted(final.rglob("*")) if p.is_file())
    return RepositoryResult(
        str(repo), name, platform, str(final / "config.pbtxt"), str(final / str(version) / target),
        b.max_batch_size, text, files, tuple(notes),
    )  # fmt: skip
