"""``onnx-deploy optimize``: which file do I ship? A search toward the user's stated goal.

The card is a loop over the registries, never a list of variants by name:

1. ``config``: the goal (``Goal``: latency or throughput at a batch size, or size; the
   accuracy a candidate may lose, agreement, size) and every setting (``OptimizeConfig``);
2. ``candidates``: every chain of passes the pass registry allows (slim first, then FP16,
   INT8 static and dynamic with this CPU's types and with types for any x86 CPU,
   transformer fusions and INT8 on the fused graph, TensorRT on a GPU), on every runtime
   asked for that can run the file;
3. ``evaluate``: each candidate judged against FP32 by the model's own contract (top-1
   accuracy and agreement for a classifier, IoU for detections, elementwise for features),
   then all timed interleaved, with extra rounds within a time budget until "faster" is
   decided beyond this run's noise;
4. ``choose``: the candidate that best meets the goal, every other's reason in numbers,
   and the Pareto front of quality, speed and size;
5. ``report`` and ``manifest``: ``report.md``/``report.json``, two plots, the chosen file
   and its manifest (hash, opset, IR version, the oldest ONNX Runtime that loads it, the
   contrib ops and execution providers it needs, its validation, where it was chosen).

``report_card(source, out_dir, config)`` starts from any model source (an ``.onnx`` file,
``torchvision:``, ``hf:``, ``file.py:``, ``project:``); ``optimize(model, out_dir, config)``
from an FP32 ONNX file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.contract import NO_CONTRACT
from onnx_deploy.core.errors import OptimizeError
from onnx_deploy.core.files import check_output_path
from onnx_deploy.passes import Context
from onnx_deploy.passes import chain_file
from onnx_deploy.passes import chains
from onnx_deploy.sources import ModelSource
from onnx_deploy.workflows.optimize.candidates import REFERENCE
from onnx_deploy.workflows.optimize.candidates import Candidate
from onnx_deploy.workflows.optimize.candidates import build_candidates
from onnx_deploy.workflows.optimize.candidates import genai_candidate
from onnx_deploy.workflows.optimize.choose import choose
from onnx_deploy.workflows.optimize.choose import pareto_front
from onnx_deploy.workflows.optimize.config import OBJECTIVES
from onnx_deploy.workflows.optimize.config import Goal
from onnx_deploy.workflows.optimize.config import OptimizeConfig
from onnx_deploy.workflows.optimize.evaluate import TokenJudge
from onnx_deploy.workflows.optimize.evaluate import judge_candidates
from onnx_deploy.workflows.optimize.evaluate import time_candidates
from onnx_deploy.workflows.optimize.manifest import build_manifest
from onnx_deploy.workflows.optimize.report import GENAI_FOLDER
from onnx_deploy.workflows.optimize.report import PLOTS
from onnx_deploy.workflows.optimize.report import ReportCard
from onnx_deploy.workflows.optimize.report import write_report

__all__ = [
    "OBJECTIVES",
    "REFERENCE",
    "Candidate",
    "Goal",
    "OptimizeConfig",
    "ReportCard",
    "optimize",
    "prepare",
    "report_card",
]

Log = Callable[[str], None]
# a decoder's candidate keeps the FP32 file's greedy tokens on at least this share of the
# prompts (63 of 64; a difference at an FP32 near-tie is not counted)
MIN_IDENTICAL = 0.98
DEFAULT_SOURCE = "project:digits_cnn"  # the trained digits CNN with its real data
# what a card writes in its folder besides variants/ (checked before any work)
OUTPUTS = (
    "report.md",
    "report.json",
    "model.onnx",
    "model.plan",
    GENAI_FOLDER,
    "manifest.json",
    *PLOTS.values(),
)


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class TaskData:
    """The data each step uses: calibration samples, validation batches, labels, and
    whether the validation data is real (else random from the signature)."""

    calibration: Any
    validation: list[dict[str, np.ndarray]]
    labels: Any
    real: bool


# random samples for a decoder judged by its tokens: its elementwise numbers are shown
# beside the token check, and 32 samples of logits and cache held on both sides, in float64
# for the statistics, put the 600M decoder's card over 4x its file
DECODER_RANDOM_SAMPLES = 8


def task_data(
    specs: Sequence[Any], sig: Any, config: OptimizeConfig, notes: list[str], *,
    decoder: bool = False,
) -> TaskData:  # fmt: skip
    """Calibration, validation and labels: given (arrays or files), or random from the
    signature with a note that says what that proves (fewer for a ``decoder`` judged by
    its tokens: ``DECODER_RANDOM_SAMPLES``)."""
    from onnx_deploy.core.feeds import as_feeds
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.core.feeds import split
    from onnx_deploy.infer.judge import is_box_labels

    calibration, validation, labels = config.calibration, config.validation, config.labels
    real = validation is not None
    if calibration is None and validation is None:
        n = DECODER_RANDOM_SAMPLES if decoder else 64
        calibration = sig.examples({d: n for d in sig.batch_dims}, seed=1)
        notes.append(
            "random calibration and validation inputs: speed and conversion checks only; "
            "pass real samples (and labels) for an accuracy decision"
        )
    elif calibration is None:
        calibration = validation
    if isinstance(calibration, (str, os.PathLike)):
        calibration = load_data(calibration)
    if validation is None:
        n = DECODER_RANDOM_SAMPLES if decoder else 32
        validation = sig.examples({d: n for d in sig.batch_dims}, seed=2)
    elif isinstance(validation, (str, os.PathLike)):
        validation = load_data(validation)
    batches = split(as_feeds(validation, specs), config.validation_batch)
    if labels is not None:
        if isinstance(labels, (str, os.PathLike)):
            labels = load_data(labels)
        if not is_box_labels(labels):
            labels = np.asarray(labels)
        n = sum(len(next(iter(b.values()))) for b in batches)
        if len(labels) != n:
            raise OptimizeError(f"{len(labels)} labels for {n} validation samples")
    return TaskData(calibration, batches, labels, real)


def _data_note(labels: Any, batches: Sequence[Any]) -> str:
    from onnx_deploy.infer.judge import is_box_labels

    n = sum(len(next(iter(b.values()))) for b in batches)
    if labels is not None and is_box_labels(labels):
        return (
            f"{n} validation images with labelled boxes; accuracy is mAP@0.5 "
            "(pycocotools COCOeval), agreement the share of detections matched by IoU"
        )
    return f"{n} validation samples" + (" with labels" if labels is not None else "")


def min_agreement(goal: Goal, contract: Any, notes: list[str]) -> float | str | None:
    """The top-1 agreement a candidate must keep, from the goal or the model's contract:
    each precision's preset for a classifier; not judged for features (elementwise) or
    random weights, whose near-tied scores make agreement a coin toss."""
    if goal.min_agreement is not None:
        return goal.min_agreement
    if contract is None:
        return "preset"
    if contract.random_weights:
        notes.append(
            "random weights: their near-tied scores make top-1 agreement a coin toss, so "
            "candidates are judged on the elementwise and cosine tolerances only; give "
            "trained weights and real --data/--labels for an accuracy decision"
        )
        return None
    if contract.judge == "elementwise":
        return None
    return "preset"


def _start(model: str | os.PathLike[str], out: Path, config: OptimizeConfig) -> str:
    """The target runs here, the model loads, no file of the user's would be replaced
    without ``force``, and an earlier run's variant files are gone; the device."""
    from onnx_deploy.infer.modelinfo import require_runtime_loads
    from onnx_deploy.runtimes import check_runtimes

    check_runtimes(config.runtimes)
    device = _check_target(config.target)
    require_runtime_loads(model, "no candidates, no report")
    for written in OUTPUTS:  # never replace a file of the user's without force
        if written == GENAI_FOLDER and (out / written).is_dir():
            if not config.force:
                raise OptimizeError(
                    f"{out / written} exists (an earlier card's choice): pass --force"
                )
            continue
        check_output_path(out / written, force=config.force)
    variants = out / "variants"
    for chain in chains():  # an earlier run's files: never judged or timed again
        stale = chain_file(variants, chain)
        if stale.exists() and stale.resolve() != Path(model).resolve():
            stale.unlink()
    return device


def _check_target(target: str) -> str:
    if target == "cpu":
        return "cpu"
    from onnx_deploy.infer.sessions import working_providers

    if "CUDAExecutionProvider" not in working_providers():
        raise OptimizeError(
            "--target cuda: onnxruntime's CUDA provider does not run here (no NVIDIA GPU, or "
            "onnxruntime-gpu's CUDA libraries are missing; `onnx-deploy doctor` says which). "
            "Use --target cpu on this machine."
        )
    return "cuda"


def _environment(config: OptimizeConfig) -> dict[str, Any]:
    """What the timings depend on, with the CPU's INT8 kind and the target."""
    from onnx_deploy.core.cpu import int8_profile
    from onnx_deploy.infer.bench import collect_environment

    env = collect_environment()
    env["cpu"] = {**env.get("cpu", {}), "int8_isa": int8_profile().isa}
    env["target"] = config.target
    env["threads"] = config.threads
    env["spinning"] = "default" if config.spinning is None else config.spinning
    return env


def optimize(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: OptimizeConfig | None = None,
    *,
    notes: Sequence[str] = (),
    data_note: str = "",
    log: Log = _quiet,
) -> ReportCard:
    """The report card for an FP32 ONNX file (the module docstring).

    Data comes from ``config`` (``calibration``, ``validation``, ``labels``: arrays, dicts
    or files); without it, valid random inputs from the model's signature (its contract,
    with ``config.dims``/``config.inputs`` on top) and a note that says what that proves.
    Timings run at each batch size on the first samples of real data, or on generated ones
    with every other dynamic dim at its example size. Writes ``out_dir/variants/``, the
    chosen file as ``out_dir/model.onnx`` with ``manifest.json``, ``report.md``,
    ``report.json`` and the plots; an existing file is not replaced without ``force``.
    """
    from onnx_deploy.core.feeds import concatenate
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.workflows.pipeline import batch_feeds

    config = config or OptimizeConfig()
    start = time.perf_counter()
    out = Path(out_dir)
    device = _start(model, out, config)
    notes = list(notes)
    with OnnxRuntimeRunner(model, "cpu") as probe:
        specs, contract = probe.inputs, probe.contract
        sig = probe.signature(config.dims, config.inputs)
    if contract is None:
        notes.append(NO_CONTRACT)
    tokens = token_judge(str(model), contract, specs, config, notes)
    data = task_data(specs, sig, config, notes, decoder=tokens is not None)
    agreement = None if tokens is not None else min_agreement(config.goal, contract, notes)
    ctx = Context(
        calibration=data.calibration, calibration_size=config.calibration_size,
        target=config.target, force=True, batch_sizes=config.batch_sizes, log=log,
    )  # fmt: skip
    candidates = build_candidates(str(model), out / "variants", config, ctx, log)
    if config.genai is not None:
        if tokens is None:
            raise OptimizeError(
                "--genai: onnxruntime-genai's folder is a decoder's candidate; this model is "
                "not a decoder exported with its cache (export hf:DIR of a causal LM)"
            )
        from onnx_deploy.infer.tokens import OnnxTokens

        with contextlib.closing(OnnxTokens(str(model))) as ref:
            vocab = ref.vocab
        candidates.append(genai_candidate(config.genai, vocab))
        log(f"candidate genai: {candidates[-1].details}")
    candidates = judge_candidates(
        candidates, data.validation, config, labels=data.labels, min_agreement=agreement,
        device=device, tokens=tokens, log=log,
    )  # fmt: skip
    real = concatenate(data.validation) if data.real else None
    inputs = {b: batch_feeds(real, sig, b, specs) for b in config.batch_sizes}
    if tokens is not None:  # a decoder is timed on what it repeats: one decode step
        inputs = {b: decode_step(sig, b) for b in config.batch_sizes}
    candidates, timing = time_candidates(candidates, config, inputs, device=device, log=log)
    candidates, decision = choose(candidates, config)
    front = {c.name for c in pareto_front(candidates, config.objective_batch)}
    candidates = [replace(c, on_front=c.name in front) for c in candidates]
    card = ReportCard(
        model=config.name or str(model), target=config.target,
        goal=config.goal.describe(config.batch_sizes, data.labels is not None),
        objective=config.goal.objective, objective_batch=config.objective_batch,
        margin=config.goal.margin, candidates=tuple(candidates), chosen=decision.chosen,
        batch_sizes=tuple(config.batch_sizes), decision=decision, timing=timing,
        data=data_note or _data_note(data.labels, data.validation),
        environment=_environment(config), notes=tuple(notes),
        seconds=time.perf_counter() - start,
    )  # fmt: skip
    manifest = build_manifest(card, contract) if card.chosen else None
    return write_report(card, out, force=config.force, plots=config.plots, manifest=manifest)


def token_judge(
    model: str, contract: Any, specs: Sequence[Any], config: OptimizeConfig, notes: list[str]
) -> TokenJudge | None:
    """A decoder exported with its cache (its contract judges it by tokens) is judged by
    its greedy tokens: on ``config.prompts``, or prompts drawn from the FP32 file."""
    from onnx_deploy.infer.tokens import OnnxTokens
    from onnx_deploy.infer.tokens import load_prompts
    from onnx_deploy.infer.tokens import sampled_prompts
    from onnx_deploy.infer.tokens import stop_token

    cached = any(s.name.startswith("past_key_values.") for s in specs)
    if contract is None or contract.judge != "tokens" or not cached:
        return None
    eos = stop_token(contract.generation)
    prompts = config.prompts
    if prompts is None:
        with contextlib.closing(OnnxTokens(model)) as ref:
            prompts = sampled_prompts(ref, ref.decoder.vocab, config.num_prompts, eos_token_id=eos)
        what = f"{config.num_prompts} prompts of 4-16 tokens drawn from the FP32 file"
    else:
        prompts = load_prompts(prompts) if isinstance(prompts, (str, os.PathLike)) else prompts
        what = f"{len(prompts)} given prompts"
    share = config.goal.min_agreement if config.goal.min_agreement is not None else MIN_IDENTICAL
    if contract.random_weights and config.goal.min_agreement is None:
        share = 0.0
        notes.append(
            "random weights: near-tied logits make greedy tokens change under any rounding, "
            "so tokens are reported, not judged; give trained weights for a token decision"
        )
    notes.append(
        f"a decoder: judged by its greedy tokens against FP32 on {what}, up to "
        f"{config.max_new_tokens} new tokens each, stopping at EOS {eos}; a candidate needs "
        f"at least {100 * share:g}% of the prompts identical. Timed on one decode step "
        "(one new token after the example cache)"
    )
    return TokenJudge(tuple(tuple(p) for p in prompts), config.max_new_tokens, eos, share)


def decode_step(sig: Any, batch: int) -> dict[str, np.ndarray]:
    """A decoder's decode-step inputs: one new token per row after a cache of ``past``'s
    example length (the mask covers both)."""
    sizes = {d: batch for d in sig.batch_dims}
    new = next((i.shape[-1] for i in sig.inputs if i.name == "input_ids"), None)
    if isinstance(new, str):
        sizes[new] = 1
    return sig.examples(sizes)


@dataclass(frozen=True)
class Prepared:
    """An FP32 ONNX file to optimize, with the data and notes that come with it."""

    onnx_path: str
    calibration: Any = None
    validation: Any = None
    labels: Any = None
    data_note: str = ""
    notes: tuple[str, ...] = ()


def prepare(
    source: str | ModelSource,
    folder: str | os.PathLike[str],
    *,
    force: bool = False,
    log: Log = _quiet,
) -> Prepared:
    """An ONNX file as it is, or a model source exported (with its contract, and validated
    against PyTorch) into ``folder/model.fp32.onnx``, with any labelled data the source
    ships (``project:digits_cnn``: its training images to calibrate, its test split)."""
    from onnx_deploy.workflows.pipeline import export_spec

    source = ModelSource.of(source)
    if source.is_onnx:
        return Prepared(str(source.target))
    path = Path(folder) / "model.fp32.onnx"
    if _causal_lm(source.target):  # a decoder is deployed with its cache
        from onnx_deploy.convert.hf import export_decoder

        decoder = export_decoder(source.target, path, force=force)
        log(decoder.summary())
        return Prepared(str(path))
    # the data is for validation and timing, not example inputs to export with
    exported = export_spec(replace(source, data=None), path, force=force, log=log)
    if not exported.ok:
        raise OptimizeError(f"{source.target} exported, but ONNX Runtime disagrees with "
                            "PyTorch: see the validation above")  # fmt: skip
    shipped = source.task_data()
    if shipped is None:
        return Prepared(str(path))
    return Prepared(
        str(path), shipped.calibration, shipped.validation, shipped.labels, shipped.note
    )


def _causal_lm(spec: str) -> bool:
    from onnx_deploy.convert.hf import is_decoder
    from onnx_deploy.convert.hf import is_hf_spec
    from onnx_deploy.convert.hf import load_config

    return is_hf_spec(spec) and is_decoder(load_config(spec))


def report_card(
    source: str | ModelSource,
    out_dir: str | os.PathLike[str],
    config: OptimizeConfig | None = None,
    *,
    log: Log = _quiet,
) -> ReportCard:
    """``onnx-deploy optimize``: ``prepare`` the source into ``out_dir/variants`` and
    ``optimize`` it. Data in ``config`` wins over the data the source ships with."""
    config = config or OptimizeConfig()
    source = ModelSource.of(source)
    prepared = prepare(source, Path(out_dir) / "variants", force=config.force, log=log)
    given = config.validation is not None or config.calibration is not None
    if not given and prepared.validation is not None:
        config = replace(
            config, calibration=prepared.calibration, validation=prepared.validation,
            labels=prepared.labels if config.labels is None else config.labels,
        )  # fmt: skip
    config = replace(
        config, name=config.name or source.target, dims=config.dims or source.dims,
        inputs=config.inputs or source.inputs,
    )  # fmt: skip
    return optimize(
        prepared.onnx_path, out_dir, config, notes=prepared.notes,
        data_note="" if given else prepared.data_note, log=log,
    )  # fmt: skip
