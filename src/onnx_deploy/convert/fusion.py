"""Transformer fusions for ONNX Runtime: attention, SkipLayerNorm, BiasGelu on the graph.

The raw call this wraps::

    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort
    model, counts = optimize_for_ort(ir.load("model.onnx"))   # counts: {"attention": 12, ...}
    ir.save(model, "model.fused.onnx")

onnxscript's ``ort_fusions`` is written for the dynamo exporter's graphs; the older
``onnxruntime.transformers.optimizer`` matches TorchScript-era patterns and fused no
attention on a dynamo BERT graph (onnxruntime issues 19423, 27556). The fused graph uses
``com.microsoft`` ops, so it runs on ONNX Runtime only, and it is validated against its
parent like every other rewrite. Whether it is faster is a measurement: ONNX Runtime's own
graph optimizer fuses some of the same patterns when a session loads the unfused file.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from onnx_deploy.core.errors import FusionError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.extras import require
from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import has_external_data
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import write_onnx
from onnx_deploy.core.memory import release_freed_memory
from onnx_deploy.core.results import Result

# what the fused graph holds: the op types that count as a fusion
FUSED_OPS = (
    "Attention", "MultiHeadAttention", "GroupQueryAttention", "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization", "BiasGelu",
    "FastGelu", "Gelu", "RotaryEmbedding",
)  # fmt: skip


@dataclass(frozen=True)
class FusionResult(Result):
    """A fused graph: what was fused, how the graph shrank, and its validation."""

    COMPUTED = ("ok",)

    input_path: str
    output_path: str
    fusions: dict[str, int]  # the pass's own counts, non-zero ones
    fused_ops: dict[str, int]  # fused op types in the written graph
    nodes_before: int
    nodes_after: int
    seconds: float
    size_bytes: int
    validation: Any = None  # ValidationReport
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.validation is None or bool(self.validation.ok)

    def summary(self) -> str:
        ops = ", ".join(f"{v} {k}" for k, v in self.fused_ops.items()) or "nothing fused"
        lines = [
            f"fuse      {self.output_path}  {human_size(self.size_bytes)}  {self.seconds:.1f} s  "
            f"({self.nodes_before} -> {self.nodes_after} nodes: {ops})"
        ]
        if self.validation is not None:
            lines.append(self.validation.summary())
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def fused_op_counts(model: Any) -> dict[str, int]:
    """How many nodes of each fused op type a graph (``onnx.ModelProto``) holds."""
    counts = Counter(n.op_type for n in model.graph.node if n.op_type in FUSED_OPS)
    return dict(sorted(counts.items()))


def fuse_transformer(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    validate: bool = True,
    validation_inputs: Any = None,
    gqa: bool = False,
    force: bool = False,
) -> FusionResult:
    """Fuse a transformer graph for ONNX Runtime (the module docstring) and check it
    against the parent (fp32 tolerance); a graph that fails is not written.

    ``gqa``: a decoder's rotary embedding and grouped-query attention too
    (``RotaryEmbedding``, ``GroupQueryAttention``), through ``rotary_angles_as_matmul``.
    The file must give the parent's greedy tokens at batch 1; its tokens in left-padded
    batches are measured and named in the notes (ONNX Runtime's ``GroupQueryAttention``
    takes each row's length, not a mask, so a left-padded row differs)."""
    ir = require("onnx_ir", "transformer fusions")
    require("onnxscript", "transformer fusions")
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    from onnx_deploy.convert.graphcheck import check_graph
    from onnx_deploy.infer.compare import compare_onnx
    from onnx_deploy.infer.modelinfo import load_onnx
    from onnx_deploy.infer.tokens import is_cached_decoder

    # weights in external data stay on disk: onnx_ir reads them lazily and ``ir.save``
    # copies them into the output's own data file (past 2 GB a loaded copy would not fit
    # one protobuf, and the 600M decoder peaked at 15 GB before failing)
    external = has_external_data(input_path)
    model = ir.load(str(input_path)) if external else ir.from_proto(load_onnx(input_path))
    nodes_before = len(model.graph)
    start = time.perf_counter()
    try:
        rewritten = rotary_angles_as_matmul(model) if gqa else 0
        fused, counts = optimize_for_ort(model)
    except Exception as e:
        first = first_line(e)
        raise FusionError(f"onnxscript's ort_fusions failed on {input_path}: {first}") from e
    seconds = time.perf_counter() - start
    with atomic_output(output_path, force=force) as tmp:
        if external:
            ir.save(fused, str(tmp), external_data=tmp.name + EXTERNAL_DATA_SUFFIX)
            proto = load_onnx(tmp, load_external_data=False)
        else:
            proto = ir.to_proto(fused)
            write_onnx(proto, tmp)
        # the IR models map the weights' file: dropped before ONNX Runtime loads them twice
        # to compare (the 600M decoder peaked at 4.0x its file with them alive)
        del model, fused
        release_freed_memory()
        check_graph(tmp)
        report = None
        fused_ops = fused_op_counts(proto)
        # GroupQueryAttention refuses a batch above 1 with new tokens and a past at once,
        # which generated inputs hold: such a decoder is judged by its tokens alone
        has_gqa = "GroupQueryAttention" in fused_ops
        by_tokens = gqa and has_gqa and is_cached_decoder(proto)
        if validate and not by_tokens:
            report = compare_onnx(input_path, tmp, validation_inputs)
            if not report.ok:
                raise FusionError(
                    report.summary() + "\nthe fused graph does not match its parent; nothing "
                    "was written. Ship the unfused file, and report the pattern to onnxscript."
                )
            report = _renamed(report, str(output_path))
        notes: list[str] = []
        if gqa and not has_gqa:
            notes.append(
                f"--gqa: no GroupQueryAttention fused (rotary angles rewritten: {rewritten})"
            )
        elif gqa and not (validate and by_tokens):
            notes.append(
                "GroupQueryAttention: not checked by tokens (validation off, or no decoder)"
            )
        elif gqa:
            notes += _check_gqa(input_path, tmp, str(output_path))
        size = file_size(tmp)
    return FusionResult(
        str(input_path), str(output_path), {k: v for k, v in counts.items() if v},
        fused_ops, nodes_before, len(proto.graph.node), seconds, size,
        report, tuple(notes),
    )  # fmt: skip


def _check_gqa(parent: Any, staged: Any, name: str) -> list[str]:
    """A decoder fused with GroupQueryAttention: its greedy tokens at batch 1 must be the
    parent's (else nothing is written); in left-padded batches of 8 they are measured and
    named. What the notes say about it."""
    from onnx_deploy.infer.tokens import check_against_parent

    single = check_against_parent(parent, staged, name)
    if not single.ok:
        raise FusionError(
            single.summary() + "\nthe GroupQueryAttention graph changes the greedy tokens at "
            "batch 1; nothing was written. Fuse without --gqa."
        )
    batched = check_against_parent(parent, staged, name, batch_size=8)
    n = len(batched.prompts)
    return [
        "ONNX Runtime's GroupQueryAttention refuses a batch above 1 that brings new tokens "
        "and a past at once (a chunked prefill); generation's prefill (no past) and decode "
        "steps (one token) run",
        f"tokens at batch 1: identical on {single.identical}/{len(single.prompts)} prompts "
        "to the unfused file",
        f"in left-padded batches of 8: identical on {batched.identical}/{n}"
        + (
            ""
            if batched.identical == n
            else " (ONNX Runtime's GroupQueryAttention takes each row's length, not a mask:"
            " serve this file at batch 1 or with right padding, or fuse without --gqa)"
        ),
    ]


def rotary_angles_as_matmul(model: Any) -> int:
    """Rewrite a rotary embedding's angles from the broadcast product transformers 5 writes
    (``position_ids[..., None].float() * inv_freq``) to the ``MatMul`` then ``Transpose``
    of transformers 4 that onnxscript's ``ort_fusions`` match (their cos/sin cache, then
    ``RotaryEmbedding`` and ``GroupQueryAttention``; onnxscript 0.7.2 matches only the
    older form). Each product has a single term, so the values are the same. Edits the
    ``onnx_ir`` model in place; returns how many were rewritten."""
    from onnxscript.rewriter import pattern

    rules = pattern.RewriteRuleSet([_rotary_angles_rule().rule()], commute=True)
    return int(rules.apply_to_model(model))


def _rotary_angles_rule() -> Any:
    import numpy as np
    import onnx_ir as ir
    from onnxscript.rewriter import _ir_utils
    from onnxscript.rewriter import pattern

    class RotaryAnglesAsMatMul(pattern.RewriteRuleClassBase):
        def pattern(self, op: Any, position_ids: Any, axes: Any, inv_freq: Any) -> Any:
            ids = op.Cast(op.Unsqueeze(position_ids, axes), to=ir.DataType.FLOAT)
            return op.Mul(ids, inv_freq)

        def check(self, context: Any, position_ids: Any, axes: Any, inv_freq: Any, **_: Any) -> Any:
            result = pattern.MatchResult()
            if not _ir_utils.has_rank(position_ids, 2):
                return result.fail("position ids are not 2-D", position_ids)
            if not any(_ir_utils.is_singleton_value(axes, a) for a in (-1, 2)):
                return result.fail("not unsqueezed on the last axis", axes)
            value = inv_freq.const_value
            if value is None or len(value.shape) != 1:
                return result.fail("the inverse frequencies are not a 1-D constant", inv_freq)
            return result

        def rewrite(self, op: Any, position_ids: Any, inv_freq: Any, **_: Any) -> Any:
            values = inv_freq.const_value.numpy().astype(np.float32).reshape(1, -1, 1)
            inv = op.Constant(value=ir.tensor(values))
            ids = op.Unsqueeze(position_ids, op.Constant(value_ints=[1]))
            ids = op.Cast(ids, to=ir.DataType.FLOAT)
            return op.Transpose(op.MatMul(inv, ids), perm=[0, 2, 1])

    return RotaryAnglesAsMatMul


def _renamed(report: Any, name: str) -> Any:
    from dataclasses import replace

    return replace(report, candidate=name)
