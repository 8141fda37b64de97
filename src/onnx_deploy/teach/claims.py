"""Every number a reader sees is backed: prose against the outputs and measurements behind it.

    python -m onnx_deploy.teach.claims            # check notebooks/, SKILL.md, skills/, README.md

A *number claim* is a decimal (``1.48``, ``98.2%``, ``5.4e-07``), a version (``1.31.1``), an
integer with a unit (``4x``, ``90 s``, ``110 KB``, ``12 nodes``, ``3 points``, ``15 px``,
``900 tok/s``, ``110M``) or a number in words before "times" ("three times faster") in prose;
code spans, code blocks, link targets and HTML comments are not prose. A claim is backed
when a source number

- rounds to it at the precision written (``3.2x`` by ``3.23``; ``98%`` by ``0.981``);
- carries a unit of the same kind (a speed-up needs a printed ratio, not a latency that
  shares its digits; a percentage a percentage or a fraction printed precisely enough, never
  a bare ``1``; a time, size or pixel count may come from a table whose header has the unit);
- sits on an output line that shares a word with the claim's paragraph (a table row: with
  its header and caption): the words that say what the number measures;
- agrees in direction: "faster", "gained" and the like beside the claim against "slower",
  "lost" or a signed change printed on the source's line;
- was printed by a cell nbval compares, or the claim says it is a run's ("this run",
  "on this machine", "notebook 09's run"): a timing printed in an ignored cell backs only a
  hedged claim. A plot backs nothing.

Sources: in a notebook's markdown cell, the outputs of the code cells above it; anywhere, a
linked source in the same paragraph (the same markdown cell in a notebook):
``[...](MEASUREMENTS.md#anchor)`` (that section of the measurements file, or all of it
without an anchor) or ``[...](notebooks/NN_name.ipynb)`` (every output of that notebook).

``notebooks/MEASUREMENTS.md`` is the source itself: each of its ``##`` sections must name
the machine, the command and the date. Bare integers ("batch 8", "opset 18", "2 cores")
are settings, not results, and are not checked; ``CONSTANTS`` lists the few numbers with a
unit that are settings or names (protobuf's 2 GB limit), each with its reason.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path

MEASUREMENTS = "MEASUREMENTS.md"

_UNIT = (
    r"tok/s|tokens/s|GFLOP/s|GOP/s|GB/s|MB/s|GFLOP|MFLOP|"
    r"x|×|%|ms|µs|us|ns|s|MB|KB|kB|GB|MiB|KiB|GiB|dB|px|pp|M|"
    r"points?|nodes?|ops?|operators?|initializers?|parameters?|params|tensors?|files?|times"
)
# a claim's unit and the units a source number may carry to back it: a speed-up is backed
# by a ratio, not by a latency that shares its digits; a percentage by a percentage or a
# fraction, not by any "1"
UNIT_FAMILY = {
    "x": ("x", "×"), "×": ("x", "×"), "times": ("x", "×"),
    "%": ("%", ""), "ms": ("ms", ""), "µs": ("µs", "us", ""), "us": ("µs", "us", ""),
    "s": ("s", ""), "MB": ("MB", ""), "KB": ("KB", "kB", ""), "kB": ("KB", "kB", ""),
    "GB": ("GB", ""),
    "tok/s": ("tok/s", "tokens/s", ""), "tokens/s": ("tok/s", "tokens/s", ""),
    "GFLOP/s": ("GFLOP/s",), "GOP/s": ("GOP/s",), "GB/s": ("GB/s",),
    "GFLOP": ("GFLOP",), "MFLOP": ("MFLOP",),
    "points": ("points", "point", "pp", "%"), "point": ("points", "point", "pp", "%"),
    "pp": ("points", "point", "pp", "%"), "px": ("px", ""),
}  # fmt: skip
WORD_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "twice": 2}  # fmt: skip
WORD_RATIO = re.compile(
    r"\b(?P<word>two|three|four|five|six|seven|eight|nine|ten)\s+times\b|\b(?P<twice>twice)\s+as\b",
    re.I,
)
DIRECTION = {
    "up": (
        "faster",
        "larger",
        "bigger",
        "higher",
        "more",
        "speed-up",
        "gain",
        "gained",
        "gains",
        "above",
        "rose",
        "increased",
    ),
    "down": (
        "slower",
        "smaller",
        "lower",
        "fewer",
        "less",
        "below",
        "loss",
        "lost",
        "loses",
        "drop",
        "dropped",
        "fell",
        "decreased",
    ),
}
_COMPARED_UNITS = ("x", "×", "times", "%", "points", "point", "pp")
_SIGNED = ("points", "point", "pp", "%", "")
# words that mark a claim as this run's (what an output nbval never compares may back)
HEDGE = re.compile(
    r"\b(this run|on this run|in this run|this machine|on this machine|measured here|"
    r"this CPU|on this CPU|committed run)\b|'s run\b",
    re.I,
)
# The reviewed constants: numbers in prose that are settings or names, not results
# (file name, number as written with its unit) -> why it needs no source.
CONSTANTS = {
    ("02_slim.ipynb", "1%"): "the size of the bug the code cell plants, a setting",
    ("07_graph_surgery.ipynb", "2GB"): "protobuf's message size limit",
    ("14_generative.ipynb", "600M"): "the decoder's size class, its name",
    ("README.md", "600M"): "the decoder's size class, its name",
}
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*(?:e[-+]?\d+)?"
# a number not glued to a word before it (resnet18, int8, top-1, x86-64, v3, p99), nor
# part of a metric's name (mAP@0.5, recall@10) ...
_BEFORE = r"(?<![\w.@])(?<![A-Za-z]-)(?<![A-Za-z]\d-)"
CLAIM = re.compile(
    rf"{_BEFORE}(?P<lo>{_NUM})(?:\s?[-–]\s?(?P<hi>{_NUM}))?"
    rf"(?:\s?(?P<unit>{_UNIT}))?(?![\w.]?\w)"
)
SOURCE_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*(?:e[-+]?\d+)?)"
    r"(?:\s?(tok/s|tokens/s|GFLOP/s|GOP/s|GB/s|MB/s|GFLOP|MFLOP|x|×|%|ms|µs|us|s|MB|KB|kB|GB|"
    r"px|pp|points?)(?![\w/]))?"
)
RELEASE = re.compile(
    r"\b(?:torch|torchvision|onnx|onnxscript|onnxslim|onnxruntime(?:-gpu|-web|-node|-genai)?|"
    r"Python|TensorRT|Triton|PyTriton|numpy|transformers|modelopt|opset|IR version|CUDA|"
    r"cuDNN|Node\.js|Chromium|optimum(?:-onnx)?|papermill|nbval|matplotlib|openvino)"
    r"(?:'s)?\s+(?:v|version\s+)?\d+(?:\.\d+)*\+?(?:'s)?",
    re.I,
)
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Number:
    text: str  # as written, without thousands separators
    value: float
    decimals: int  # digits after the point (mantissa digits for 1e-3 forms)
    scientific: bool = False
    version: bool = False
    unit: str = ""  # a source number's unit as printed ("x", "%", "ms", "")
    direction: str = ""  # "up"/"down": a comparison word on the source's line
    compared: bool = True  # False: printed by a cell whose output nbval does not compare
    label: frozenset[str] = frozenset()  # the words on the source's line: what it measures


@dataclass(frozen=True)
class Claim:
    where: str  # file and cell or line
    number: Number
    unit: str
    context: str
    direction: str = ""  # "up"/"down": the comparison word written beside the number
    hedged: bool = False  # the sentence says it is this run's
    why: str = ""  # set when refused: what is wrong beyond "unbacked"
    words: frozenset[str] = frozenset()  # its paragraph's words (a table: with its header)

    def describe(self) -> str:
        what = self.why or "unbacked"
        return f"{self.where}: {self.number.text}{self.unit} {what} in: ...{self.context}..."


@dataclass(frozen=True)
class Report:
    checked: int
    unbacked: tuple[Claim, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.unbacked and not self.problems

    def summary(self) -> str:
        lines = [f"claims    {self.checked} number(s) checked, {len(self.unbacked)} unbacked"]
        lines += [f"  {c.describe()}" for c in self.unbacked]
        lines += [f"  {p}" for p in self.problems]
        if self.unbacked:
            lines.append(
                "  back each one: print it in a cell above, or link the measurements entry "
                "([...](MEASUREMENTS.md#section)) or the notebook that prints it"
            )
        return "\n".join(lines)


def parse_number(text: str) -> Number:
    plain = text.replace(",", "")
    if plain.count(".") > 1:
        return Number(plain, math.nan, 0, version=True)
    if "e" in plain:
        mantissa = plain.split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return Number(plain, float(plain), decimals, scientific=True)
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    return Number(plain, float(plain), decimals)


def prose(markdown: str) -> str:
    """The words a reader reads: no code, no link targets, no comments, no list numbering."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.S)
    text = re.sub(r"^( {0,3})(```|~~~).*?^\1\2[^\n]*$", " ", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = LINK.sub(lambda m: m.group(1), text)
    text = re.sub(r"<[^>\n]+>", " ", text)  # HTML tags and autolinks
    text = re.sub(r"^\s*(#+\s*)?\d+[.)]\s", " ", text, flags=re.M)  # "## 3. Title", "1. step"
    text = re.sub(r"\b\d+(?:\.\d+){3}\b", " ", text)  # an address, 127.0.0.1
    text = RELEASE.sub(" ", text)  # "torch 2.14", "onnxruntime-node 1.30.0": names, not results
    text = re.sub(r"\b(\d+) x (?=\d)", r"\1 by ", text)  # 255 x 127: arithmetic
    return text


def _direction(text: str) -> str:
    words = set(re.findall(r"[a-z-]+", text.lower()))
    up, down = words & set(DIRECTION["up"]), words & set(DIRECTION["down"])
    return "up" if up and not down else "down" if down and not up else ""


_BREAK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*|]|\d+[.)])\s)")


def _paragraph(text: str, at: int) -> str:
    """The paragraph, list item or table row holding ``at``; for a table row, with the
    caption before the table (a paragraph ending in ':')."""
    starts = [m.end() for m in _BREAK.finditer(text, 0, at)]
    start = starts[-1] if starts else 0
    end_m = _BREAK.search(text, at)
    para = text[start : end_m.start() if end_m else len(text)]
    if para.lstrip().startswith("|"):  # a table row: with its header and caption
        lines = text[:start].rstrip("\n").split("\n")
        header = ""
        while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith("|")):
            line = lines.pop()
            header = line if line.strip() else header
        para = header + "\n" + para
        if lines and lines[-1].rstrip().endswith(":"):
            para = lines[-1] + "\n" + para
    return para


def claims_in(markdown: str, where: str) -> list[Claim]:
    text = prose(markdown)
    found = []
    for m in CLAIM.finditer(text):
        unit = m["unit"] or ""
        context = " ".join(text[max(0, m.start() - 50) : m.end() + 20].split())
        clause = re.split(r"[.;:,()]", text[max(0, m.start() - 30) : m.start()])[-1]
        clause += re.split(r"[.;:,()]", text[m.end() : m.end() + 25])[0]
        direction = _direction(clause) if unit in _COMPARED_UNITS else ""
        para = _paragraph(text, m.start())
        hedged, words = bool(HEDGE.search(para)), content_words(para)
        for part in (m["lo"], m["hi"]):
            if part is None:
                continue
            number = parse_number(part)
            is_claim = (
                number.decimals > 0
                or number.scientific
                or number.version
                or "," in part
                or bool(unit)
            )
            if is_claim:
                found.append(Claim(where, number, unit, context, direction, hedged, words=words))
    for m in WORD_RATIO.finditer(text):  # "three times faster", "twice as fast"
        word = (m["word"] or m["twice"]).lower()
        context = " ".join(text[max(0, m.start() - 50) : m.end() + 20].split())
        direction = _direction(text[m.end() : m.end() + 25].split(".")[0])
        number = Number(word, float(WORD_NUMBERS[word]), 0)
        para = _paragraph(text, m.start())
        hedged, words = bool(HEDGE.search(para)), content_words(para)
        found.append(Claim(where, number, "x", context, direction, hedged, words=words))
    return found


def source_numbers(text: str, compared: bool = True) -> list[Number]:
    out = []
    for line in text.splitlines():
        direction = _direction(line)
        label = content_words(line)
        found = list(SOURCE_NUMBER.finditer(line))
        for k, m in enumerate(found):
            unit = m.group(2) or ""
            nxt = found[k + 1] if k + 1 < len(found) else None
            if (
                not unit
                and nxt is not None
                and re.fullmatch(r"\s?[-–]\s?", line[m.end() : nxt.start()])
            ):
                unit = nxt.group(2) or ""  # "6-53 s": the unit of a range is both ends'
            n = parse_number(m.group(1))
            sign = line[m.start() : m.start() + 1]  # "-0.3 points": a signed change's direction
            signed = {"-": "down", "+": "up"}.get(sign) if unit in _SIGNED else None
            out.append(replace(n, unit=unit, direction=signed or direction, compared=compared,
                               label=label))  # fmt: skip
    return out


_STOP = frozenset(
    [
        "the",
        "and",
        "with",
        "from",
        "that",
        "this",
        "than",
        "into",
        "over",
        "under",
        "each",
        "every",
        "were",
        "was",
        "are",
        "for",
        "not",
        "its",
        "their",
        "which",
        "when",
        "what",
        "where",
        "more",
        "less",
        "only",
        "also",
        "per",
        "at",
        "in",
        "on",
        "of",
        "to",
        "an",
        "by",
        "as",
        "is",
        "be",
        "it",
        "or",
        "no",
        "all",
        "one",
        "two",
    ]
)


def content_words(text: str) -> frozenset[str]:
    """The words that can name what a number measures (``u8/s8``, ``fp32``, ``latency``)."""
    return frozenset(
        w for w in re.findall(r"[a-z][a-z0-9_/@.-]*[a-z0-9]", text.lower()) if w not in _STOP
    )


def _rounds_to(source: Number, claim: Number, unit: str) -> bool:
    if claim.version or source.version:
        return claim.text == source.text
    candidates = [source.value]
    if unit == "%":
        candidates.append(source.value * 100)
    for value in candidates:
        if claim.scientific:
            same = f"{value:.{claim.decimals}e}" == f"{claim.value:.{claim.decimals}e}"
            if value and same:
                return True
            continue
        # a source written with fewer decimals than the claim cannot back it (3.2 != 3.23)
        precise_enough = source.decimals >= claim.decimals or value != source.value
        close = abs(round(value, claim.decimals) - claim.value) < 10 ** -(claim.decimals + 3)
        if precise_enough and close:
            return True
    return False


def _unit_fits(claim: Claim, source: Number) -> bool:
    family = UNIT_FAMILY.get(claim.unit)
    if family is None:  # a bare number, a count of nodes or files: any number may back it
        return True
    if claim.unit == "%" and source.unit == "":  # a fraction printed precisely enough, never
        return source.decimals >= claim.number.decimals + 2 and 0 <= source.value <= 1  # "1"
    return source.unit in family


def why_unbacked(claim: Claim, sources: list[Number]) -> str:
    """'' when a source backs the claim, else what is wrong."""
    same = [s for s in sources if _rounds_to(s, claim.number, claim.unit)]
    if not same:
        return "unbacked"
    fitting = [s for s in same if _unit_fits(claim, s)]
    if not fitting:
        units = sorted({s.unit or "no unit" for s in same})
        return f"unbacked (only by numbers printed as {', '.join(units)}, not {claim.unit})"
    if claim.direction:
        agree = [s for s in fitting if s.direction in ("", claim.direction)]
        if not agree:
            return (
                f"contradicted: its outputs say {'slower' if claim.direction == 'up' else 'faster'}"
            )
        fitting = agree
    if claim.words:
        bound = [s for s in fitting if s.label & claim.words]
        if not bound:
            return (
                "unbound: no output line that prints it shares a word with its paragraph "
                "(name what it measures, as the output does)"
            )
        fitting = bound
    if not claim.hedged and not claim.number.version and not any(s.compared for s in fitting):
        return "backed only by an output nbval does not compare: say it is this run's"
    return ""


def backed(claim: Claim, sources: list[Number]) -> bool:
    return not why_unbacked(claim, sources)


# -- sources ---------------------------------------------------------------------------


def output_text(cell: dict) -> str:
    """What a cell printed; a plot backs nothing (its text/plain is ``<Figure ...>``)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(_joined(out.get("text", "")))
        elif out.get("output_type") in ("execute_result", "display_data"):
            data = out.get("data", {})
            if any(k.startswith("image/") for k in data):
                continue
            for kind in ("text/plain", "text/markdown", "text/html"):
                if kind in data:
                    parts.append(_joined(data[kind]))
    return "\n".join(parts)


def compared(cell: dict) -> bool:
    """Whether nbval compares this cell's output (not ``# NBVAL_IGNORE_OUTPUT``)."""
    return "NBVAL_IGNORE_OUTPUT" not in _joined(cell.get("source", ""))


def _joined(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def measurement_sections(path: Path) -> dict[str, str]:
    """GitHub-style anchor -> section text (``""`` -> the whole file)."""
    text = path.read_text(encoding="utf-8")
    sections = {"": text}
    for m in re.finditer(r"^(#{2,4}) (.+)$", text, flags=re.M):
        end = re.compile(rf"^#{{2,{len(m.group(1))}}} ", re.M).search(text, m.end())
        sections[anchor(m.group(2))] = text[m.start() : end.start() if end else len(text)]
    return sections


def anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return slug.replace(" ", "-")


class Sources:
    """The numbers behind links: measurements sections and notebooks' outputs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, list[Number]] = {}
        self.problems: list[str] = []

    def for_link(self, target: str, base: Path) -> list[Number] | None:
        path, _, frag = target.partition("#")
        if "://" in path:
            return None
        file = (base / path).resolve() if path else None
        if file is None or not file.is_file():
            return None
        key = f"{file}#{frag}"
        if key in self._cache:
            return self._cache[key]
        if file.name == MEASUREMENTS:
            sections = measurement_sections(file)
            if frag not in sections:
                self.problems.append(f"{target}: no section #{frag} in {file.name}")
                return None
            numbers = source_numbers(sections[frag])
        elif file.suffix == ".ipynb":
            numbers = [n for c in _cells(file) for n in source_numbers(output_text(c), compared(c))]
        else:
            return None
        self._cache[key] = numbers
        return numbers

    def linked(self, markdown: str, base: Path) -> list[Number]:
        numbers: list[Number] = []
        for _, target in LINK.findall(re.sub(r"`[^`\n]*`", " ", markdown)):
            numbers += self.for_link(target, base) or []
        return numbers


def check_notebook(path: Path, sources: Sources) -> tuple[int, list[Claim]]:
    above: list[Number] = []
    checked, unbacked = 0, []
    for i, cell in enumerate(_cells(path)):
        source = _joined(cell.get("source", ""))
        if cell.get("cell_type") == "code":
            above += source_numbers(output_text(cell), compared(cell))
            continue
        if cell.get("cell_type") != "markdown":
            continue
        claims = claims_in(source, f"{path.name} c{i}")
        if not claims:
            continue
        pool = above + sources.linked(source, path.parent)
        for claim in claims:
            if (path.name, claim.number.text + claim.unit) in CONSTANTS:
                continue
            checked += 1
            why = why_unbacked(claim, pool)
            if why:
                unbacked.append(replace(claim, why=why))
    return checked, unbacked


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(first line number, paragraph) for each run of non-blank lines outside code blocks; a
    paragraph ending in ':' joins the one after it (a caption and its table or list)."""
    text = re.sub(
        r"^( {0,3})(```|~~~).*?^\1\2[^\n]*$",
        lambda m: "\n" * m.group(0).count("\n"),
        text,
        flags=re.S | re.M,
    )
    out: list[tuple[int, str]] = []
    start, lines = 0, []
    for n, line in enumerate([*text.splitlines(), ""], 1):
        if line.strip():
            if not lines:
                start = n
            lines.append(line)
            continue
        if lines:
            block = "\n".join(lines)
            if out and out[-1][1].rstrip().endswith(":"):
                out[-1] = (out[-1][0], out[-1][1] + "\n" + block)
            else:
                out.append((start, block))
            lines = []
    return out


def check_markdown(path: Path, sources: Sources, root: Path) -> tuple[int, list[Claim]]:
    checked, unbacked = 0, []
    body = path.read_text(encoding="utf-8")
    if body.startswith("---\n"):  # frontmatter: a description, checked like prose
        end = body.find("\n---", 4)
        body = "\n" * body[: end + 4].count("\n") + body[end + 4 :]
    for line, block in paragraphs(body):
        claims = claims_in(block, f"{path.relative_to(root)}:{line}")
        if not claims:
            continue
        pool = sources.linked(block, path.parent)
        for claim in claims:
            if (path.name, claim.number.text + claim.unit) in CONSTANTS:
                continue
            checked += 1
            why = why_unbacked(claim, pool)
            if why:
                unbacked.append(replace(claim, why=why))
    return checked, unbacked


DATE = (
    r"20\d\d-\d\d-\d\d|(?:January|February|March|April|May|June|July|August|September|"
    r"October|November|December) 20\d\d"
)


def check_measurements(path: Path) -> list[str]:
    problems = []
    for heading, section in measurement_sections(path).items():
        if not heading or not section.startswith("## "):
            continue
        title = section.splitlines()[0]
        if not re.search(r"\*\*Command", section):
            problems.append(f"{path.name}: '{title}' names no **Command**")
        if not re.search(DATE, section):
            problems.append(f"{path.name}: '{title}' gives no date")
        if re.search(r"upstream|published", section, re.I) and "://" not in section:
            problems.append(f"{path.name}: '{title}' quotes an upstream figure with no source")
    return problems


def documents(root: Path) -> tuple[list[Path], list[Path]]:
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    markdown = [root / "SKILL.md", root / "README.md", *sorted((root / "skills").glob("*/*.md"))]
    return notebooks, [p for p in markdown if p.is_file()]


def check(root: str | Path = ".") -> Report:
    root = Path(root).resolve()
    sources = Sources(root)
    notebooks, markdown = documents(root)
    checked, unbacked = 0, []
    for nb in notebooks:
        n, bad = check_notebook(nb, sources)
        checked, unbacked = checked + n, unbacked + bad
    for md in markdown:
        n, bad = check_markdown(md, sources, root)
        checked, unbacked = checked + n, unbacked + bad
    problems = list(sources.problems)
    measurements = root / "notebooks" / MEASUREMENTS
    if measurements.is_file():
        problems += check_measurements(measurements)
    return Report(checked, tuple(unbacked), tuple(dict.fromkeys(problems)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    report = check(args[0] if args else ".")
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
