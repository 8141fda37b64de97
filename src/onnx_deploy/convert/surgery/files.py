"""``edit_file``: one edit of one file, checked by onnx.checker and numerically, written
atomically."""

from __future__ import annotations

import copy
import functools
import os
import tempfile
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import onnx
from onnx import TensorProto

from onnx_deploy.convert.surgery.checks import EditCheck
from onnx_deploy.convert.surgery.checks import check_extract
from onnx_deploy.convert.surgery.checks import check_letterbox
from onnx_deploy.convert.surgery.checks import check_merge
from onnx_deploy.convert.surgery.checks import check_nms
from onnx_deploy.convert.surgery.checks import check_postprocessing
from onnx_deploy.convert.surgery.checks import check_preprocessing
from onnx_deploy.convert.surgery.checks import check_same_outputs
from onnx_deploy.convert.surgery.checks import open_session
from onnx_deploy.convert.surgery.checks import random_feeds
from onnx_deploy.convert.surgery.checks import run_session
from onnx_deploy.convert.surgery.detection import add_letterbox
from onnx_deploy.convert.surgery.detection import apply_nms
from onnx_deploy.convert.surgery.detection import detection_metadata
from onnx_deploy.convert.surgery.detection import plan_nms
from onnx_deploy.convert.surgery.graph import SurgeryError
from onnx_deploy.convert.surgery.graph import all_graphs
from onnx_deploy.convert.surgery.graph import convert_opset
from onnx_deploy.convert.surgery.graph import expose
from onnx_deploy.convert.surgery.graph import extract
from onnx_deploy.convert.surgery.graph import fix_ir_version
from onnx_deploy.convert.surgery.graph import io_names
from onnx_deploy.convert.surgery.graph import io_pairs
from onnx_deploy.convert.surgery.graph import merge
from onnx_deploy.convert.surgery.graph import parse_dim_edit
from onnx_deploy.convert.surgery.graph import rename
from onnx_deploy.convert.surgery.graph import set_dims
from onnx_deploy.convert.surgery.processing import add_postprocessing
from onnx_deploy.convert.surgery.processing import add_preprocessing
from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import over_protobuf_limit
from onnx_deploy.core.files import write_onnx
from onnx_deploy.core.results import Result
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import describe_all
from onnx_deploy.infer.modelinfo import default_opset
from onnx_deploy.infer.modelinfo import graph_io
from onnx_deploy.infer.modelinfo import load_onnx

EDITS = (
    "rename", "dim", "expose", "extract", "opset", "preprocess", "postprocess", "merge",
    "external",
)  # fmt: skip

# --- files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EditResult(Result):
    """One edit of one file: the signature before and after, and the numeric check."""

    COMPUTED = ("ok",)

    edit: str
    input_path: str
    output_path: str
    inputs_before: tuple[TensorSpec, ...]
    outputs_before: tuple[TensorSpec, ...]
    inputs_after: tuple[TensorSpec, ...]
    outputs_after: tuple[TensorSpec, ...]
    check: EditCheck | None
    ir_version: int
    opset: int
    size: int
    seconds: float
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.check is None or self.check.ok

    def summary(self) -> str:
        lines = [
            f"edit      {self.edit}: {self.input_path} -> {self.output_path}  "
            f"({human_size(self.size)}, IR {self.ir_version}, opset {self.opset}, "
            f"{self.seconds:.1f} s)",
            f"  before  in  {describe_all(self.inputs_before)}",
            f"          out {describe_all(self.outputs_before)}",
            f"  after   in  {describe_all(self.inputs_after)}",
            f"          out {describe_all(self.outputs_after)}",
        ]
        if self.check is not None:
            lines.append(f"  check   {self.check.line()}")
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def _full_check(model: onnx.ModelProto, what: str) -> None:
    try:
        if over_protobuf_limit(model):
            return  # the checker takes a path for these; onnxruntime loads it below
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        first = first_line(e)
        raise SurgeryError(f"the {what} fails onnx.checker: {first}") from e


def _checked_edit(
    edit: str,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    make: Callable[[onnx.ModelProto], tuple[onnx.ModelProto, EditCheck | None, list[str]]],
    force: bool,
    external_data: bool | None = None,
) -> EditResult:
    start = time.perf_counter()
    before = load_onnx(source)
    try:
        after, check, notes = make(before)
    except OnnxDeployError:
        raise
    except Exception as e:  # onnxruntime refusing the edited graph, onnx's own errors
        first = first_line(e)
        raise SurgeryError(f"'{edit}' failed: {type(e).__name__}: {first}") from e
    _full_check(after, f"model after '{edit}'")
    if check is not None and not check.ok:
        raise SurgeryError(
            f"'{edit}' changed the model's outputs ({check.line()}); nothing was written"
        )
    if external_data is None and _has_external_data(source):
        external_data = True  # keep large models' layout
    with atomic_output(output, force=force) as tmp:
        write_onnx(after, tmp, external_data)
    b_in, b_out = graph_io(before)
    a_in, a_out = graph_io(after)
    return EditResult(
        edit, str(source), str(output), b_in, b_out, a_in, a_out, check,
        int(after.ir_version), default_opset(after), file_size(output),
        time.perf_counter() - start, tuple(notes),
    )  # fmt: skip


def _has_external_data(path: str | os.PathLike[str]) -> bool:
    model = onnx.load(str(path), load_external_data=False)
    return any(
        i.data_location == TensorProto.EXTERNAL
        for g in all_graphs(model.graph)
        for i in g.initializer
    )


def edit_file(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    edit: str,
    *,
    force: bool = False,
    **options: Any,
) -> EditResult:
    """Apply one edit to an ONNX file and write the result atomically.

    ``edit``: ``rename`` (``mapping``), ``dim`` (``dims``: ``["batch=1"]``), ``expose``
    (``tensors``), ``extract`` (``inputs``, ``outputs``), ``opset`` (``opset``),
    ``preprocess`` (``preprocessing_graph``'s options, ``input_name``; with
    ``letterbox=True``, ``add_letterbox``'s), ``postprocess`` (``output_name``,
    ``softmax``, ``top_k``, ``keep_logits``; with ``nms=True``, ``add_nms``'s), ``merge`` (``other``: the
    second model's path, ``io_map``; ``first=True`` puts ``other`` first), ``external``
    (``external``: True to move weights to ``NAME.onnx.data``, False to bring them back).
    Every result passes onnx.checker and a numeric check before it is written.
    """
    if edit not in EDITS:
        raise SurgeryError(f"unknown edit {edit!r}; use one of {', '.join(EDITS)}")
    return _checked_edit(
        edit, source, output, functools.partial(_EDITORS[edit], **options), force,
        options.get("external") if edit == "external" else None,
    )  # fmt: skip


def _edit_rename(m: onnx.ModelProto, mapping: Mapping[str, str]) -> Any:
    after = rename(m, mapping)
    ins, _ = io_names(m)
    check = check_same_outputs(
        m, after, input_map={k: v for k, v in mapping.items() if k in ins}, output_map=mapping
    )
    return after, check, []


def _edit_dim(m: onnx.ModelProto, dims: Sequence[str] | Mapping[str, int | str]) -> Any:
    after = set_dims(m, dims)
    sizes = {}
    items = [parse_dim_edit(f"{k}={v}") for k, v in dims.items()] if isinstance(dims, Mapping) else [parse_dim_edit(t) for t in dims]  # fmt: skip
    for target, axis, value in items:
        if axis is None and isinstance(value, int):
            sizes[target] = value
    try:
        check = check_same_outputs(m, after, sizes=sizes)
    except OnnxDeployError:
        raise
    except Exception as e:
        raise SurgeryError(
            f"the edited model does not run at the sizes asked for: {first_line(e)}"
        ) from e
    notes = []
    new_symbols = [v for _, _, v in items if isinstance(v, str)]
    if new_symbols:
        notes.append(_probe_symbolic(after, new_symbols))
    return after, check, notes


def _probe_symbolic(model: onnx.ModelProto, symbols: Sequence[str]) -> str:
    """Run the model with each new symbolic dim at 2 sizes: a size the exporter baked into
    the graph (a Reshape to a constant shape) fails here, not in production."""
    ins, _ = graph_io(model)
    with tempfile.TemporaryDirectory() as tmp:
        session = open_session(model, tmp)
        for size in (1, 3):
            feeds = random_feeds(ins, dict.fromkeys(symbols, size), 0)
            try:
                run_session(session, feeds)
            except Exception as e:
                first = first_line(e)
                raise SurgeryError(
                    f"the graph does not run with {', '.join(symbols)} = {size}: a size is "
                    f"baked into it ({first}). Re-export with that dim dynamic "
                    "(dynamic_shapes; CLI: onnx-deploy export --dim ...) instead."
                ) from e
    return f"ran with {', '.join(symbols)} = 1 and 3"


def _edit_expose(m: onnx.ModelProto, tensors: Sequence[str]) -> Any:
    after = expose(m, tensors)
    return after, check_same_outputs(m, after), []


def _edit_extract(m: onnx.ModelProto, inputs: Sequence[str], outputs: Sequence[str]) -> Any:
    after = extract(m, inputs, outputs)
    return after, check_extract(m, after), []


def _edit_opset(m: onnx.ModelProto, opset: int) -> Any:
    after = convert_opset(m, opset)
    notes = [f"opset {default_opset(m)} -> {opset}"]
    return after, check_same_outputs(m, after), notes


def _edit_preprocess(
    m: onnx.ModelProto, input_name: str | None = None, letterbox: bool = False, **options: Any
) -> Any:
    if letterbox:
        return _edit_letterbox(m, input_name, **options)
    after = add_preprocessing(m, input_name, **options)
    check = check_preprocessing(m, after, image_name=input_name, **options)
    steps = ["uint8 " + options.get("layout", "NHWC")]
    if options.get("resize"):
        steps.append(f"resize shorter side to {options['resize']}")
    if options.get("crop") or options.get("resize"):
        steps.append(f"center crop {options.get('crop') or 'to the model size'}")
    steps.append("(x * scale - mean) / std")
    return after, check, [" -> ".join(steps)]


def _edit_letterbox(m: onnx.ModelProto, input_name: str | None = None, **options: Any) -> Any:
    lb = {k: options[k] for k in ("pad_value", "scale", "pixels_name", "map_boxes", "antialias")
          if k in options}  # fmt: skip
    after = add_letterbox(m, input_name, **lb)
    check = check_letterbox(m, after, input_name, **lb)
    meta = detection_metadata(after) or {}
    filt = "" if lb.get("antialias", True) else " (no antialiasing: TensorRT's form)"
    notes = [
        f"uint8 NHWC, any size -> resize keeping the aspect ratio{filt} -> pad to "
        f"{'x'.join(map(str, meta['letterbox']['size']))} with {lb.get('pad_value', 114)} -> "
        "x * scale"
    ]
    if meta["letterbox"]["boxes_mapped"]:
        notes.append("boxes are mapped back to the original image's pixels in the graph")
    return after, check, notes


def _edit_postprocess(m: onnx.ModelProto, nms: bool = False, **options: Any) -> Any:
    if nms:
        return _edit_nms(m, **options)
    after = add_postprocessing(m, **options)
    return after, check_postprocessing(m, after, **options), []


def _edit_nms(m: onnx.ModelProto, **options: Any) -> Any:
    head, settings = plan_nms(m, **options)
    after = apply_nms(m, head, settings)
    kept = [s.name for s in graph_io(m)[1] if s.name not in head.names]
    notes = [
        f"{head.num_classes or '?'} classes, {settings.box_format} boxes -> score > "
        f"{settings.score_threshold:g}, NMS per class at IoU {settings.iou_threshold:g}, "
        f"<= {settings.max_detections} per image, padded (EfficientNMS layout)"
    ]
    if kept:
        notes.append(f"dropped outputs the detections do not use: {', '.join(kept)}")
    return after, check_nms(m, after, head, settings), notes


def _edit_merge(
    m: onnx.ModelProto,
    other: str | os.PathLike[str],
    io_map: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
    first: bool = False,
) -> Any:
    o = load_onnx(other)
    a, b = (o, m) if first else (m, o)
    pairs = io_pairs(a, b, io_map)
    merged = merge(a, b, pairs)
    return merged, check_merge(a, b, merged, pairs), []


def _edit_external(m: onnx.ModelProto, external: bool = True) -> Any:
    if not external and over_protobuf_limit(m):
        raise SurgeryError(
            "the weights are over protobuf's 2 GB limit: they must stay in an external file"
        )
    after = fix_ir_version(copy.deepcopy(m))
    where = "NAME.onnx.data beside the model" if external else "the .onnx file"
    return after, check_same_outputs(m, after), [f"weights in {where}"]


_EDITORS: dict[str, Callable[..., Any]] = {
    "rename": _edit_rename,
    "dim": _edit_dim,
    "expose": _edit_expose,
    "extract": _edit_extract,
    "opset": _edit_opset,
    "preprocess": _edit_preprocess,
    "postprocess": _edit_postprocess,
    "merge": _edit_merge,
    "external": _edit_external,
}
