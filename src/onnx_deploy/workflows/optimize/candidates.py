"""The candidates: every chain of passes the registry allows, on every runtime asked for.

Chains come from the one table (``passes.chains()``); each is built once from the file of
the chain it extends, so ``slim -> fuse -> INT8 dynamic`` reuses the fused file. A pass that
does not apply, lacks what it needs or fails makes its chain a row that says why, and the
chains that would extend it are not tried. Each built file is then offered to each
runtime asked for, in each of its modes: a runtime that cannot run the file (OpenVINO and
ONNX Runtime's contrib ops) makes a row that says so. Passes never validate here: the
evaluator judges every candidate against the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.core.errors import OptimizeError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import file_size
from onnx_deploy.core.timing import Speedup
from onnx_deploy.passes import Artifact
from onnx_deploy.passes import Context
from onnx_deploy.passes import NothingToDo
from onnx_deploy.passes import chain_file
from onnx_deploy.passes import chain_title
from onnx_deploy.passes import chains
from onnx_deploy.passes import facts
from onnx_deploy.passes import get_pass
from onnx_deploy.runtimes import CONTRIB_DOMAINS
from onnx_deploy.runtimes import graph_ops
from onnx_deploy.runtimes import resolve
from onnx_deploy.runtimes.genai import OnnxRuntimeGenai
from onnx_deploy.workflows.optimize.config import OptimizeConfig

REFERENCE = "FP32"
DEFAULT_RUNTIME = "onnxruntime"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """One file on one runtime: how it was made, how it compares with FP32, how fast it
    ran, and the verdict (``chosen``, or why not, with the numbers that decide it)."""

    name: str
    chain: tuple[str, ...]
    runtime: str = DEFAULT_RUNTIME  # the runtime's full name (``openvino-bf16``)
    precision: str = "fp32"  # the tolerance preset it is judged by
    path: str | None = None
    status: str = "ok"  # ok, skipped, failed
    reason: str = ""  # why skipped or failed
    size: int = 0
    details: str = ""  # types, fused ops, ...
    portable: bool = True  # its INT8 types hold on every x86 CPU
    contrib_ops: tuple[str, ...] = ()  # ONNX Runtime's com.microsoft ops in the file
    passed: bool | None = None
    fails: tuple[str, ...] = ()
    max_abs: float | None = None
    min_cosine: float | None = None
    agreement: float | None = None  # top-1 agreement with FP32 (detections: matched by IoU)
    accuracy: float | None = None  # with labels: top-1 accuracy or mAP@0.5
    timings: tuple[Any, ...] = ()  # BenchmarkResult per batch size
    speedup: Speedup | None = None  # over FP32 at the objective's batch size
    verdict: str = ""
    on_front: bool = False  # on the Pareto front (quality, objective, size)

    def timing(self, batch_size: int) -> Any:
        return next((t for t in self.timings if t.batch_size == batch_size), None)

    @property
    def chosen(self) -> bool:
        return self.verdict.startswith("chosen")

    @property
    def runs(self) -> bool:
        return self.status == "ok"

    @property
    def feasible(self) -> bool:
        """Built, runs, and meets every constraint."""
        return self.runs and bool(self.passed)

    @property
    def needs(self) -> str:
        """Which runtimes the file needs, in words."""
        runtime, mode = resolve(self.runtime)
        if runtime.name != DEFAULT_RUNTIME:
            return runtime.display(mode) + (
                " on an NVIDIA GPU" if "cuda" in runtime.devices else ""
            )
        if self.contrib_ops:
            return "ONNX Runtime only (com.microsoft ops)"
        return "any ONNX runtime"

    @property
    def asks(self) -> tuple[str, ...]:
        """What it asks of the machine it ships to beyond any ONNX runtime on any x86 CPU."""
        return (
            *([f"the {self.runtime} runtime"] if self.runtime != DEFAULT_RUNTIME else []),
            *(["ONNX Runtime's contrib ops"] if self.contrib_ops else []),
            *([] if self.portable else ["a CPU with VNNI (its INT8 types saturate without)"]),
        )

    @property
    def requirements(self) -> int:
        """How much it asks (``asks``): fewer wins a tie."""
        return len(self.asks)


def _portable(artifact: Artifact) -> bool:
    """Whether the file's INT8 types hold on every x86 CPU: 7-bit weights (reduce_range) or
    uint8 weights, whose pair sums cannot saturate on CPUs without VNNI (``core.cpu``)."""
    types = getattr(artifact.result, "types", None)
    if types is None or artifact.precision != "int8":
        return True
    return bool(types.reduce_range or types.weight_type == "uint8")


def _contrib(path: str) -> tuple[str, ...]:
    if not path.endswith(".onnx"):
        return ()
    return tuple(sorted({op for dom, op in graph_ops(path) if dom in CONTRIB_DOMAINS}))


def build_candidates(
    fp32: str,
    folder: Path,
    config: OptimizeConfig,
    ctx: Context,
    log: Log,
) -> list[Candidate]:
    """Every candidate for ``fp32`` (see the module docstring), files in ``folder``; the
    reference ``FP32`` first."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = Artifact(fp32, details="the model as given")
    built: dict[tuple[str, ...], Artifact] = {(): reference}
    rows: list[tuple[tuple[str, ...], Artifact | None, str, str]] = [((), reference, "ok", "")]
    log(f"candidate {REFERENCE}: {fp32}")
    for chain in chains():
        steps = [get_pass(n) for n in chain]
        if config.passes is not None and any(n not in config.passes for n in chain):
            continue
        if not steps[-1].in_search or chain[:-1] not in built:
            continue  # the chain it extends was not built: nothing to try
        source = built[chain[:-1]]
        step = steps[-1]
        why = step.missing(ctx) or step.applies(facts(source.path), ctx)
        status = "skipped" if why else "ok"
        artifact = None
        if not why:
            try:
                artifact = step.run(source, chain_file(folder, chain), ctx, step.default_options())
            except NothingToDo as e:
                status, why = "skipped", first_line(e)
            except Exception as e:
                status, why = "failed", first_line(e)
        if artifact is not None:
            built[chain] = artifact
        elif step.optional:  # chains go on from its input
            built[chain] = source
            why += f" (the chains after {step.title} start from {chain_title(chain[:-1])})"
        rows.append((chain, artifact, status, why))
        log(f"candidate {chain_title(chain)}: {artifact.path if artifact else f'{status}: {why}'}")
    return [c for row in rows for c in _on_runtimes(*row, config, built)]


def _on_runtimes(
    chain: tuple[str, ...],
    artifact: Artifact | None,
    status: str,
    why: str,
    config: OptimizeConfig,
    built: dict[tuple[str, ...], Artifact],
) -> list[Candidate]:
    """One chain's file on each runtime (and mode) asked for that can be offered it."""
    title = chain_title(chain)
    precision = get_pass(chain[-1]).precision if chain else "fp32"
    if artifact is None:  # a row that says why, on the runtime the pass meant it for
        runtime = (get_pass(chain[-1]).runtimes or (DEFAULT_RUNTIME,))[0]
        return [Candidate(title, chain, runtime, precision or "fp32", status=status, reason=why)]
    out = []
    slimmed = ("slim",) in built and built[("slim",)] is not built[()]
    for name in config.runtimes:
        runtime, mode = resolve(name)
        if artifact.runtimes and runtime.name not in artifact.runtimes:
            continue
        if not artifact.runtimes and Path(artifact.path).suffix not in runtime.formats:
            continue
        if runtime.name != DEFAULT_RUNTIME and not chain and slimmed:
            continue  # other runtimes run the slimmed file: the same model, smaller
        if mode.precision and artifact.precision != "fp32":
            continue  # a precision mode (bf16) applies to FP32 files
        candidate_name = title if name == DEFAULT_RUNTIME else _runtime_title(runtime, mode, chain)
        cand = Candidate(
            candidate_name, chain, name, mode.precision or artifact.precision, artifact.path,
            size=file_size(artifact.path), details=artifact.details,
            portable=_portable(artifact), contrib_ops=_contrib(artifact.path),
        )  # fmt: skip
        why_not = runtime.available(config.target) or runtime.accepts(artifact.path, mode)
        if why_not:
            cand = Candidate(candidate_name, chain, name, cand.precision, artifact.path,
                             "skipped", why_not, cand.size, artifact.details)  # fmt: skip
        out.append(cand)
    return out


def _runtime_title(runtime: Any, mode: Any, chain: tuple[str, ...]) -> str:
    """``OpenVINO INT8 static``; a precision mode names itself (``OpenVINO BF16``)."""
    if mode.title:
        return f"{runtime.title} {mode.title}" + (f" ({chain_title(chain)})" if chain else "")
    return f"{runtime.title} {chain_title(chain)}"


GENAI = OnnxRuntimeGenai.name


def genai_candidate(folder: str, vocab: int) -> Candidate:
    """The folder of onnxruntime-genai's model builder as a decoder's candidate: judged by
    its greedy tokens against the FP32 file, timed on one decode step by onnxruntime-genai
    itself (``infer.genai.GenaiRunner``). ``vocab``: the FP32 file's, which it must share."""
    from onnx_deploy.infer.genai import genai_config
    from onnx_deploy.infer.genai import genai_graph
    from onnx_deploy.infer.genai import genai_module

    genai_module()  # says how to install it
    config = genai_config(folder)
    if int(config["model"]["vocab_size"]) != vocab:
        raise OptimizeError(
            f"--genai {folder}: its vocabulary ({config['model']['vocab_size']}) is not the "
            f"FP32 file's ({vocab}); build it from the same model"
        )
    graph = genai_graph(folder)
    name = graph.name
    size = sum(p.stat().st_size for p in Path(folder).iterdir() if p.name.startswith(name))
    ops = sorted({op for dom, op in graph_ops(graph) if dom in CONTRIB_DOMAINS})
    nbits = "MatMulNBits" in ops
    return Candidate(
        name="genai", chain=(GENAI,), runtime=GENAI, precision="int8" if nbits else "fp32",
        path=str(folder), size=size, contrib_ops=tuple(ops),
        details=f"onnxruntime-genai's model builder folder ({name}: {', '.join(ops) or 'standard ops'})",
    )  # fmt: skip
