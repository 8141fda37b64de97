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
import math
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
from onnx_deploy.workflows.optimize.candidates import GENAI
from onnx_deploy.workflows.optimize.candidates import REFERENCE
from onnx_deploy.workflows.optimize.candidates import Candidate
from onnx_deploy.workflows.optimize.config import EQUIVALENCE
from onnx_deploy.workflows.optimize.config import MAX_ROUNDS
from onnx_deploy.workflows.optimize.config import OptimizeConfig

Log = Callable[[str], None]


def open_runner(candidate: Candidate, device: str, settings: Any) -> Any:
    """A runner for the candidate's file on its runtime, in its mode, as a context that
    closes it on exit (a runner opens its session when made, and ``with`` alone would
    leave that one open: three 2.4 GB sessions were held at once)."""
    import contextlib

    runtime, mode = resolve(candidate.runtime)
    return contextlib.closing(
        runtime.runner(candidate.path, device, mode=mode, settings=settings, name=candidate.name)  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class TokenJudge:
    """A decoder's judge: greedy tokens on ``prompts`` against the FP32 file, at least
    ``min_identical`` of them identical (``infer.tokens``)."""

    prompts: tuple[tuple[int, ...], ...]
    max_new_tokens: int
    eos_token_id: int | None
    min_identical: float

    def check(self, reference: str, candidate: str) -> Any:
        from onnx_deploy.infer.genai import GenaiTokens
        from onnx_deploy.infer.genai import is_genai_folder
        from onnx_deploy.infer.tokens import OnnxTokens
        from onnx_deploy.infer.tokens import check_tokens

        ref = OnnxTokens(reference)
        cand = GenaiTokens(candidate) if is_genai_folder(candidate) else OnnxTokens(candidate)
        try:
            return check_tokens(
                ref, cand, self.prompts, max_new_tokens=self.max_new_tokens,
                eos_token_id=self.eos_token_id, min_identical=self.min_identical,
            )  # fmt: skip
        finally:
            ref.close()
            cand.close()

    def fails(self, check: Any) -> tuple[str, ...]:
        if check.ok:
            return ()
        n = len(check.prompts)
        need = math.ceil(self.min_identical * n - 1e-9)
        return (
            f"greedy tokens identical on {check.identical}/{n} prompts (at least {need} "
            f"needed; teacher-forced agreement {100 * check.teacher_forced:.1f}%)",
        )


def judge_candidates(
    candidates: Sequence[Candidate],
    batches: Sequence[Any],
    config: OptimizeConfig,
    *,
    labels: Any = None,
    min_agreement: float | str | None = "preset",
    device: str = "cpu",
    tokens: TokenJudge | None = None,
    log: Log,
) -> list[Candidate]:
    """Judge every candidate that runs against the reference (the module docstring); a
    decoder (``tokens``) by its greedy tokens, the elementwise numbers shown beside."""
    ref_c = next(c for c in candidates if c.name == REFERENCE)
    goal = config.goal
    out = []
    ref_acc = None
    if labels is not None:
        with open_runner(ref_c, device, None) as ref:
            ref_acc = task_accuracy(ref, batches, labels)
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
            if c.runtime == GENAI and tokens is not None:  # its own graph: tokens alone
                check = tokens.check(ref_c.path, c.path)
                fails = tokens.fails(check) + _size_fails(c, goal.max_size)
                share = check.identical / len(check.prompts)
                c = replace(c, passed=not fails, fails=fails, agreement=share)
                log(f"validate  {c.name}: {'PASS' if c.passed else 'FAIL ' + '; '.join(fails)}")
                out.append(c)
                continue
            # the reference opened beside each candidate, not held through the loop, and
            # each runs alone (the 600M decoder peaked at 7.1x its file with the reference,
            # the candidate and the token check's two sessions open at once)
            with open_runner(ref_c, device, None) as ref, open_runner(c, device, None) as runner:
                ran = resolve(c.runtime)[0].describe_run(runner)
                ref.close()  # compare opens each again in turn: one model held at a time
                runner.close()
                j = judge(
                    ref, runner, batches, tolerance_for(c.precision, min_agreement),
                    labels=labels, reference_accuracy=ref_acc,
                    max_accuracy_drop=goal.max_accuracy_drop,
                )  # fmt: skip
            if tokens is not None:
                check = tokens.check(ref_c.path, c.path)
                j = replace(
                    j, fails=tokens.fails(check), agreement=check.identical / len(check.prompts)
                )
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
    tie_rounds: int = 0  # rounds added at the other batch sizes to settle a tie
    open_tie: tuple[str, ...] = ()  # the fastest, and those still open against it

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
        if self.tie_rounds:
            extra += f", and {self.tie_rounds} at the other batch sizes to settle a tie"
        head = f"{self.rounds} interleaved rounds at each batch size{extra}"
        if self.decided and not self.open_tie:
            return f"{head}: every interval decided."
        ended = (
            f"the {MAX_ROUNDS}-round limit was reached"
            if self.stop == "rounds"
            else "the budget ended"
        )
        still = []
        if self.undecided:
            still.append(
                f"{', '.join(self.undecided)} undecided against FP32 (an interval straddling "
                "the margin: it does not count as faster)"
            )
        if self.open_tie:
            still.append(
                f"{' and '.join(self.open_tie)} level within this run's noise (an interval "
                "straddling 1, wider than 5%: they tie)"
            )
        return f"{head}: {ended} with {'; '.join(still)}."


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
            fits = {n: r for n, r in runners.items() if r.max_batch is None or b <= r.max_batch}
            for name in runners.keys() - fits.keys():
                log(f"bench     {name} batch {b}: not timed ({runners[name].max_batch_reason})")
            for r in benchmark(
                fits, b, inputs=inputs.get(b), warmup=config.warmup,
                iters=calls[b] * config.rounds, rounds=config.rounds,
            ):  # fmt: skip
                timings[r.name][b] = r
                log(
                    f"bench     {r.name} batch {b}: median {ms(r.median_ms)} ms, p90 {ms(r.p90_ms)}"
                )
        extra, spent, stop, extra_elsewhere = 0, 0.0, "", 0
        undecided, open_tie = _undecided(ready, timings, config)
        start = time.perf_counter()
        while (undecided or open_tie) and config.goal.objective != "size" and b_obj in calls:
            if spent >= config.budget_s:
                stop = "budget"
                break
            if config.rounds + extra >= MAX_ROUNDS:
                stop = "rounds"
                break
            group = [REFERENCE, *(c.name for c in ready if c.feasible and c.name != REFERENCE
                                  and b_obj in timings[c.name])]  # fmt: skip
            still = ", ".join(
                [*undecided, *(["the tie of " + " and ".join(open_tie)] if open_tie else [])]
            )
            log(f"rounds    {still} open at batch {b_obj}: 2 more rounds")
            for r in benchmark(
                {n: runners[n] for n in group}, b_obj, inputs=inputs.get(b_obj),
                warmup=ROUND_WARMUP, iters=2 * calls[b_obj], rounds=2,
                first_round=config.rounds + extra,
            ):  # fmt: skip
                timings[r.name][b_obj] = merge_results(timings[r.name][b_obj], r)
            extra += 2
            spent = time.perf_counter() - start
            undecided, open_tie = _undecided(ready, timings, config)
        if not stop and config.goal.objective != "size":
            settled = _settle_tie(candidates, timings, runners, inputs, calls, config, start, log)
            extra_elsewhere, spent = settled
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
        tuple(dict.fromkeys(busy)), stop, extra_elsewhere, tuple(open_tie),
    )  # fmt: skip


def _provisional(
    candidates: Sequence[Candidate], timings: Mapping[str, Mapping[int, Any]], b_obj: int
) -> list[Candidate]:
    """The candidates with the timings so far and their speed-up over FP32."""
    ref = timings[REFERENCE].get(b_obj)
    out = []
    for c in candidates:
        own = timings.get(c.name, {})
        ts = tuple(own.values())
        sp = paired_speedup(ref.rounds_ms, own[b_obj].rounds_ms) if ref and b_obj in own else None
        out.append(replace(c, timings=ts, speedup=sp))
    return out


def _settle_tie(
    candidates: Sequence[Candidate],
    timings: dict[str, dict[int, Any]],
    runners: Mapping[str, Any],
    inputs: Mapping[int, Any],
    calls: Mapping[int, int],
    config: OptimizeConfig,
    start: float,
    log: Log,
) -> tuple[int, float]:
    """Candidates level at the objective's batch size tie; the tie goes first to the one
    faster at the other batch sizes. Where two tied candidates are still open there (an
    interval that straddles 1 and is wider than 5%), add rounds at that batch size for the
    tie and FP32 while the budget lasts. Returns the rounds added and the seconds spent."""
    from onnx_deploy.workflows.optimize.choose import standing

    b_obj = config.objective_batch
    _, _, tied = standing(_provisional(candidates, timings, b_obj), config)
    added, spent = 0, time.perf_counter() - start
    for b in (b for b in config.batch_sizes if b != b_obj):
        names = [c.name for c in tied if b in timings.get(c.name, {})]
        if len(names) < 2:
            continue
        while spent < config.budget_s and config.rounds + added < 2 * MAX_ROUNDS:
            open_pairs = [
                (x, y) for i, x in enumerate(names) for y in names[i + 1 :]
                if not _settled(paired_speedup(timings[x][b].rounds_ms, timings[y][b].rounds_ms))
            ]  # fmt: skip
            if not open_pairs:
                break
            group = list(dict.fromkeys([REFERENCE, *names]))
            log(f"rounds    the tie of {', '.join(names)}: 2 more rounds at batch {b}")
            first = max(max(timings[n][b].rounds_ms) for n in group) + 1
            for r in benchmark(
                {n: runners[n] for n in group}, b, inputs=inputs.get(b), warmup=ROUND_WARMUP,
                iters=2 * calls[b], rounds=2, first_round=first,
            ):  # fmt: skip
                timings[r.name][b] = merge_results(timings[r.name][b], r)
            added += 2
            spent = time.perf_counter() - start
    return added, spent


def _settled(pair: Any) -> bool:
    return pair.above(1.0) or pair.below(1.0) or pair.within(1.0, EQUIVALENCE)


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
) -> tuple[list[str], list[str]]:
    """Feasible candidates whose speed at the objective's batch size is still open and could
    change the choice: against FP32, an interval that neither clears the margin, nor falls
    below it, nor lies within 5% of it (``EQUIVALENCE``), and that reaches up to the best
    speed-up decided so far; among those decided faster, one whose interval against the
    fastest still straddles 1 and is wider than 5% (the tie is not yet settled by data).
    Returns the open ones against FP32, and the fastest with those open against it."""
    b = config.objective_batch
    if REFERENCE not in timings or b not in timings[REFERENCE]:
        return [], []
    m = config.goal.margin
    rounds = {
        c.name: timings[c.name][b].rounds_ms for c in ready if c.feasible and b in timings[c.name]
    }
    rounds[REFERENCE] = timings[REFERENCE][b].rounds_ms
    vs_ref = {n: paired_speedup(rounds[REFERENCE], r) for n, r in rounds.items() if n != REFERENCE}
    faster = {n: sp for n, sp in vs_ref.items() if sp.above(m)}
    best = max(faster, key=lambda n: faster[n].estimate, default="")
    top = faster[best].estimate if best else m
    open_vs_ref = [
        n for n, sp in vs_ref.items()
        if not (sp.above(m) or sp.below(m) or sp.within(m, EQUIVALENCE))
        and (not sp.decided or sp.high >= top / EQUIVALENCE)
    ]  # fmt: skip
    open_vs_best = [
        n for n in faster if n != best and not _settled(paired_speedup(rounds[best], rounds[n]))
    ]
    return open_vs_ref, [best, *open_vs_best] if open_vs_best else []
