"""Graph surgery: edit an exported ONNX graph, and prove every edit changed nothing else.

The raw tools this builds on, from onnx itself::

    onnx.compose.merge_models(pre, model, io_map=[("pixels_nchw", "input")])
    onnx.utils.Extractor(model).extract_model(["stem"], ["features"])
    onnx.version_converter.convert_version(model, 21)
    onnx.save_model(model, "m.onnx", save_as_external_data=True, location="m.onnx.data")

Each edit here (``rename``, ``set_dims``, ``expose``, ``extract``, ``convert_opset``,
``add_preprocessing``, ``add_postprocessing``, ``merge``) takes and returns an
``onnx.ModelProto`` (the input is never modified) and leaves an IR version that the
installed onnxruntime loads: onnx 1.23's ``helper.make_model`` writes IR 14, which
onnxruntime 1.31 refuses ("max supported IR version: 13"). ``edit_file`` runs one edit
on a file: full ``onnx.checker`` check, a numeric check against the model before the edit
(the same inputs through both, outputs compared), then an atomic write. Bad input gets a
``SurgeryError`` that names the tensor or dim and lists what exists.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnx_deploy._files import atomic_output, file_size, human_size, over_protobuf_limit, write_onnx
from onnx_deploy.errors import OnnxDeployError
from onnx_deploy.modelinfo import default_opset, graph_io, load_onnx
from onnx_deploy.specs import TensorSpec, describe_all

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EDITS = (
    "rename", "dim", "expose", "extract", "opset", "preprocess", "postprocess", "merge",
    "external",
)  # fmt: skip
# an edit that only rewires the graph must give the same outputs to within float noise
ATOL, RTOL = 1e-4, 1e-3


class SurgeryError(OnnxDeployError, ValueError):
    """An edit cannot be made as asked: a name that does not exist or already exists, a
    dim out of range, models that do not fit together, or an edit that changed outputs."""


# --- IR versions -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def ort_max_ir_version() -> int:
    """The highest ONNX IR version the installed onnxruntime loads (probed once with a
    one-node model: onnxruntime has no API that says it)."""
    import onnxruntime as ort

    from onnx_deploy.sessions import quiet_logs

    quiet_logs()
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    for version in range(onnx.IR_VERSION, 6, -1):
        probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        probe.ir_version = version
        try:
            ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:
            continue
        return version
    return 7


def loadable_ir_version(model: onnx.ModelProto) -> int:
    """The IR version to write: the file's own, lowered to what onnxruntime loads, but
    never below what the model's opsets need."""
    needed = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    return max(needed, min(int(model.ir_version), ort_max_ir_version()))


def fix_ir_version(model: onnx.ModelProto) -> onnx.ModelProto:
    """Set ``model.ir_version`` to ``loadable_ir_version`` (in place); returns the model."""
    model.ir_version = loadable_ir_version(model)
    return model


# --- names -----------------------------------------------------------------------------


def _graphs(graph: onnx.GraphProto) -> Iterable[onnx.GraphProto]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def tensor_names(model: onnx.ModelProto) -> set[str]:
    """Every tensor name in the model: inputs, outputs, initializers, node edges."""
    names: set[str] = set()
    for g in _graphs(model.graph):
        names.update(v.name for v in (*g.input, *g.output, *g.value_info))
        names.update(i.name for i in g.initializer)
        for n in g.node:
            names.update(x for x in (*n.input, *n.output) if x)
    return names


def list_tensors(model: onnx.ModelProto) -> list[tuple[str, str, TensorSpec | None]]:
    """Every node output in graph order: (tensor, producing op, inferred spec or None):
    the names that ``expose`` and ``extract`` take."""
    from onnx_deploy.modelinfo import _spec

    infos = _inferred(model)
    return [
        (name, node.op_type, _spec(infos[name]) if name in infos else None)
        for node in model.graph.node
        for name in node.output
        if name
    ]


def _nearest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _io_names(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    inputs, outputs = graph_io(model)
    return [s.name for s in inputs], [s.name for s in outputs]


def _require_tensor(model: onnx.ModelProto, name: str, what: str = "tensor") -> None:
    names = tensor_names(model)
    if name not in names:
        ins, outs = _io_names(model)
        raise SurgeryError(
            f"no {what} named {name!r} in the model{_nearest(name, names)}. Inputs: {ins}; "
            f"outputs: {outs}; list every tensor with `onnx-deploy inspect MODEL --tensors`."
        )


def _rename_everywhere(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    """Rename tensors in place in every graph: edges, I/O, initializers, value infos."""
    for g in _graphs(model.graph):
        for v in (*g.input, *g.output, *g.value_info):
            v.name = mapping.get(v.name, v.name)
        for i in g.initializer:
            i.name = mapping.get(i.name, i.name)
        for n in g.node:
            n.input[:] = [mapping.get(x, x) for x in n.input]
            n.output[:] = [mapping.get(x, x) for x in n.output]


def rename(model: onnx.ModelProto, mapping: Mapping[str, str]) -> onnx.ModelProto:
    """Rename graph inputs and outputs (``{"input": "image", "logits": "scores"}``).

    Each old name must be a graph input or output, and each new name must not already
    name a tensor (the graph would then have two producers, or a cycle)."""
    ins, outs = _io_names(model)
    names = tensor_names(model)
    for old, new in mapping.items():
        if old not in ins and old not in outs:
            raise SurgeryError(
                f"{old!r} is not a graph input or output{_nearest(old, ins + outs)}; "
                f"inputs: {ins}, outputs: {outs}"
            )
        if not new or not isinstance(new, str):
            raise SurgeryError(f"the new name for {old!r} is empty")
        if new in names and new not in mapping:
            raise SurgeryError(
                f"cannot rename {old!r} to {new!r}: a tensor named {new!r} already exists "
                "in the graph; choose another name"
            )
    targets = list(mapping.values())
    if len(set(targets)) != len(targets):
        raise SurgeryError(f"two tensors cannot take the same new name: {targets}")
    out = copy.deepcopy(model)
    _rename_everywhere(out, mapping)
    return fix_ir_version(out)


# --- dims ------------------------------------------------------------------------------


def _dims(value_info: onnx.ValueInfoProto) -> Any:
    return value_info.type.tensor_type.shape.dim


def dim_symbols(model: onnx.ModelProto) -> list[str]:
    """The symbolic dim names used by the graph's inputs and outputs, in order."""
    seen: dict[str, None] = {}
    for v in (*model.graph.input, *model.graph.output):
        for d in _dims(v):
            if d.dim_param:
                seen[d.dim_param] = None
    return list(seen)


def parse_dim_edit(text: str) -> tuple[str, int | None, int | str]:
    """``batch=1`` (a symbol, everywhere) or ``input[0]=batch`` (one axis of one tensor)
    -> (symbol or tensor, axis or None, new value: an int fixes, a name makes symbolic)."""
    target, sep, value_text = text.partition("=")
    if not sep or not target or not value_text:
        raise SurgeryError(f"expected DIM=VALUE or TENSOR[AXIS]=VALUE, got {text!r}")
    axis = None
    if target.endswith("]") and "[" in target:
        target, _, axis_text = target[:-1].rpartition("[")
        try:
            axis = int(axis_text)
        except ValueError:
            raise SurgeryError(f"axis must be an integer in {text!r}") from None
    value: int | str = int(value_text) if value_text.lstrip("-").isdigit() else value_text
    if isinstance(value, int) and value < 1:
        raise SurgeryError(f"a fixed dim must be at least 1, got {value} in {text!r}")
    if isinstance(value, str) and not value.isidentifier():
        raise SurgeryError(f"a symbolic dim needs a name like 'batch', got {value_text!r}")
    return target, axis, value


def set_dims(
    model: onnx.ModelProto, edits: Mapping[str, int | str] | Sequence[str]
) -> onnx.ModelProto:
    """Fix dims (an int) or make them symbolic (a name) on the graph's inputs/outputs.

    Keys are a symbolic dim's name (``batch``: every input and output axis carrying it)
    or ``tensor[axis]`` (one axis). A list of ``"KEY=VALUE"`` strings works too. Shapes
    inside the graph are re-inferred afterwards. Whether the graph really accepts a new
    size is then checked by running it (``edit_file``): a size baked into a Reshape by
    the exporter shows up there, not here."""
    items = (
        [parse_dim_edit(t) for t in edits]
        if not isinstance(edits, Mapping)
        else [parse_dim_edit(f"{k}={v}") for k, v in edits.items()]
    )
    out = copy.deepcopy(model)
    io = {v.name: v for v in (*out.graph.input, *out.graph.output)}
    symbols = dim_symbols(out)
    for target, axis, value in items:
        if axis is None:
            if target not in symbols:
                raise SurgeryError(
                    f"no dim named {target!r}{_nearest(target, symbols)}; the graph's symbolic "
                    f"dims are {symbols or 'none'}. Name one axis with TENSOR[AXIS]=VALUE."
                )
            places = [d for v in io.values() for d in _dims(v) if d.dim_param == target]
        else:
            if target not in io:
                raise SurgeryError(
                    f"{target!r} is not a graph input or output{_nearest(target, list(io))}; "
                    f"those are {list(io)}"
                )
            dims = _dims(io[target])
            if not -len(dims) <= axis < len(dims):
                raise SurgeryError(f"{target} has {len(dims)} dims; axis {axis} is out of range")
            places = [dims[axis]]
        for d in places:
            if isinstance(value, int):
                d.dim_value = value  # clears dim_param (a oneof)
            else:
                d.dim_param = value
    del out.graph.value_info[:]  # stale intermediate shapes: infer them again
    out = onnx.shape_inference.infer_shapes(out, strict_mode=False)
    return fix_ir_version(out)


# --- outputs and subgraphs -------------------------------------------------------------


def _inferred(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    return {v.name: v for v in (*g.value_info, *g.input, *g.output)}


def expose(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """Add intermediate tensors as extra graph outputs (to inspect or reuse them)."""
    infos = _inferred(model)
    _, outs = _io_names(model)
    out = copy.deepcopy(model)
    for name in tensors:
        _require_tensor(model, name)
        if name in outs:
            raise SurgeryError(f"{name!r} is already a graph output")
        if name in infos:
            out.graph.output.append(copy.deepcopy(infos[name]))
        else:
            raise SurgeryError(
                f"the type of {name!r} cannot be inferred (an initializer or a custom op's "
                "output); expose a tensor that a standard node produces"
            )
    return fix_ir_version(out)


def extract(
    model: onnx.ModelProto, inputs: Sequence[str], outputs: Sequence[str]
) -> onnx.ModelProto:
    """The subgraph that computes ``outputs`` from ``inputs`` (onnx.utils.Extractor)."""
    for name in (*inputs, *outputs):
        _require_tensor(model, name)
    inits = {i.name for i in model.graph.initializer}
    if bad := [n for n in inputs if n in inits]:
        raise SurgeryError(f"{bad} are weights (initializers), not activations; cut elsewhere")
    try:
        sub = onnx.utils.Extractor(model).extract_model(list(inputs), list(outputs))
    except Exception as e:  # pragma: no cover - the Extractor's own errors
        raise SurgeryError(f"onnx.utils.Extractor failed: {e}") from e
    reached = _reachable_inputs(sub, outputs)
    if unused := [n for n in inputs if n not in reached]:
        raise SurgeryError(
            f"the outputs {list(outputs)} do not depend on {unused}: cut between a tensor "
            "and the tensors computed from it"
        )
    missing = [i.name for i in sub.graph.input if i.name not in set(inputs) | inits]
    if missing:
        raise SurgeryError(
            f"the outputs also depend on {missing}, which are not among the inputs: add them "
            "to the inputs or cut later"
        )
    sub.graph.name = f"{model.graph.name}_extract"
    return fix_ir_version(sub)


def _reachable_inputs(model: onnx.ModelProto, outputs: Sequence[str]) -> set[str]:
    producers = {o: n for n in model.graph.node for o in n.output}
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in producers:
            stack.extend(x for x in producers[name].input if x)
    return seen


def convert_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The model at another opset of the default domain (onnx.version_converter)."""
    current = default_opset(model)
    if opset == current:
        return fix_ir_version(copy.deepcopy(model))
    try:
        converted = onnx.version_converter.convert_version(model, opset)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        first = first.split("failed: ")[-1][:300]  # drop the C++ file and line
        raise SurgeryError(
            f"onnx's version converter cannot take this model from opset {current} to "
            f"{opset}: {first}. Convert to an opset it can reach, or re-export from PyTorch "
            "at the opset you need (export_model(..., opset=N); CLI: onnx-deploy export "
            "--opset N)."
        ) from e
    return fix_ir_version(converted)


# --- merging ---------------------------------------------------------------------------


def _prefix_internal(model: onnx.ModelProto, prefix: str, keep: Iterable[str]) -> None:
    """Prefix every tensor name except graph inputs/outputs and ``keep`` (in place)."""
    ins, outs = _io_names(model)
    fixed = set(ins) | set(outs) | set(keep)
    _rename_everywhere(model, {n: prefix + n for n in tensor_names(model) if n not in fixed})
    for n in model.graph.node:
        if n.name:
            n.name = prefix + n.name


def _align(first: onnx.ModelProto, second: onnx.ModelProto) -> tuple[Any, Any]:
    """Both models at one opset and one IR version, as onnx.compose requires."""
    target = max(default_opset(first), default_opset(second))
    first, second = convert_opset(first, target), convert_opset(second, target)
    ir = max(first.ir_version, second.ir_version)
    first.ir_version = second.ir_version = ir
    return first, second


def merge(
    first: onnx.ModelProto,
    second: onnx.ModelProto,
    io_map: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
    *,
    prefix: str = "",
) -> onnx.ModelProto:
    """Chain two models: outputs of ``first`` feed inputs of ``second`` (onnx.compose).

    ``io_map``: (first's output, second's input) pairs; default: by name where second's
    inputs are all first's outputs, else by position when the counts match. Types and
    ranks must match. Internal names that clash get ``prefix`` (default: second's graph
    name) in ``second``. The merged graph keeps first's inputs and second's outputs."""
    _f_ins, f_outs = graph_io(first)
    s_ins, s_outs = graph_io(second)
    f_by, s_by = {s.name: s for s in f_outs}, {s.name: s for s in s_ins}
    if io_map is None:
        if set(s_by) <= set(f_by):
            pairs = [(n, n) for n in s_by]
        elif len(f_outs) == len(s_ins):
            pairs = [(a.name, b.name) for a, b in zip(f_outs, s_ins, strict=True)]
        else:
            raise SurgeryError(
                "cannot pair the models: the first has outputs "
                f"{describe_all(f_outs)}, the second inputs {describe_all(s_ins)}; pass io_map "
                "(CLI: --map OUTPUT=INPUT)"
            )
    else:
        pairs = list(io_map.items()) if isinstance(io_map, Mapping) else list(io_map)
    for a, b in pairs:
        if a not in f_by:
            raise SurgeryError(
                f"{a!r} is not an output of the first model{_nearest(a, f_by)}; its outputs: "
                f"{describe_all(f_outs)}"
            )
        if b not in s_by:
            raise SurgeryError(
                f"{b!r} is not an input of the second model{_nearest(b, s_by)}; its inputs: "
                f"{describe_all(s_ins)}"
            )
        fa, sb = f_by[a], s_by[b]
        if fa.dtype != sb.dtype or len(fa.shape) != len(sb.shape):
            raise SurgeryError(f"the models do not fit: {fa} feeds {sb} (dtype or rank differ)")
        for da, db in zip(fa.shape, sb.shape, strict=True):
            if isinstance(da, int) and isinstance(db, int) and da != db:
                raise SurgeryError(f"the models do not fit: {fa} feeds {sb} (sizes differ)")
    fed = {b for _, b in pairs}
    if unfed := [s.name for s in s_ins if s.name not in fed]:
        raise SurgeryError(
            f"the second model's inputs {unfed} would be left unfed; map them in io_map"
        )
    first, second = _align(first, second)
    second = copy.deepcopy(second)
    clash = (tensor_names(first) & tensor_names(second)) - {b for a, b in pairs if a == b}
    if clash:
        _prefix_internal(second, prefix or (second.graph.name or "second") + "/", ())
        s_out_names = {s.name for s in s_outs}
        if io_clash := sorted((tensor_names(first) & tensor_names(second)) - fed - s_out_names):
            raise SurgeryError(f"inputs of the second model clash with the first: {io_clash}")
        if out_clash := sorted(s_out_names & (tensor_names(first) - {a for a, _ in pairs})):
            raise SurgeryError(
                f"both models have a tensor named {out_clash}: rename the second model's "
                "outputs first (rename(...); CLI: onnx-deploy edit rename)"
            )
    # dim names of the second model's outputs follow the first's where a dim is shared
    merged = onnx.compose.merge_models(
        first,
        second,
        io_map=pairs,
        outputs=[s.name for s in s_outs],
        prefix1="",
        prefix2="",
        name=f"{first.graph.name}+{second.graph.name}",
    )
    merged.producer_name = first.producer_name or "onnx-deploy"
    return fix_ir_version(merged)


# --- pre- and post-processing ----------------------------------------------------------


def _const(name: str, values: Sequence[float] | np.ndarray, dtype: Any = np.float32) -> Any:
    arr = np.asarray(values, dtype=dtype)
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(arr, name))


def _image_spec(model: onnx.ModelProto, input_name: str | None) -> TensorSpec:
    ins, _ = graph_io(model)
    if input_name is None:
        if len(ins) != 1:
            raise SurgeryError(
                f"the model has {len(ins)} inputs ({describe_all(ins)}); name the image input"
            )
        spec = ins[0]
    else:
        found = [s for s in ins if s.name == input_name]
        if not found:
            names = [s.name for s in ins]
            raise SurgeryError(
                f"{input_name!r} is not an input of the model{_nearest(input_name, names)}; "
                f"inputs: {describe_all(ins)}"
            )
        spec = found[0]
    channels = spec.shape[1] if len(spec.shape) == 4 else None
    if spec.dtype != "float32" or len(spec.shape) != 4 or channels not in (1, 3):
        raise SurgeryError(
            f"{spec} is not an image input: preprocessing needs float32 (batch, 1 or 3, "
            "height, width) with the channel count fixed"
        )
    return spec


def preprocessing_graph(
    image: TensorSpec,
    *,
    pixels_name: str = "pixels",
    layout: str = "NHWC",
    resize: int | None = None,
    crop: tuple[int, int] | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    scale: float = 1 / 255,
    antialias: bool = True,
    opset: int = 18,
) -> onnx.ModelProto:
    """A standalone graph: uint8 pixels in (``NHWC`` as images decode, or ``NCHW``),
    ``image`` (float32 NCHW) out. Steps, each optional: resize so the shorter side is
    ``resize`` (bilinear, torchvision's ``Resize(int)`` sizes), center-crop to ``crop``
    (default: the image input's fixed height and width, when resizing), then
    ``(pixels * scale - mean) / std`` per channel."""
    if layout not in ("NHWC", "NCHW"):
        raise SurgeryError(f"layout must be NHWC or NCHW, got {layout!r}")
    channels = int(image.shape[1])  # type: ignore[arg-type]
    height, width = image.shape[2], image.shape[3]
    if resize is not None and crop is None:
        if not (isinstance(height, int) and isinstance(width, int)):
            raise SurgeryError(
                f"{image} has a symbolic height or width: give the crop size with resize"
            )
        crop = (height, width)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise SurgeryError(f"{name} has {len(values)} values for {channels} channels")
    if any(s == 0 for s in std):
        raise SurgeryError("std must not contain 0")
    batch = image.shape[0] if image.shape[0] is not None else "batch"
    if resize is not None or crop is not None:
        hw: tuple[Any, Any] = ("height", "width")
    else:
        hw = (height, width)
    pix_shape = (batch, *hw, channels) if layout == "NHWC" else (batch, channels, *hw)
    nodes = [helper.make_node("Cast", [pixels_name], ["pre/float"], to=TensorProto.FLOAT)]
    x = "pre/float"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", [x], ["pre/nchw"], perm=[0, 3, 1, 2]))
        x = "pre/nchw"
    if resize is not None:
        # torchvision's Resize(S): the shorter side becomes S, the longer floor(S*long/short)
        nodes += [
            helper.make_node("Shape", [x], ["pre/shape"]),
            _const("pre/i2", [2], np.int64),
            _const("pre/i3", [3], np.int64),
            _const("pre/i4", [4], np.int64),
            _const("pre/i0", [0], np.int64),
            _const("pre/S", [resize], np.int64),
            helper.make_node("Slice", ["pre/shape", "pre/i0", "pre/i2"], ["pre/nc"]),
            helper.make_node("Slice", ["pre/shape", "pre/i2", "pre/i3"], ["pre/h"]),
            helper.make_node("Slice", ["pre/shape", "pre/i3", "pre/i4"], ["pre/w"]),
            helper.make_node("LessOrEqual", ["pre/w", "pre/h"], ["pre/portrait"]),
            helper.make_node("Mul", ["pre/S", "pre/h"], ["pre/Sh"]),
            helper.make_node("Mul", ["pre/S", "pre/w"], ["pre/Sw"]),
            helper.make_node("Div", ["pre/Sh", "pre/w"], ["pre/h_long"]),
            helper.make_node("Div", ["pre/Sw", "pre/h"], ["pre/w_long"]),
            helper.make_node("Where", ["pre/portrait", "pre/h_long", "pre/S"], ["pre/new_h"]),
            helper.make_node("Where", ["pre/portrait", "pre/S", "pre/w_long"], ["pre/new_w"]),
            helper.make_node("Concat", ["pre/nc", "pre/new_h", "pre/new_w"], ["pre/sizes"], axis=0),
            helper.make_node(
                "Resize",
                [x, "", "", "pre/sizes"],
                ["pre/resized"],
                mode="linear",
                antialias=int(antialias),
            ),
        ]
        x = "pre/resized"
    if crop is not None:
        nodes += [
            _const("pre/crop", list(crop), np.int64),
            helper.make_node("CenterCropPad", [x, "pre/crop"], ["pre/cropped"], axes=[2, 3]),
        ]
        x = "pre/cropped"
    m = np.broadcast_to(np.asarray(mean, np.float64), (channels,))
    s = np.broadcast_to(np.asarray(std, np.float64), (channels,))
    nodes += [
        _const("pre/mul", (scale / s).reshape(1, channels, 1, 1)),
        _const("pre/add", (-m / s).reshape(1, channels, 1, 1)),
        helper.make_node("Mul", [x, "pre/mul"], ["pre/scaled"]),
        helper.make_node("Add", ["pre/scaled", "pre/add"], [image.name]),
    ]
    out_hw = crop if crop is not None else hw
    graph = helper.make_graph(
        nodes,
        "preprocess",
        [helper.make_tensor_value_info(pixels_name, TensorProto.UINT8, list(pix_shape))],
        [helper.make_tensor_value_info(image.name, TensorProto.FLOAT, [batch, channels, *out_hw])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.producer_name = "onnx-deploy"
    return fix_ir_version(model)


def reference_preprocess(
    pixels: np.ndarray,
    *,
    layout: str = "NHWC",
    crop: tuple[int, int] | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    scale: float = 1 / 255,
) -> np.ndarray:
    """The same preprocessing in numpy (no resize): the check ``add_preprocessing`` is
    held to, and what a client does when the graph has none."""
    x = pixels.astype(np.float32)
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if crop is not None:
        h, w = x.shape[2:]
        top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
        x = x[:, :, top : top + crop[0], left : left + crop[1]]
    c = x.shape[1]
    m = np.broadcast_to(np.asarray(mean, np.float32), (c,)).reshape(1, c, 1, 1)
    s = np.broadcast_to(np.asarray(std, np.float32), (c,)).reshape(1, c, 1, 1)
    return ((x * np.float32(scale) - m) / s).astype(np.float32)


def add_preprocessing(
    model: onnx.ModelProto, input_name: str | None = None, **options: Any
) -> onnx.ModelProto:
    """Embed image preprocessing: the model then takes uint8 pixels (``pixels``, NHWC by
    default) instead of a normalised float tensor. ``options``: see
    ``preprocessing_graph`` (``resize``, ``crop``, ``mean``, ``std``, ``scale``,
    ``layout``, ``pixels_name``). Refused for an input that is not an image."""
    image = _image_spec(model, input_name)
    pixels_name = options.get("pixels_name", "pixels")
    if pixels_name in tensor_names(model):
        raise SurgeryError(
            f"the model already has a tensor named {pixels_name!r}; pick another pixels_name"
        )
    pre = preprocessing_graph(image, opset=max(18, default_opset(model)), **options)
    return merge(pre, model, [(image.name, image.name)], prefix="pre/")


def postprocessing_graph(
    logits: TensorSpec, *, softmax: bool = True, top_k: int | None = None, opset: int = 18
) -> onnx.ModelProto:
    """A standalone graph on a (batch, classes) output: ``probabilities`` (softmax) and,
    with ``top_k``, ``scores`` (float32) and ``labels`` (int64, best first)."""
    if len(logits.shape) != 2 or logits.dtype not in ("float32", "float16"):
        raise SurgeryError(
            f"{logits} is not (batch, classes) float scores: softmax/top-k postprocessing "
            "needs a 2-D float output"
        )
    classes = logits.shape[1]
    if top_k is not None and (top_k < 1 or (isinstance(classes, int) and top_k > classes)):
        raise SurgeryError(f"top_k must be between 1 and {classes}, got {top_k}")
    if not softmax and top_k is None:
        raise SurgeryError("nothing to add: ask for softmax, top_k or both")
    nodes, outputs = [], []
    elem = TensorProto.FLOAT if logits.dtype == "float32" else TensorProto.FLOAT16
    batch = logits.shape[0] if logits.shape[0] is not None else "batch"
    x = logits.name
    if softmax:
        nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=-1))
        outputs.append(helper.make_tensor_value_info("probabilities", elem, [batch, classes]))
        x = "probabilities"
    if top_k is not None:
        nodes += [
            _const("post/k", [top_k], np.int64),
            helper.make_node("TopK", [x, "post/k"], ["scores", "labels"], axis=-1),
        ]
        outputs += [
            helper.make_tensor_value_info("scores", elem, [batch, top_k]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [batch, top_k]),
        ]
    graph = helper.make_graph(
        nodes,
        "postprocess",
        [helper.make_tensor_value_info(logits.name, elem, [batch, classes])],
        outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return fix_ir_version(model)


def add_postprocessing(
    model: onnx.ModelProto,
    output_name: str | None = None,
    *,
    softmax: bool = True,
    top_k: int | None = None,
    keep_logits: bool = False,
) -> onnx.ModelProto:
    """Append softmax and/or top-k to a classifier output; ``keep_logits`` keeps the
    original output as well."""
    _, outs = graph_io(model)
    if output_name is None:
        if len(outs) != 1:
            raise SurgeryError(
                f"the model has {len(outs)} outputs ({describe_all(outs)}); name the scores output"
            )
        spec = outs[0]
    else:
        found = [s for s in outs if s.name == output_name]
        if not found:
            names = [s.name for s in outs]
            raise SurgeryError(
                f"{output_name!r} is not an output of the model{_nearest(output_name, names)}; "
                f"outputs: {describe_all(outs)}"
            )
        spec = found[0]
    post = postprocessing_graph(
        spec, softmax=softmax, top_k=top_k, opset=max(18, default_opset(model))
    )
    merged = merge(model, post, [(spec.name, spec.name)], prefix="post/")
    if keep_logits:
        merged.graph.output.insert(0, copy.deepcopy(_inferred(model)[spec.name]))
    return merged


# --- running and checking --------------------------------------------------------------


def _session(model: onnx.ModelProto, folder: str) -> Any:
    from onnx_deploy.sessions import create_session

    if over_protobuf_limit(model):
        path = Path(folder) / f"m{len(os.listdir(folder))}.onnx"
        write_onnx(model, path, external_data=True)
        return create_session(path, "cpu")
    return create_session(model.SerializeToString(), "cpu")


def _run(session: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a session; a failure raises without onnxruntime also logging it to stderr."""
    import onnxruntime as ort

    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds), quiet), strict=True))


def _random_feeds(specs: Sequence[TensorSpec], sizes: Mapping[str, int], seed: int) -> Any:
    from onnx_deploy.signature import Signature

    sig = Signature.from_specs(specs)
    names = {d.name for d in sig.dims}
    known = {k: v for k, v in sizes.items() if k in names}
    return sig.examples({**dict.fromkeys(names, 2), **known}, seed=seed)


@dataclass(frozen=True)
class EditCheck:
    """How an edit was checked numerically: which outputs were compared, the largest
    absolute difference, and whether it is within float noise (atol 1e-4, rtol 1e-3)."""

    compared: tuple[str, ...]
    max_abs: float
    ok: bool
    how: str

    def line(self) -> str:
        mark = "ok" if self.ok else "CHANGED"
        return f"{self.how}: {', '.join(self.compared)} max abs {self.max_abs:.1e} {mark}"


def _close(pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], how: str) -> EditCheck:
    worst, ok = 0.0, True
    for name, a, b in pairs:
        if a.shape != b.shape:
            raise SurgeryError(f"{name}: shape changed from {a.shape} to {b.shape}")
        if a.dtype.kind in "iub":
            diff = float(np.abs(a.astype(np.int64) - b.astype(np.int64)).max(initial=0))
            ok = ok and diff == 0
        else:
            diff = float(np.abs(a.astype(np.float64) - b).max(initial=0.0))
            ok = ok and bool(np.allclose(b, a, atol=ATOL, rtol=RTOL))
        worst = max(worst, diff)
    return EditCheck(tuple(n for n, _, _ in pairs), worst, ok, how)


def check_same_outputs(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    *,
    input_map: Mapping[str, str] | None = None,
    output_map: Mapping[str, str] | None = None,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> EditCheck:
    """Run both models on the same random inputs (renamed by ``input_map``) and compare
    the outputs they share (``output_map``: before's name -> after's)."""
    input_map, output_map = dict(input_map or {}), dict(output_map or {})
    b_ins, b_outs = graph_io(before)
    _, a_outs = graph_io(after)
    feeds = _random_feeds(b_ins, sizes or {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        ref = _run(_session(before, tmp), feeds)
        got = _run(_session(after, tmp), {input_map.get(k, k): v for k, v in feeds.items()})
    after_names = {s.name for s in a_outs}
    pairs = [
        (output_map.get(s.name, s.name), ref[s.name], got[output_map.get(s.name, s.name)])
        for s in b_outs
        if output_map.get(s.name, s.name) in after_names
    ]
    if not pairs:
        raise SurgeryError("the edited model shares no output with the original to compare")
    shape = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
    return _close(pairs, f"same random inputs ({shape})")


def check_preprocessing(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    *,
    pixels_name: str = "pixels",
    image_name: str | None = None,
    layout: str = "NHWC",
    resize: int | None = None,
    crop: tuple[int, int] | None = None,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    scale: float = 1 / 255,
    seed: int = 0,
    **_: Any,
) -> EditCheck:
    """Raw pixels through the edited model vs the numpy preprocessing then the original
    model. With ``resize`` the pixels are sized so that resizing is the identity (shorter
    side already ``resize``): the resampling itself is onnxruntime's Resize (compared with
    torchvision's in notebook 07)."""
    image = _image_spec(before, image_name)
    pix = next(s for s in graph_io(after)[0] if s.name == pixels_name)
    channels = int(image.shape[1])  # type: ignore[arg-type]
    if resize is not None:
        hw = (resize, resize + 3) if crop is None or crop[1] < resize + 3 else (resize, crop[1])
    else:
        hw = tuple(  # type: ignore[assignment]
            int(d) if isinstance(d, int) else (crop[i] + 2 if crop else 16)
            for i, d in enumerate(pix.shape[1:3] if layout == "NHWC" else pix.shape[2:4])
        )
    shape = (2, *hw, channels) if layout == "NHWC" else (2, channels, *hw)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    image_crop = crop
    if resize is not None and crop is None:
        image_crop = (int(image.shape[2]), int(image.shape[3]))  # type: ignore[arg-type]
    x = reference_preprocess(
        pixels, layout=layout, crop=image_crop, mean=mean, std=std, scale=scale
    )
    with tempfile.TemporaryDirectory() as tmp:
        ref = _run(_session(before, tmp), {image.name: x})
        got = _run(_session(after, tmp), {pixels_name: pixels})
    pairs = [(n, ref[n], got[n]) for n in ref if n in got]
    return _close(pairs, f"uint8 pixels {list(shape)} vs numpy preprocessing + original")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_postprocessing(
    before: onnx.ModelProto,
    after: onnx.ModelProto,
    *,
    output_name: str | None = None,
    softmax: bool = True,
    top_k: int | None = None,
    seed: int = 0,
    **_: Any,
) -> EditCheck:
    """The edited model's probabilities / top-k vs numpy on the original's scores."""
    b_ins, b_outs = graph_io(before)
    name = output_name or b_outs[0].name
    feeds = _random_feeds(b_ins, {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        logits = _run(_session(before, tmp), feeds)[name]
        got = _run(_session(after, tmp), feeds)
    probs = _softmax(logits.astype(np.float64)).astype(np.float32) if softmax else logits
    pairs = []
    if softmax:
        pairs.append(("probabilities", probs, got["probabilities"]))
    if top_k is not None:
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :top_k]
        pairs.append(("scores", np.take_along_axis(probs, order, -1), got["scores"]))
        pairs.append(("labels", order.astype(np.int64), got["labels"]))
    return _close(pairs, "vs numpy softmax/top-k of the original's scores")


def check_extract(
    before: onnx.ModelProto, after: onnx.ModelProto, *, seed: int = 0, **_: Any
) -> EditCheck:
    """The subgraph fed the original's own intermediate values, vs the original's."""
    sub_ins, sub_outs = graph_io(after)
    wanted = [s.name for s in (*sub_ins, *sub_outs)]
    b_ins, b_outs = _io_names(before)
    exposed = expose(before, [n for n in wanted if n not in b_outs and n not in b_ins])
    feeds = _random_feeds(graph_io(before)[0], {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        full = {**feeds, **_run(_session(exposed, tmp), feeds)}
        got = _run(_session(after, tmp), {s.name: full[s.name] for s in sub_ins})
    return _close(
        [(s.name, full[s.name], got[s.name]) for s in sub_outs],
        "fed the original's intermediate values",
    )


def check_merge(
    first: onnx.ModelProto,
    second: onnx.ModelProto,
    merged: onnx.ModelProto,
    io_map: Sequence[tuple[str, str]],
    seed: int = 0,
) -> EditCheck:
    """The merged model vs the two models run one after the other."""
    feeds = _random_feeds(graph_io(first)[0], {}, seed)
    with tempfile.TemporaryDirectory() as tmp:
        mid = _run(_session(first, tmp), feeds)
        ref = _run(_session(second, tmp), {b: mid[a] for a, b in io_map})
        got = _run(_session(merged, tmp), feeds)
    return _close([(n, ref[n], got[n]) for n in ref if n in got], "vs the two models in turn")


# --- files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EditResult:
    """One edit of one file: the signature before and after, and the numeric check."""

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


def _full_check(model: onnx.ModelProto, what: str) -> None:
    try:
        if over_protobuf_limit(model):
            return  # the checker takes a path for these; onnxruntime loads it below
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        first = (str(e).strip().splitlines() or ["invalid"])[0][:300]
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
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
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
        i.data_location == TensorProto.EXTERNAL for g in _graphs(model.graph) for i in g.initializer
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
    ``preprocess`` (``preprocessing_graph``'s options, ``input_name``), ``postprocess``
    (``output_name``, ``softmax``, ``top_k``, ``keep_logits``), ``merge`` (``other``: the
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
    ins, _ = _io_names(m)
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
            f"the edited model does not run at the sizes asked for: {str(e).splitlines()[0][:300]}"
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
        session = _session(model, tmp)
        for size in (1, 3):
            feeds = _random_feeds(ins, dict.fromkeys(symbols, size), 0)
            try:
                _run(session, feeds)
            except Exception as e:
                first = (str(e).strip().splitlines() or [""])[0][:240]
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


def _edit_preprocess(m: onnx.ModelProto, input_name: str | None = None, **options: Any) -> Any:
    after = add_preprocessing(m, input_name, **options)
    check = check_preprocessing(m, after, image_name=input_name, **options)
    steps = ["uint8 " + options.get("layout", "NHWC")]
    if options.get("resize"):
        steps.append(f"resize shorter side to {options['resize']}")
    if options.get("crop") or options.get("resize"):
        steps.append(f"center crop {options.get('crop') or 'to the model size'}")
    steps.append("(x * scale - mean) / std")
    return after, check, [" -> ".join(steps)]


def _edit_postprocess(m: onnx.ModelProto, **options: Any) -> Any:
    after = add_postprocessing(m, **options)
    return after, check_postprocessing(m, after, **options), []


def _edit_merge(
    m: onnx.ModelProto,
    other: str | os.PathLike[str],
    io_map: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
    first: bool = False,
) -> Any:
    o = load_onnx(other)
    a, b = (o, m) if first else (m, o)
    merged = merge(a, b, io_map)
    b_ins = {s.name for s in graph_io(b)[0]}
    a_outs = [s.name for s in graph_io(a)[1]]
    pairs = (
        list(io_map.items()) if isinstance(io_map, Mapping) else list(io_map)
        if io_map is not None
        else [(n, n) for n in b_ins] if b_ins <= set(a_outs)
        else list(zip(a_outs, [s.name for s in graph_io(b)[0]], strict=True))
    )  # fmt: skip
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
