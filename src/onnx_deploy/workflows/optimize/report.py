"""The report card: what was tried, judged, timed and chosen, as markdown, JSON and plots.

``ReportCard`` is a frozen result (``summary()`` is the markdown report, ``to_dict()`` its
JSON). ``write_report`` puts into the card's folder: ``report.md``, ``report.json``, the
chosen file as ``model.onnx`` (or ``model.plan``) with its manifest beside it
(``manifest.json``: ``manifest.py``), the Pareto plot and the latency-by-batch plot.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import write_json
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table
from onnx_deploy.core.tables import ms
from onnx_deploy.core.tables import percent
from onnx_deploy.core.timing import Speedup
from onnx_deploy.core.timing import decisive
from onnx_deploy.core.timing import paired_speedup
from onnx_deploy.workflows.optimize.candidates import REFERENCE
from onnx_deploy.workflows.optimize.candidates import Candidate
from onnx_deploy.workflows.optimize.choose import Decision
from onnx_deploy.workflows.optimize.choose import quality
from onnx_deploy.workflows.optimize.config import EQUIVALENCE
from onnx_deploy.workflows.optimize.evaluate import Timing

PLOTS = {"pareto_plot": "pareto.png", "batch_plot": "latency_by_batch.png"}
GENAI_FOLDER = "genai"  # where a chosen onnxruntime-genai folder is copied


@dataclass(frozen=True)
class ReportCard(Result):
    """What ``optimize`` tried, measured and chose. ``summary()`` is the markdown report."""

    COMPUTED = ("contention", "front", "chosen_candidate")

    model: str
    target: str
    goal: str  # the goal as a sentence (``Goal.describe``)
    objective: str
    objective_batch: int
    margin: float  # the speed-up a candidate's interval must clear (1: just faster)
    candidates: tuple[Candidate, ...]
    chosen: str  # '' when no candidate met the constraints
    batch_sizes: tuple[int, ...]
    decision: Decision
    timing: Timing
    data: str  # where calibration and validation inputs came from
    environment: dict[str, Any] = field(default_factory=dict, compare=False)
    notes: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    # --- reading it ---------------------------------------------------------------------

    def candidate(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}; candidates: {[c.name for c in self.candidates]}")

    @property
    def chosen_candidate(self) -> Candidate | None:
        return self.candidate(self.chosen) if self.chosen else None

    def speedup(self, name: str, batch_size: int | None = None) -> Speedup | None:
        """``name``'s paired speed-up over FP32 at ``batch_size`` (default: the objective's)."""
        b = batch_size or self.objective_batch
        ref, other = self.candidate(REFERENCE).timing(b), self.candidate(name).timing(b)
        if ref is None or other is None:
            return None
        return paired_speedup(ref.rounds_ms, other.rounds_ms)

    @property
    def front(self) -> list[str]:
        """The Pareto front's candidates (quality, latency at the objective's batch, size)."""
        return [c.name for c in self.candidates if c.on_front]

    @property
    def contention(self) -> list[str]:
        """Busy-machine warnings of the timings (``BenchmarkResult.contention``)."""
        if not self.timing.busy:
            return []
        return [
            f"busy machine: the timings of {', '.join(self.timing.busy)} spread widely (p90 "
            "over 1.5x the median, or a CV over 40%); the intervals above carry that noise, "
            "and the rounds added to decide them say how much it took"
        ]

    def contradictions(self) -> list[str]:
        """Verdicts whose words and shown numbers disagree ('' list: none). Each verdict that
        quotes an interval is read back: "the fastest" needs its low bound above the margin,
        "slower" a high bound below 1, "not faster ... beyond this run's noise" a low bound
        not above the margin, "within this run's noise" an interval that includes 1,
        "within 5%" or "no difference beyond 5%" an interval inside that band, "not by the
        margin" a low bound between 1 and the margin; a failed accuracy budget a drop above
        the budget. The report card is written so this list is empty; tests and notebooks
        hold it to that."""
        import re

        interval = re.compile(r"(?:95% interval )([\d.]+)-([\d.]+)")
        found = []
        for c in self.candidates:
            text = c.verdict
            bounds = [(float(a), float(b)) for a, b in interval.findall(text)]
            first = bounds[0] if bounds else None
            ok = True
            if first is not None:
                lo, hi = first
                if text.startswith(("chosen: the fastest", "the fastest")):
                    ok = lo > self.margin
                elif text.startswith("slower than") and ", which ran " in text:
                    ok = lo > self.margin  # the interval quoted is the faster one's
                elif text.startswith("slower than"):
                    ok = hi < 1.0
                elif text.startswith("not faster than FP32"):
                    ok = lo <= self.margin
                elif "but not by the" in text:
                    ok = 1.0 < lo <= self.margin
                elif "within this run's noise" in text:
                    ok = lo <= 1.0 <= hi
                elif "within 5%" in text or "no difference beyond 5%" in text:
                    center = self.margin if text.startswith("as fast as FP32") else 1.0
                    ok = lo >= center / EQUIVALENCE and hi <= center * EQUIVALENCE
            m = re.search(r"is ([\d.]+) points below .* \(at most ([\d.]+) allowed\)", text)
            if m:
                ok = ok and float(m.group(1)) > float(m.group(2))
            if not ok:
                found.append(f"{c.name}: {text}")
        return found

    # --- as text -----------------------------------------------------------------------

    def table(self) -> str:
        """One row per candidate that ran: its judgement, size, timings, speed-ups and verdict."""
        bs = self.batch_sizes
        head = ["candidate", "runs on", "accuracy", "agreement", "max abs", "cosine", "size"]
        head += [f"p50 / p90 ms (b{b})" for b in bs]
        head += [f"vs FP32 (b{b})" for b in bs]
        head += ["verdict"]
        rows = []
        for c in self.candidates:
            if not c.runs:
                continue
            cells = [
                f"**{c.name}**" if c.chosen else c.name,
                c.needs,
                percent(c.accuracy),
                percent(c.agreement),
                "-" if c.max_abs is None else f"{c.max_abs:.2e}",
                "-" if c.min_cosine is None else f"{c.min_cosine:.4f}",
                human_size(c.size),
            ]
            for b in bs:
                t = c.timing(b)
                cells.append("-" if t is None else f"{ms(t.median_ms)} / {ms(t.p90_ms)}")
            for b in bs:
                cells.append(self._ratio_cell(c, b))
            cells.append(c.verdict.replace("|", "/"))
            rows.append(cells)
        return format_table(head, rows, markdown=True)

    def _ratio_cell(self, c: Candidate, b: int) -> str:
        sp = self.speedup(c.name, b)
        if sp is None or c.name == REFERENCE:
            return "1.00x" if sp is not None else "-"
        if b == self.objective_batch and sp.decided:
            low, high = decisive(sp.low, self.margin), decisive(sp.high, self.margin)
            return f"{sp.estimate:.2f}x ({low}-{high})"
        return f"{sp.estimate:.2f}x"

    def not_run(self) -> list[str]:
        """Candidates that were skipped or failed, grouped by their reason."""
        by_reason: dict[str, list[str]] = {}
        for c in self.candidates:
            if not c.runs:
                by_reason.setdefault(f"{c.status}: {c.reason}", []).append(c.name)
        return [f"{', '.join(names)}: {why}" for why, names in by_reason.items()]

    def front_table(self) -> str:
        with_labels = any(c.accuracy is not None for c in self.candidates)
        head = ["candidate", "accuracy" if with_labels else "quality", f"median ms (b{self.objective_batch})", "size", "runs on"]  # fmt: skip
        rows = []
        for c in self.candidates:
            if not c.on_front:
                continue
            t = c.timing(self.objective_batch)
            q = quality(c, with_labels)
            rows.append([
                f"**{c.name}**" if c.chosen else c.name,
                "-" if q is None else (percent(q) if with_labels or c.agreement is not None else f"{q:.4f}"),
                "-" if t is None else ms(t.median_ms), human_size(c.size), c.needs,
            ])  # fmt: skip
        return format_table(head, rows, markdown=True)

    def summary(self) -> str:
        cpu = self.environment.get("cpu", {})
        lines = [
            f"# Report card: {self.model}",
            "",
            f"Goal: {self.goal}. Target: {self.target}; CPU: {cpu.get('model', '?')} "
            f"({cpu.get('int8_isa', '?')}); data: {self.data}.",
            f"Rule: {self.decision.rule}.",
            f"Timing: {self.timing.summary()}",
            "",
            self.table(),
            "",
            "- the p50 / p90 columns are over all timed calls; the vs FP32 columns and the "
            "verdicts pair the candidates round by round (the mean ratio of rounds run "
            "back to back), which is what the choice compares: where the machine's speed "
            "drifts between rounds, the two can rank close candidates differently",
        ]
        lines += [f"- not run: {line}" for line in self.not_run()]
        chosen = self.chosen_candidate
        if chosen is None:
            lines += [
                "",
                "**Nothing to ship**: no candidate meets the constraints (see the verdicts).",
            ]
        else:
            where = self.files.get("model", chosen.path)
            lines += [
                "",
                f"**Ship {chosen.name}**: {where} ({chosen.needs}); {chosen.verdict}.",
            ]
            if self.decision.tie:
                lines.append(f"- tie: {self.decision.tie}")
            if "manifest" in self.files:
                lines.append(f"- manifest: {self.files['manifest']}")
        lines += ["", f"Pareto front (quality, median latency at batch {self.objective_batch}, size):", "", self.front_table()]  # fmt: skip
        lines += [f"- note: {n}" for n in self.notes]
        lines += [f"- warning: {w}" for w in self.contention]
        return "\n".join(lines)


def write_report(
    card: ReportCard,
    out_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    plots: bool = True,
    manifest: dict[str, Any] | None = None,
) -> ReportCard:
    """Write ``report.md``, ``report.json``, the plots, the chosen model and its manifest
    into ``out_dir``; returns the card with ``files`` filled in."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    chosen = card.chosen_candidate
    keep = Path(chosen.path).resolve() if chosen is not None and chosen.path else None
    for stale in ("model.onnx", "model.plan", GENAI_FOLDER):  # an earlier card's choice
        old = out / stale
        if old.resolve() == keep:
            continue
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
    if chosen is not None and chosen.path is not None:
        if Path(chosen.path).is_dir():  # onnxruntime-genai's folder ships whole
            files["model"] = str(out / GENAI_FOLDER)
            copy_folder(chosen.path, files["model"])
        else:
            files["model"] = str(out / f"model{Path(chosen.path).suffix}")
            copy_model(chosen.path, files["model"], force=True)
        if manifest is not None:
            files["manifest"] = str(write_json(out / "manifest.json", manifest, force=True))
    if plots:
        from onnx_deploy.present.plots import plot_pareto
        from onnx_deploy.present.plots import plot_report_batches
        from onnx_deploy.present.plots import save_figure

        files["pareto_plot"] = save_figure(
            plot_pareto(card), out / PLOTS["pareto_plot"], force=True
        )
        files["batch_plot"] = save_figure(
            plot_report_batches(card), out / PLOTS["batch_plot"], force=True
        )
    files["markdown"] = str(out / "report.md")
    files["json"] = str(out / "report.json")
    card = replace(card, files=files)
    write_json(files["json"], card.to_dict(), force=True)
    with atomic_output(files["markdown"], force=force) as tmp:
        tmp.write_text(markdown(card, plots))
    return card


def markdown(card: ReportCard, plots: bool = True) -> str:
    """The report file: the summary, each candidate's making, the plots, the environment."""
    env = card.environment
    versions = ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
    cpu = env.get("cpu", {})
    lines = [card.summary(), "", "## Candidates", ""]
    for c in card.candidates:
        chain = " -> ".join(c.chain) or "as given"
        what = c.details or c.reason
        lines.append(f"- **{c.name}** ({chain}; {c.runtime}, {c.precision} tolerance): {what}")
    if plots:
        lines += ["", "## Plots", "", "![Pareto front](pareto.png)", "",
                  "![latency by batch size](latency_by_batch.png)"]  # fmt: skip
    lines += [
        "",
        "## Environment",
        "",
        f"- CPU: {cpu.get('model', '?')}, {cpu.get('physical_cores') or '?'} cores "
        f"({cpu.get('logical_cpus') or '?'} logical CPUs), INT8 row {cpu.get('int8_isa', '?')}"
        f"; intra-op threads: {env.get('threads') or 'one per core (onnxruntime default)'}"
        f"; spinning: {env.get('spinning', 'default')}"
        + (
            ""
            if env.get("spinning") is False
            else ", stopped when each call returns (the candidates take turns)"
        ),
        f"- Python {env.get('python', '?')} on {env.get('platform', '?')}",
        f"- {versions}",
        f"- made in {card.seconds:.0f} s",
    ]
    return "\n".join(lines) + "\n"


def copy_folder(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a folder beside ``dst`` first, then swap it in (the card's outputs are replaced
    as a whole: ``optimize`` refused an existing card without ``--force`` before this)."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_model(src: str | os.PathLike[str], dst: str | os.PathLike[str], force: bool) -> None:
    """Copy a model atomically; one with external data is re-saved so that its data file
    takes the new name (a model refers to its data file by name)."""
    from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
    from onnx_deploy.core.files import write_onnx

    src = Path(src)
    with atomic_output(dst, force=force) as tmp:
        if src.with_name(src.name + EXTERNAL_DATA_SUFFIX).exists():
            import onnx

            write_onnx(onnx.load(str(src)), tmp, external_data=True)
        else:
            shutil.copyfile(src, tmp)
