"""The model's contract: what the source that made a file knows and its graph cannot say.

An ONNX graph says that ``input_ids`` is ``int64[batch, seq]``; it does not say that its
values must stay below the vocabulary, that ``attention_mask`` is a padding mask (ones,
then zeros), that ``seq`` may not pass the position table, that ``token_type_ids`` may be
left to its default of zeros, or that the model is a classifier to be judged by top-1
accuracy. ``export`` knows all of it. The source that made the file (``sources/``) writes it
into the file's ``metadata_props`` under ``CONTRACT_KEY`` as JSON, every file derived from it
(slimmed, quantized, fused) carries it on, and every command reads it back: the inputs it
generates, validation, the report card's judge. A file without one works as before, from
its names and dtypes, and the reader says so (``NO_CONTRACT``).

The anchors: optimum's ``OnnxConfig`` (a family declares its inputs, dynamic axes and
tolerance) and onnxruntime-genai's ``genai_config.json`` (the generation settings beside
the model).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.specs import TensorSpec

CONTRACT_KEY = "onnx_deploy.contract"
CONTRACT_VERSION = 1
# how a variant of the model is judged against its reference
JUDGES = (
    "top1",  # a classifier: accuracy with labels, top-1 agreement without
    "detections",  # boxes matched by IoU, mAP with labelled boxes
    "elementwise",  # features, embeddings, raw heads: the elementwise and cosine checks only
    "tokens",  # a generative model: the greedy tokens it produces
)
WEIGHTS = ("trained", "random", "")
NO_CONTRACT = (
    "no model contract in the file (made outside onnx-deploy): input kinds and value ranges "
    "are guessed from their names and dtypes; declare them with --input/--dim, or export "
    "with onnx-deploy to record them"
)


@dataclass(frozen=True)
class ModelContract:
    """What travels with the file (the module docstring).

    ``inputs``/``dims``: each input's dtype, dims, value range and kind, each dim's range
    (the longest valid sequence is ``seq``'s max); ``roles``: input or output name ->
    what it is (``token_ids``, ``padding_mask``, ``segment_ids``, ``pixels``, ``logits``,
    ``boxes``, ...); ``defaults``: inputs a caller may leave out, with the value that fills
    them; ``relations``: equalities between dims (``total = past + seq``); a token each
    example must hold is its input's ``end`` (``InputSpec``); ``judge``: how a variant is
    judged (``JUDGES``); ``weights``: ``trained`` or ``random`` (random weights make
    top-1 agreement a coin toss); ``generation``: a decoder's generation config.
    """

    source: str = ""
    family: str = ""  # classifier, encoder, detector, decoder, model
    task: str = ""  # classification, detection, features, generation
    judge: str = "elementwise"
    weights: str = ""
    inputs: tuple[InputSpec, ...] = ()
    dims: tuple[DimRange, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)
    relations: tuple[str, ...] = ()
    generation: dict[str, Any] = field(default_factory=dict)
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        if self.judge not in JUDGES:
            raise ValueError(f"judge must be one of {JUDGES}, got {self.judge!r}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {self.weights!r}")

    # --- reading it --------------------------------------------------------------------

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    def signature(
        self,
        specs: Sequence[TensorSpec],
        dims: Iterable[DimRange] = (),
        declared: Iterable[InputSpec] = (),
    ) -> Signature:
        """The file's inputs (``specs``) with this contract's kinds, value ranges and dim
        ranges; ``dims`` and ``declared`` (the user's own) win over it by name."""
        given_inputs = {i.name: i for i in declared}
        own_inputs = {i.name: i for i in self.inputs}
        merged_inputs = [given_inputs.get(s.name) or own_inputs.get(s.name) for s in specs]
        given_dims = {d.name: d for d in dims}
        merged_dims = [given_dims.pop(d.name, d) for d in self.dims] + list(given_dims.values())
        return Signature.from_specs(
            specs, merged_dims, [i for i in merged_inputs if i], self.relations or None
        )

    def describe(self) -> str:
        parts = [self.family or "model"]
        if self.task:
            parts.append(self.task)
        parts.append(f"judged by {self.judge}")
        if self.weights:
            parts.append(f"{self.weights} weights")
        if self.dims:
            parts.append("dims " + ", ".join(d.text() for d in self.dims))
        if self.defaults:
            parts.append("defaults " + ", ".join(f"{k}={v:g}" for k, v in self.defaults.items()))
        return "; ".join(parts)

    # --- as JSON in the file -------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        raw = json.loads(text)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        inputs = tuple(
            InputSpec(**{**i, "shape": tuple(i.get("shape", ()))}) for i in known.pop("inputs", ())
        )
        dims = tuple(
            DimRange(**{**d, "probes": tuple(d["probes"]) if d.get("probes") else None})
            for d in known.pop("dims", ())
        )
        known["relations"] = tuple(known.get("relations", ()))
        return cls(inputs=inputs, dims=dims, **known)


def read_contract(model: Any) -> ModelContract | None:
    """The contract in an ``onnx.ModelProto``'s metadata, in a ``custom_metadata_map``
    (what ONNX Runtime's ``session.get_modelmeta()`` returns), or None. One that does not
    parse is treated as absent: the file still runs, from its names and dtypes."""
    if isinstance(model, Mapping):
        text = model.get(CONTRACT_KEY)
    else:
        text = next((p.value for p in model.metadata_props if p.key == CONTRACT_KEY), None)
    if not text:
        return None
    try:
        return ModelContract.from_json(text)
    except (ValueError, TypeError, KeyError):
        return None


def write_contract(model: Any, contract: ModelContract | None) -> None:
    """Put ``contract`` into an ``onnx.ModelProto``'s metadata (in place), replacing any
    contract it had; None removes it."""
    for prop in [p for p in model.metadata_props if p.key == CONTRACT_KEY]:
        model.metadata_props.remove(prop)
    if contract is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = CONTRACT_KEY, contract.to_json()


def carry_contract(parent: Any, child: Any) -> ModelContract | None:
    """Copy the contract of ``parent`` (a ``ModelProto``) into ``child`` (in place): a file
    derived from another (slimmed, quantized, fused, edited) keeps what its source knew.
    Returns the contract carried, or None when the parent had none."""
    contract = read_contract(parent)
    if contract is not None:
        write_contract(child, contract)
    return contract


def with_judge(contract: ModelContract | None, judge: str) -> ModelContract | None:
    """``contract`` judged another way (an edit that puts NMS in a detector's graph makes
    its outputs detections)."""
    return None if contract is None else replace(contract, judge=judge)


STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"
_FILE_IN_TRACE = re.compile(r'File "([^"]+)"')


def _portable_path(path: str, roots: Sequence[str]) -> str:
    """``path`` as a stack trace should show it in a shipped file: from the package down
    (``transformers/models/...``), never the build machine's folders."""
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1]
    for root in roots:
        if path.startswith(root):
            return path[len(root) :].lstrip("/")
    return path.rsplit("/", 1)[-1] if path.startswith("/") else path


def portable_stack_traces(model: Any) -> int:
    """Rewrite the absolute paths in the exporter's per-node stack traces (metadata key
    ``pkg.torch.onnx.stack_trace``) as package-relative ones, in place; returns how many
    were rewritten. torch writes ``/home/me/.venv/.../modeling_qwen2.py``: the shipped file
    would carry the build machine's folders, and the same export made in two folders would
    differ in bytes."""
    import sys

    roots = sorted(
        {p.rstrip("/") + "/" for p in sys.path if p.startswith("/") and len(p) > 1},
        key=len,
        reverse=True,
    )
    count = 0

    def fix(match: re.Match[str]) -> str:
        nonlocal count
        short = _portable_path(match.group(1), roots)
        count += short != match.group(1)
        return f'File "{short}"'

    graphs = [model.graph, *model.functions]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            for prop in node.metadata_props:
                if prop.key == STACK_TRACE_KEY:
                    prop.value = _FILE_IN_TRACE.sub(fix, prop.value)
            for attr in node.attribute:
                graphs.extend([attr.g] if attr.HasField("g") else [])
                graphs.extend(attr.graphs)
    return count


def stamp_file(path: Any, contract: ModelContract | None) -> None:
    """Finish an export's staged file at ``path`` in place: write ``contract`` into it and
    make the exporter's stack traces free of this machine's paths
    (``portable_stack_traces``). Only the graph's own protobuf is read and rewritten:
    weights in an external ``.data`` file stay where they are (the file refers to them by
    name). Meant for a file being staged (an export's temporary output), not for a user's
    finished file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    changed = portable_stack_traces(model)
    if contract is None and not changed:
        return
    write_contract(model, contract)
    onnx.save(model, str(path))
