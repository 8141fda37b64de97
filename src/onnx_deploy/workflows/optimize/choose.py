"""The choice: the candidate that best meets the user's goal, decided beyond this run's
noise, every other candidate's reason in numbers, and the Pareto front.

For ``latency`` and ``throughput`` at the objective's batch size:

1. a candidate is *feasible* when it runs and meets every constraint (its tolerance, the
   accuracy it may lose, agreement, size);
2. it is *faster than FP32* when the 95% interval of its paired per-round speed-up lies
   above the margin (1, or the user's ``min_speedup``); the fastest such is the anchor
   (FP32 itself when none is);
3. candidates level with the anchor in speed (the interval of their paired ratio to it
   includes 1: a difference the interval decides counts, however small) tie with it; the
   card stops adding rounds to a tie whose interval lies within 5% either way
   (``EQUIVALENCE``: no difference beyond 5%); a tie goes to the one
   faster at the other batch sizes timed (decided pairwise, beyond noise), then the higher
   precision, then the smaller file, then the one that asks less of the machine it ships
   to (another runtime, contrib ops, INT8 types of one kind of CPU), then the faster
   estimate.

For ``size``: the smallest feasible file (within 1%, the faster one). Every verdict quotes
the numbers that decide it, each shown on its true side of the rule's threshold
(``core.timing.decisive``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace

from onnx_deploy.core.files import human_size
from onnx_deploy.core.results import Result
from onnx_deploy.core.timing import Speedup
from onnx_deploy.core.timing import paired_speedup
from onnx_deploy.workflows.optimize.candidates import REFERENCE
from onnx_deploy.workflows.optimize.candidates import Candidate
from onnx_deploy.workflows.optimize.config import EQUIVALENCE
from onnx_deploy.workflows.optimize.config import OptimizeConfig

# a lower precision must earn its place: in a tie, the higher precision ships
PRECISION_RANK = {"fp32": 0, "bf16": 1, "fp16": 1, "int8": 2}
SAME_SIZE = 0.01  # files within 1% of each other count as the same size in a tie


@dataclass(frozen=True)
class Decision(Result):
    """What was chosen and how: the rule in words, the tie it settled (if any)."""

    chosen: str
    rule: str
    tie: str = ""

    def summary(self) -> str:
        return f"chosen {self.chosen or 'nothing'}: {self.rule}" + (
            f" {self.tie}" if self.tie else ""
        )


def rule_text(config: OptimizeConfig) -> str:
    """The choice rule as a sentence."""
    goal = config.goal
    if goal.objective == "size":
        return "the smallest feasible file; files within 1% of it: the faster one"
    threshold = f"{goal.margin:.2f}"
    return (
        f"a candidate is faster than FP32 when the 95% interval of its paired per-round "
        f"speed-up at batch {config.objective_batch} lies above {threshold} (an interval "
        f"around it within {100 * (EQUIVALENCE - 1):.0f}% either way: as fast); the fastest "
        "such ships (FP32 when none is); candidates level with it (an interval that includes "
        "1: within this run's noise) tie, and a tie goes to the one faster at the other "
        "batch sizes timed, then the higher precision, then the smaller file, then the one "
        "asking less of the machine it ships to (another runtime, contrib ops, INT8 types of "
        "one CPU kind)"
    )


def _pair(config: OptimizeConfig, a: Candidate, b: Candidate, batch: int | None = None) -> Speedup:
    """``b``'s speed relative to ``a`` at ``batch`` (default: the objective's; above 1:
    faster), paired round by round."""
    batch = batch or config.objective_batch
    ta, tb = a.timing(batch), b.timing(batch)
    if ta is None or tb is None:
        nan = float("nan")
        return Speedup(nan, nan, nan, 0)
    return paired_speedup(ta.rounds_ms, tb.rounds_ms)


def _level(pair: Speedup) -> str:
    """How two candidates are level in speed ('' when they are not): their interval
    includes 1. A difference the interval decides counts, however small; the 5% band
    (``EQUIVALENCE``) only lets the card stop adding rounds to an interval that includes 1."""
    if not pair.below(1.0) and not pair.above(1.0):
        return "within this run's noise"
    return ""


@dataclass(frozen=True)
class Tie:
    """The candidates level with the anchor at the objective's batch size, and how they
    fare against each other at the other batch sizes timed (``elsewhere``: decided wins
    minus decided losses, each a paired interval that excludes 1)."""

    members: tuple[Candidate, ...]
    elsewhere: dict[str, int]
    smallest: int
    config: OptimizeConfig

    @classmethod
    def of(cls, members: Sequence[Candidate], config: OptimizeConfig) -> Tie:
        others = [b for b in config.batch_sizes if b != config.objective_batch]
        score = {c.name: 0 for c in members}
        for c in members:
            for d in members:
                if d is c:
                    continue
                for b in others:
                    pair = _pair(config, d, c, b)
                    score[c.name] += pair.above(1.0) - pair.below(1.0)
        return cls(tuple(members), score, min(c.size for c in members), config)

    def key(self, c: Candidate) -> tuple[int, int, int, int, float]:
        size = 0 if c.size <= self.smallest * (1 + SAME_SIZE) else c.size
        estimate = c.speedup.estimate if c.speedup is not None else 0.0
        rank = PRECISION_RANK.get(c.precision, 3)
        return (-self.elsewhere[c.name], rank, size, c.requirements, -estimate)

    def winner(self) -> Candidate:
        return min(self.members, key=self.key)

    def why(self, loser: Candidate, winner: Candidate) -> str:
        """Why ``loser`` lost the tie to ``winner``, in the order the tie is settled."""
        lk, wk = self.key(loser), self.key(winner)
        if lk[0] != wk[0]:
            for b in self.config.batch_sizes:
                pair = _pair(self.config, loser, winner, b)
                if b != self.config.objective_batch and pair.above(1.0):
                    return f"{winner.name} is faster at batch {b}, {pair.text(1.0, 'its speed')}"
            return (
                f"{winner.name} is faster than more of the tied candidates at the other batch sizes"
            )
        if lk[1] != wk[1]:
            return f"{winner.name} keeps the higher precision ({winner.precision} vs {loser.precision})"
        if lk[2] != wk[2]:
            small, large = human_size(winner.size), human_size(loser.size)
            if small == large:  # rounded alike: the bytes say it
                small, large = f"{winner.size:,} B", f"{loser.size:,} B"
            return f"{winner.name} is smaller ({small} vs {large})"
        if lk[3] != wk[3]:
            spared = [a for a in loser.asks if a not in winner.asks]
            return f"{winner.name} does not need {' or '.join(spared)}"
        return f"{winner.name}'s estimate is higher"


def choose(
    candidates: Sequence[Candidate], config: OptimizeConfig
) -> tuple[list[Candidate], Decision]:
    """The chosen candidate and every candidate's verdict (the module docstring)."""
    feasible = [c for c in candidates if c.feasible and c.timings]
    if not feasible:
        out = [replace(c, verdict=_failed(c)) for c in candidates]
        return out, Decision("", "no candidate meets the constraints: " + rule_text(config))
    if config.goal.objective == "size":
        return _by_size(candidates, feasible, config)
    return _by_speed(candidates, feasible, config)


def _failed(c: Candidate) -> str:
    if not c.runs:
        return f"{c.status}: {c.reason}"
    if not c.passed:
        return "fails: " + "; ".join(c.fails)
    return "not timed"


def standing(
    candidates: Sequence[Candidate], config: OptimizeConfig
) -> tuple[Candidate, list[Candidate], list[Candidate]]:
    """Where the speed objective stands: the anchor (the fastest candidate faster than FP32
    beyond noise and margin, or FP32), the candidates faster than FP32, and the tie (the
    anchor and the candidates level with it). Needs the candidates judged and timed."""
    margin = config.goal.margin
    feasible = [c for c in candidates if c.feasible and c.timings]
    ref = next(c for c in candidates if c.name == REFERENCE)
    faster = [
        c for c in feasible
        if c is not ref and c.speedup is not None and c.speedup.above(margin)
    ]  # fmt: skip
    if faster:
        anchor = max(faster, key=lambda c: c.speedup.estimate)  # type: ignore[union-attr]
        pool = faster
    elif ref in feasible:  # level with FP32: an interval that includes 1
        anchor = ref
        pool = [
            c for c in feasible
            if c.speedup is not None and not c.speedup.below(1.0) and not c.speedup.above(1.0)
        ]  # fmt: skip
    else:  # FP32 itself fails a constraint (its size): the fastest feasible one
        anchor = max(feasible, key=lambda c: c.speedup.estimate if c.speedup else 0.0)
        pool = feasible
    tied = [anchor] + [c for c in pool if c is not anchor and _level(_pair(config, anchor, c))]
    return anchor, faster, tied


def _by_speed(
    candidates: Sequence[Candidate], feasible: list[Candidate], config: OptimizeConfig
) -> tuple[list[Candidate], Decision]:
    b = config.objective_batch
    margin = config.goal.margin
    ref = next(c for c in candidates if c.name == REFERENCE)
    anchor, faster, tied = standing(candidates, config)
    tie = Tie.of(tied, config)
    chosen = tie.winner()
    verdicts = {}
    for c in candidates:
        if c is chosen:
            verdicts[c.name] = _chosen_text(c, anchor, ref, config, tie)
        elif not c.feasible or not c.timings:
            verdicts[c.name] = _failed(c)
        elif c is anchor:
            lead = (
                f"the fastest at batch {b}, {c.speedup.text(margin, _SPEED)}; but "
                if c is not ref and c.speedup is not None
                else f"no candidate was faster than FP32 at batch {b} beyond this run's noise; but "
            )
            won = tie.why(c, chosen).removeprefix(chosen.name + " ")
            pair = _pair(config, anchor, chosen)
            verdicts[c.name] = (
                f"{lead}{chosen.name} is as fast {_level(pair)}, "
                f"{pair.text(1.0, 'its speed')}, and {won}"
            )
        elif c in tied:
            pair = _pair(config, anchor, c)
            verdicts[c.name] = (
                f"as fast as {anchor.name} at batch {b} {_level(pair)}, "
                f"{pair.text(1.0, 'its speed')}; but {tie.why(c, chosen)}"
            )
        elif c in faster:
            verdicts[c.name] = (
                f"slower than {anchor.name} at batch {b}: "
                f"{_pair(config, anchor, c).text(1.0, 'its speed')}"
            )
        elif c is ref and anchor.speedup is not None:
            verdicts[c.name] = (
                f"slower than {anchor.name} at batch {b}, which ran "
                f"{anchor.speedup.text(margin, _SPEED)}"
            )
        else:
            verdicts[c.name] = _not_faster(c, margin, b)
    out = [replace(c, verdict=verdicts[c.name]) for c in candidates]
    settled = (
        f"{chosen.name} won a tie with {anchor.name}: {tie.why(anchor, chosen)}."
        if chosen is not anchor
        else ""
    )
    return out, Decision(chosen.name, rule_text(config), settled)


_SPEED = "FP32's speed"


def _chosen_text(
    c: Candidate, anchor: Candidate, ref: Candidate, config: OptimizeConfig, tie: Tie
) -> str:
    b, margin = config.objective_batch, config.goal.margin
    if c is anchor and c is not ref and c.speedup is not None:
        return f"chosen: the fastest at batch {b}, {c.speedup.text(margin, _SPEED)}"
    if c is anchor:
        return f"chosen: no candidate was faster than FP32 at batch {b} beyond this run's noise"
    won = tie.why(anchor, c).removeprefix(c.name + " ")
    pair = _pair(config, anchor, c)
    return (
        f"chosen: as fast as {anchor.name} at batch {b} {_level(pair)}, "
        f"{pair.text(1.0, 'its speed')}, and {won}"
    )


def _not_faster(c: Candidate, margin: float, b: int) -> str:
    sp = c.speedup
    if sp is None:
        return "not timed at the objective's batch size"
    if sp.below(1.0):
        return f"slower than FP32 at batch {b}: {sp.text(1.0, _SPEED)}"
    if margin > 1.0 and sp.above(1.0):
        return (
            f"faster than FP32 at batch {b}, but not by the {margin:.2f}x margin: "
            f"{sp.text(margin, _SPEED)}"
        )
    if sp.within(margin, EQUIVALENCE):
        return (
            f"as fast as FP32 at batch {b}: {sp.text(margin, _SPEED)}, no difference beyond "
            f"{100 * (EQUIVALENCE - 1):.0f}%"
        )
    return (
        f"not faster than FP32 at batch {b} beyond this run's noise: "
        f"{sp.text(margin, _SPEED)}, an interval that does not lie above {margin:.2f}"
    )


def _by_size(
    candidates: Sequence[Candidate], feasible: list[Candidate], config: OptimizeConfig
) -> tuple[list[Candidate], Decision]:
    smallest = min(c.size for c in feasible)
    same = [c for c in feasible if c.size <= smallest * (1 + SAME_SIZE)]
    chosen = max(same, key=lambda c: c.speedup.estimate if c.speedup else 0.0)
    verdicts = {}
    for c in candidates:
        if c is chosen:
            verdicts[c.name] = f"chosen: the smallest feasible file ({human_size(c.size)})"
        elif not c.feasible or not c.timings:
            verdicts[c.name] = _failed(c)
        elif c in same:
            verdicts[c.name] = (
                f"as small as {chosen.name} ({human_size(c.size)} vs {human_size(chosen.size)}), "
                f"slower: {_pair(config, chosen, c).text(1.0, 'its speed')}"
            )
        else:
            verdicts[c.name] = (
                f"larger than {chosen.name} ({human_size(c.size)} vs {human_size(chosen.size)})"
            )
    out = [replace(c, verdict=verdicts[c.name]) for c in candidates]
    return out, Decision(chosen.name, rule_text(config))


def quality(c: Candidate, with_labels: bool) -> float | None:
    """What the front measures a candidate's quality by: accuracy with labels, else
    agreement with FP32 where the outputs are classifier-shaped, else the lowest cosine."""
    if with_labels:
        return c.accuracy
    return c.agreement if c.agreement is not None else c.min_cosine


def pareto_front(candidates: Sequence[Candidate], batch: int) -> list[Candidate]:
    """Candidates (feasible and timed) that no other beats on quality, latency at
    ``batch`` and size at once, in order of latency. Latency is compared as the choice
    compares it: one candidate beats another only when its paired speed-up over the other
    lies above 1; within this run's noise, they are level."""
    with_labels = any(c.accuracy is not None for c in candidates)
    points = [
        (c, q) for c in candidates
        if c.feasible and c.timing(batch) is not None
        and (q := quality(c, with_labels)) is not None
    ]  # fmt: skip

    def speed(a: Candidate, b: Candidate) -> Speedup:  # b's speed relative to a
        return paired_speedup(a.timing(batch).rounds_ms, b.timing(batch).rounds_ms)

    front = []
    for c, q in points:
        dominated = False
        for other, q2 in points:
            if other is c:
                continue
            pair = speed(c, other)
            not_slower, faster = not pair.below(1.0), pair.above(1.0)
            if (
                q2 >= q
                and other.size <= c.size
                and not_slower
                and (q2 > q or other.size < c.size or faster)
            ):
                dominated = True
                break
        if not dominated:
            front.append(c)
    return sorted(front, key=lambda c: c.timing(batch).median_ms)
