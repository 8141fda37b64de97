"""Graph edits on ``onnx.ModelProto``: IR versions, names, dims, outputs, subgraphs,
opsets and merging. Each returns a new model and never changes its input."""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import onnx
from onnx import TensorProto
from onnx import helper

from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.errors import SurgeryError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import describe_all
from onnx_deploy.infer.modelinfo import default_opset
from onnx_deploy.infer.modelinfo import graph_io

EDITS = (
    "rename", "dim", "expose", "extract", "opset", "preprocess", "postprocess", "merge",
    "external",
)  # fmt: skip

# --- IR versions -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def ort_max_ir_version() -> int:
    """The highest ONNX IR version the installed onnxruntime loads (probed once with a
    one-node model: onnxruntime has no API that says it)."""
    from onnx_deploy.infer.providers import quiet_logs
    from onnx_deploy.infer.sessions import create_session

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
            create_session(probe.SerializeToString(), "cpu")
        except ModelFileError:  # the session factory's answer to a file it cannot load
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


def all_graphs(graph: onnx.GraphProto) -> Iterable[onnx.GraphProto]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from all_graphs(g)


def tensor_names(model: onnx.ModelProto) -> set[str]:
    """Every tensor name in the model: inputs, outputs, initializers, node edges."""
    names: set[str] = set()
    for g in all_graphs(model.graph):
        names.update(v.name for v in (*g.input, *g.output, *g.value_info))
        names.update(i.name for i in g.initializer)
        for n in g.node:
            names.update(x for x in (*n.input, *n.output) if x)
    return names


def list_tensors(model: onnx.ModelProto) -> list[tuple[str, str, TensorSpec | None]]:
    """Every node output in graph order: (tensor, producing op, inferred spec or None):
    the names that ``expose`` and ``extract`` take."""
    from onnx_deploy.infer.modelinfo import value_info_spec

    infos = inferred_types(model)
    return [
        (name, node.op_type, value_info_spec(infos[name]) if name in infos else None)
        for node in model.graph.node
        for name in node.output
        if name
    ]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def io_names(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    inputs, outputs = graph_io(model)
    return [s.name for s in inputs], [s.name for s in outputs]


def _require_tensor(model: onnx.ModelProto, name: str, what: str = "tensor") -> None:
    names = tensor_names(model)
    if name not in names:
        ins, outs = io_names(model)
        raise SurgeryError(
            f"no {what} named {name!r} in the model{did_you_mean(name, names)}. Inputs: {ins}; "
            f"outputs: {outs}; list every tensor with `onnx-deploy inspect MODEL --tensors`."
        )


def _rename_everywhere(model: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    """Rename tensors in place in every graph: edges, I/O, initializers, value infos."""
    for g in all_graphs(model.graph):
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
    ins, outs = io_names(model)
    names = tensor_names(model)
    for old, new in mapping.items():
        if old not in ins and old not in outs:
            raise SurgeryError(
                f"{old!r} is not a graph input or output{did_you_mean(old, ins + outs)}; "
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
                    f"no dim named {target!r}{did_you_mean(target, symbols)}; the graph's symbolic "
                    f"dims are {symbols or 'none'}. Name one axis with TENSOR[AXIS]=VALUE."
                )
            places = [d for v in io.values() for d in _dims(v) if d.dim_param == target]
        else:
            if target not in io:
                raise SurgeryError(
                    f"{target!r} is not a graph input or output{did_you_mean(target, list(io))}; "
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


def inferred_types(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    g = inferred.graph
    return {v.name: v for v in (*g.value_info, *g.input, *g.output)}


def expose(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """Add intermediate tensors as extra graph outputs (to inspect or reuse them)."""
    from onnx_deploy.infer.intermediates import expose_tensors

    infos = inferred_types(model)
    _, outs = io_names(model)
    for name in tensors:
        _require_tensor(model, name)
        if name in outs:
            raise SurgeryError(f"{name!r} is already a graph output")
        if name not in infos:
            raise SurgeryError(
                f"the type of {name!r} cannot be inferred (an initializer or a custom op's "
                "output); expose a tensor that a standard node produces"
            )
    out, _ = expose_tensors(model, tensors, infos)  # typed, as inferred
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
        first = first_line(e)
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
    ins, outs = io_names(model)
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


def io_pairs(
    first: onnx.ModelProto,
    second: onnx.ModelProto,
    io_map: Sequence[tuple[str, str]] | Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """(first's output, second's input) pairs: ``io_map`` as given, else by name when all
    of second's inputs are first's outputs, else by position when the counts match."""
    if io_map is not None:
        return list(io_map.items()) if isinstance(io_map, Mapping) else list(io_map)
    f_outs, s_ins = graph_io(first)[1], graph_io(second)[0]
    if {s.name for s in s_ins} <= {s.name for s in f_outs}:
        return [(s.name, s.name) for s in s_ins]
    if len(f_outs) == len(s_ins):
        return [(a.name, b.name) for a, b in zip(f_outs, s_ins, strict=True)]
    raise SurgeryError(
        f"cannot pair the models: the first has outputs {describe_all(f_outs)}, the second "
        f"inputs {describe_all(s_ins)}; pass io_map (CLI: --map OUTPUT=INPUT)"
    )


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
    pairs = io_pairs(first, second, io_map)
    for a, b in pairs:
        if a not in f_by:
            raise SurgeryError(
                f"{a!r} is not an output of the first model{did_you_mean(a, f_by)}; its outputs: "
                f"{describe_all(f_outs)}"
            )
        if b not in s_by:
            raise SurgeryError(
                f"{b!r} is not an input of the second model{did_you_mean(b, s_by)}; its inputs: "
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
    # onnx.compose lists a domain once per graph; onnxruntime's quantizer then finds
    # no single ai.onnx entry ("Failed to find proper ai.onnx domain")
    versions: dict[str, int] = {}
    for op in merged.opset_import:
        versions[op.domain] = max(versions.get(op.domain, 0), op.version)
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())
    return fix_ir_version(merged)
