"""Judging and timing the candidates: the only validation a card does, and timings that
say how sure they are.

Every candidate is judged against the reference FP32 on ONNX Runtime through the one
comparator and the one accuracy function (``infer.judge``), with the tolerance of its
precision; the model's contract says how (``core.contract``: a classifier by top-1, a model
with random weights or a feature extractor elementwise only). A size over ``max_size``
fails here too.

Then all candidates that run are timed interleaved at every batch size (``rounds``
rounds), and the speed-up of each over FP32 at the objective's batch size is the paired
per-round ratio with its 95% interval (``core.timing.paired_speedup``). While a candidate
that meets the constraints has an interval that still straddles the margin, and the time
budget lasts, the card adds rounds for those candidates and FP32; ``Timing`` says how it
ended.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from onnx_deploy.core.files import human_size
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import ms
from onnx_deploy.core.timing import paired_speedup
from onnx_deploy.infer.bench import ROUND_WARMUP
from onnx_deploy.infer.bench import benchmark
from onnx_deploy.infer.bench import merge_results
from onnx_deploy.infer.judge import judge
from onnx_deploy.infer.judge import task_accuracy
from onnx_deploy.infer.judge import tolerance_for
from onnx_deploy.runtimes import resolve
from onnx_deploy.workflows.optimize.candidates import REFERENCE
from onnx_deploy.workflows.optimize.candidates import Candidate
from onnx_deploy.workflows.optimize.config import EQUIVALENCE
from onnx_deploy.workflows.optimize.config import MAX_ROUNDS
from onnx_deploy.workflows.optimize.config import OptimizeConfig

Log = Callable[[str], None]


def open_runner(candidate: Candidate, device: str, settings: Any) -> Any:
    """A runner for the candidate's file on its runtime, in its mode."""
    runtime, mode = resolve(candidate.runtime)
    return runtime.runner(candidate.path, device, mode=mode, settings=settings, name=candidate.name)  # type: ignore[arg-type]


def judge_candidates(
    candidates: Sequence[Candidate],
    batches: Sequence[Any],
    config: OptimizeConfig,
    *,
    labels: Any = None,
    min_agreement: float | str | None = "preset",
    device: str = "cpu",
    log: Log,
) -> list[Candidate]:
    """Judge every candidate that runs against the reference (the module docstring)."""
    ref_c = next(c for c in candidates if c.name == REFERENCE)
    goal = config.goal
    out = []
    with open_runner(ref_c, device, None) as ref:
        ref_acc = None if labels is None else task_accuracy(ref, batches, labels)
        for c in candidates:
            if not c.runs:
                out.append(c)
                continue
            if c is ref_c:  # the reference against itself: only its size can fail
                fails = _size_fails(c, goal.max_size)
                out.append(
                    replace(c, passed=not fails, max_abs=0.0, min_cosine=1.0, agreement=1.0,
                            accuracy=ref_acc, fails=fails)
                )  # fmt: skip
                continue
            try:
                with open_runner(c, device, None) as runner:
                    ran = resolve(c.runtime)[0].describe_run(runner)
                    j = judge(
                        ref, runner, batches, tolerance_for(c.precision, min_agreement),
                        labels=labels, reference_accuracy=ref_acc,
                        max_accuracy_drop=goal.max_accuracy_drop,
                    )  # fmt: skip
            except Exception as e:
                from onnx_deploy.core.errors import first_line

                out.append(replace(c, status="failed", reason=f"does not run: {first_line(e)}"))
                log(f"validate  {c.name}: does not run ({first_line(e)})")
                continue
            fails = j.fails + _size_fails(c, goal.max_size)
            c = replace(
                c, passed=not fails, fails=fails, max_abs=j.max_abs, min_cosine=j.min_cosine,
                agreement=j.agreement, accuracy=j.accuracy,
                details="; ".join(filter(None, (c.details, ran))),
            )  # fmt: skip
            log(f"validate  {c.name}: {'PASS' if c.passed else 'FAIL ' + '; '.join(fails)}")
            out.append(c)
    return out


def _size_fails(c: Candidate, max_size: int | None) -> tuple[str, ...]:
    if max_size is None or c.size <= max_size:
        return ()
    return (f"size {human_size(c.size)} is over the {human_size(max_size)} allowed",)


@dataclass(frozen=True)
class Timing(Result):
    """How the timing ended: the first rounds at every batch size, the extra rounds at
    the objective's batch size, the seconds they took of the budget, which candidates'
    intervals still straddled the margin when it stopped (``undecided``), and what stopped
    it (``stop``: ``budget``, or ``rounds`` at ``MAX_ROUNDS``)."""

    COMPUTED = ("decided",)

    rounds: int
    extra_rounds: int
    extra_seconds: float
    budget_s: float
    batch: int
    undecided: tuple[str, ...]
    busy: tuple[str, ...] = ()  # candidates whose timings carry the busy-machine warning
    stop: str = ""

    @property
    def decided(self) -> bool:
        return not self.undecided

    def summary(self) -> str:
        extra = (
            f", then {self.extra_rounds} more at batch {self.batch} for FP32 and every "
            f"feasible candidate ({self.extra_seconds:.1f} s of the {self.budget_s:.0f} s budget)"
            if self.extra_rounds
            else ""
        )
        head = f"{self.rounds} interleaved rounds at each batch size{extra}"
        if self.decided:
            return f"{head}: every interval decided."
        ended = (
            f"the {MAX_ROUNDS}-round limit was reached"
            if self.stop == "rounds"
            else "the budget ended"
        )
        return (
            f"{head}: {ended} with {', '.join(self.undecided)} undecided (an interval "
            "straddling the margin); an undecided candidate does not count as faster."
        )


# A round times each candidate for at least this long: a model that runs in microseconds
# gets more calls per round, so a round's median is not a handful of timer ticks.
MIN_ROUND_MS = 2.0
MAX_CALLS_PER_ROUND = 50


def time_candidates(
    candidates: Sequence[Candidate],
    config: OptimizeConfig,
    inputs: Mapping[int, Any],
    *,
    device: str = "cpu",
    log: Log,
) -> tuple[list[Candidate], Timing]:
    """Time every candidate that runs, interleaved, at each batch size; then, while a
    feasible candidate's interval at the objective's batch size is undecided and the budget
    lasts, add rounds for FP32 and every feasible candidate (all of them, so that every
    feasible candidate's numbers come from the same rounds)."""
    ready = [c for c in candidates if c.runs]
    settings = config.settings()
    timings: dict[str, dict[int, Any]] = {c.name: {} for c in ready}
    b_obj = config.objective_batch
    calls: dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        runners = {c.name: stack.enter_context(open_runner(c, device, settings)) for c in ready}
        for b in config.batch_sizes:
            calls[b] = _calls_per_round(runners[REFERENCE], b, inputs.get(b), config)
            for r in benchmark(
                runners, b, inputs=inputs.get(b), warmup=config.warmup,
                iters=calls[b] * config.rounds, rounds=config.rounds,
            ):  # fmt: skip
                timings[r.name][b] = r
                log(
                    f"bench     {r.name} batch {b}: median {ms(r.median_ms)} ms, p90 {ms(r.p90_ms)}"
                )
        extra, spent, stop = 0, 0.0, ""
        undecided = _undecided(ready, timings, config)
        start = time.perf_counter()
        while undecided and config.goal.objective != "size" and b_obj in calls:
            if spent >= config.budget_s:
                stop = "budget"
                break
            if config.rounds + extra >= MAX_ROUNDS:
                stop = "rounds"
                break
            group = [REFERENCE, *(c.name for c in ready if c.feasible and c.name != REFERENCE)]
            log(f"rounds    {', '.join(undecided)} undecided at batch {b_obj}: 2 more rounds")
            for r in benchmark(
                {n: runners[n] for n in group}, b_obj, inputs=inputs.get(b_obj),
                warmup=ROUND_WARMUP, iters=2 * calls[b_obj], rounds=2,
                first_round=config.rounds + extra,
            ):  # fmt: skip
                timings[r.name][b_obj] = merge_results(timings[r.name][b_obj], r)
            extra += 2
            spent = time.perf_counter() - start
            undecided = _undecided(ready, timings, config)
    out = []
    for c in candidates:
        if c.name not in timings:
            out.append(c)
            continue
        ts = tuple(timings[c.name][b] for b in config.batch_sizes if b in timings[c.name])
        ref_t = timings[REFERENCE].get(b_obj)
        own = timings[c.name].get(b_obj)
        sp = paired_speedup(ref_t.rounds_ms, own.rounds_ms) if ref_t and own else None
        out.append(replace(c, timings=ts, speedup=sp))
    busy = tuple(c.name for c in out for t in c.timings if t.contention)
    return out, Timing(
        config.rounds, extra, spent, config.budget_s, b_obj, tuple(undecided),
        tuple(dict.fromkeys(busy)), stop or ("" if not undecided else "budget"),
    )  # fmt: skip


def _calls_per_round(reference: Any, batch: int, feeds: Any, config: OptimizeConfig) -> int:
    """Timed calls per round: ``iters / rounds``, or more for a model so fast that a round
    would last under ``MIN_ROUND_MS`` (measured on FP32 with a few calls)."""
    base = max(1, config.iters // config.rounds)
    probe = benchmark({REFERENCE: reference}, batch, inputs=feeds, warmup=2, iters=5)[0]
    if probe.median_ms <= 0:
        return base
    return min(MAX_CALLS_PER_ROUND, max(base, int(MIN_ROUND_MS / probe.median_ms) + 1))


def _undecided(
    ready: Sequence[Candidate], timings: Mapping[str, Mapping[int, Any]], config: OptimizeConfig
) -> list[str]:
    """Candidates that meet the constraints and whose speed-up over FP32 at the objective's
    batch size neither clears the margin, nor falls below it, nor lies within 5% of it
    (``EQUIVALENCE``): their interval straddles it, and is wide."""
    b = config.objective_batch
    ref = timings[REFERENCE].get(b)
    if ref is None:
        return []
    found = []
    for c in ready:
        own = timings[c.name].get(b)
        if c.name == REFERENCE or not c.feasible or own is None:
            continue
        sp = paired_speedup(ref.rounds_ms, own.rounds_ms)
        m = config.goal.margin
        if not (sp.above(m) or sp.below(m) or sp.within(m, EQUIVALENCE)):
            found.append(c.name)
    return found
