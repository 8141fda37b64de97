"""The user's goal and every setting of a report card, in one frozen object.

``Goal`` is what the user wants, stated: an objective (``latency`` or ``throughput`` at one
batch size, or ``size``) and the constraints a candidate must meet (accuracy it may lose,
agreement with FP32, largest file, and a speed-up margin the user may add). "Faster" is
decided by this run's own noise (``core.timing.paired_speedup``), not by a fixed margin.

``OptimizeConfig`` holds the goal and how to get there: the target, the batch sizes timed,
the runtimes, which passes to try, the data, the timing rounds and the time budget, the
session settings. The CLI builds it once from its flags; notebooks and skills build the
same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from onnx_deploy.core.errors import OptimizeError
from onnx_deploy.core.files import human_size

OBJECTIVES = ("latency", "throughput", "size")
TARGETS = ("cpu", "cuda")
DEFAULT_MAX_ACCURACY_DROP = 0.5  # points of accuracy (percent)
# Seconds the card may spend on extra timing rounds after the first ones, to decide a
# candidate whose interval still straddles 1: a few minutes on 2 cores.
DEFAULT_BUDGET_S = 180.0
MAX_ROUNDS = 60  # rounds at the objective's batch size, at most, whatever the budget
# An interval that lies within this factor of the margin either way decides too: the
# candidate is as fast as FP32, give or take 5%, and more rounds would not change the choice.
EQUIVALENCE = 1.05


@dataclass(frozen=True)
class Goal:
    """What the card optimizes for, and the constraints it keeps.

    ``objective``: ``latency`` (median latency at ``batch``), ``throughput`` (samples per
    second at ``batch``) or ``size`` (the smallest file). ``batch``: default 1 for
    latency (the smallest batch size timed when 1 is not) and the largest batch size timed
    for throughput. ``max_accuracy_drop``: points
    of accuracy a candidate may lose against FP32 (with labels). ``min_agreement``: the
    top-1 agreement with FP32 required (None: each precision's preset, 90% for INT8;
    0: any). ``max_size``: bytes. ``min_speedup``: a margin the user may add on top of
    "faster beyond this run's noise" (None: none).
    """

    objective: str = "latency"
    batch: int | None = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    min_agreement: float | None = None
    max_size: int | None = None
    min_speedup: float | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise OptimizeError(
                f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"
            )
        if self.batch is not None and self.batch < 1:
            raise OptimizeError(f"the objective's batch size must be at least 1, got {self.batch}")
        if self.max_accuracy_drop < 0:
            raise OptimizeError("max_accuracy_drop is points of accuracy, 0 or more")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise OptimizeError(
                f"min_agreement is a fraction from 0 to 1, got {self.min_agreement}"
            )
        if self.min_speedup is not None and self.min_speedup < 1:
            raise OptimizeError(f"min_speedup is a ratio of 1 or more, got {self.min_speedup}")

    @property
    def margin(self) -> float:
        """The ratio a candidate's interval must clear to count as faster (1: just faster)."""
        return self.min_speedup or 1.0

    def batch_for(self, batch_sizes: tuple[int, ...]) -> int:
        """The batch size the objective is measured at."""
        if self.batch is not None:
            return self.batch
        if self.objective == "throughput":
            return max(batch_sizes)
        return 1 if 1 in batch_sizes else min(batch_sizes)

    def describe(self, batch_sizes: tuple[int, ...], with_labels: bool) -> str:
        """The goal as a sentence: what is optimized and what is kept."""
        b = self.batch_for(batch_sizes)
        what = {
            "latency": f"the lowest median latency at batch {b}",
            "throughput": f"the most samples per second at batch {b}",
            "size": "the smallest file",
        }[self.objective]
        keep = []
        if with_labels:
            keep.append(f"at most {self.max_accuracy_drop:g} points of accuracy lost")
        keep.append(
            "each precision's agreement preset"
            if self.min_agreement is None
            else f"top-1 agreement with FP32 of at least {100 * self.min_agreement:g}%"
        )
        if self.max_size is not None:
            keep.append(f"files of at most {human_size(self.max_size)}")
        if self.min_speedup is not None:
            keep.append(f"a speed-up of at least {self.min_speedup:.2f}x to leave FP32")
        return f"{what}, keeping {', '.join(keep)}"


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything a report card is made with (the module docstring).

    ``passes``: the passes to try (None: every pass in the registry); a chain is tried
    when all its passes are. ``runtimes``: runtime names (``runtimes.names()``);
    ``rounds``: interleaved rounds at every batch size; ``budget_s``: seconds for extra
    rounds at the objective's batch size until every interval decides (0: none).
    ``calibration``, ``validation``, ``labels``: arrays, dicts by input name or files;
    ``dims``/``inputs``: the signature's ranges and kinds for generated inputs;
    ``prompts``/``max_new_tokens``/``num_prompts``: a decoder's token judge; ``genai``:
    a folder of onnxruntime-genai's model builder, a decoder's candidate beside the files.
    """

    goal: Goal = field(default_factory=Goal)
    target: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 8)
    runtimes: tuple[str, ...] = ("onnxruntime",)
    passes: tuple[str, ...] | None = None
    calibration_size: int | None = 200
    validation_batch: int = 32
    warmup: int = 3
    iters: int = 20
    rounds: int = 5
    budget_s: float = DEFAULT_BUDGET_S
    threads: int | None = None
    spinning: bool | None = None
    plots: bool = True
    force: bool = False
    name: str | None = None
    calibration: Any = field(default=None, compare=False, repr=False)
    validation: Any = field(default=None, compare=False, repr=False)
    labels: Any = field(default=None, compare=False, repr=False)
    # a decoder: the prompts its tokens are judged on (a file or lists of ids; None: drawn
    # from the FP32 file), the new tokens each, and how many prompts when drawn
    prompts: Any = field(default=None, compare=False, repr=False)
    max_new_tokens: int = 16
    num_prompts: int = 32
    dims: tuple[Any, ...] = ()
    inputs: tuple[Any, ...] = ()
    genai: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise OptimizeError(f"target must be one of {TARGETS}, got {self.target!r}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise OptimizeError(f"batch sizes must be positive, got {self.batch_sizes}")
        if self.goal.objective != "size" and self.objective_batch not in self.batch_sizes:
            raise OptimizeError(
                f"the objective's batch size {self.objective_batch} is not among the batch "
                f"sizes timed {list(self.batch_sizes)}: add it to --batch-sizes"
            )
        if "onnxruntime" not in self.runtimes:
            raise OptimizeError("--runtimes must include onnxruntime: its FP32 is the reference")
        from onnx_deploy.runtimes.genai import OnnxRuntimeGenai

        if OnnxRuntimeGenai.name in self.runtimes:
            raise OptimizeError(
                "onnxruntime-genai runs its model builder's folder, not the card's files: "
                "give the folder with --genai DIR"
            )
        if self.rounds < 1 or self.iters < 1 or self.budget_s < 0:
            raise OptimizeError("rounds and iters must be at least 1, the budget 0 or more")

    @property
    def objective_batch(self) -> int:
        return self.goal.batch_for(self.batch_sizes)

    def settings(self) -> Any:
        """The session settings every runner gets: ``threads`` and ``spinning`` (None: the
        runtime's default), and, as the candidates take turns, each ONNX Runtime pool stops
        spinning when its call returns (``SessionSettings.taking_turns``)."""
        from onnx_deploy.infer.sessions import SessionSettings

        return SessionSettings.taking_turns(self.threads, self.spinning)
