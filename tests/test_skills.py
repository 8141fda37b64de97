"""Agent skills: frontmatter, links, names, line counts, and every code block runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from forkserver import ForkServer

from onnx_deploy.cli import build_parser
from onnx_deploy.core.extras import available
from onnx_deploy.teach.skills import install_skills
from onnx_deploy.teach.skills import skill_files

ROOT = Path(__file__).resolve().parents[1]
SKILLS = [ROOT / "SKILL.md", *sorted((ROOT / "skills").glob("*/SKILL.md"))]
DOCS = [*SKILLS, *sorted(p for p in (ROOT / "skills").glob("*/*.md") if p.name != "SKILL.md")]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
REQUIRES = re.compile(r"^#\s*requires:\s*(?P<what>[\w, -]+)$", re.M)
NAME_RULE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def frontmatter(text: str) -> dict[str, str]:
    assert text.startswith("---\n"), "a skill starts with YAML frontmatter"
    block = text[4 : text.index("\n---", 4)]
    fields = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        assert sep and key.strip() and not line.startswith(" "), (
            f"one 'key: value' per line: {line!r}"
        )
        fields[key.strip()] = value.strip()
    return fields


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m["lang"], textwrap.dedent(m["body"])) for m in FENCE.finditer(path.read_text())]


EXPECT = re.compile(r"<!-- expect: (.*?) -->")


def expectations(path: Path) -> list[tuple[bool, list[str]]]:
    """Per code block: whether a "Worked when" follows it (before the next block), and the
    items of the ``<!-- expect: ... -->`` comments there (``exit N``, ``out: TEXT`` in its
    stdout or stderr, ``file: PATH`` made in its folder), items separated by `` | ``."""
    text = path.read_text()
    found = list(FENCE.finditer(text))
    out = []
    for k, m in enumerate(found):
        between = text[m.end() : found[k + 1].start() if k + 1 < len(found) else len(text)]
        items = [i.strip() for e in EXPECT.findall(between) for i in e.split(" | ")]
        out.append(("Worked when" in between, items))
    return out


def unmet(items: list[str], out: subprocess.CompletedProcess[str], cwd: Path) -> list[str]:
    """The expectation items ``out`` (run in ``cwd``) does not meet."""
    printed = out.stdout + out.stderr
    missed = []
    for item in items:
        kind, _, value = item.partition(":") if ":" in item.split()[0] else item.partition(" ")
        value = value.strip()
        if kind == "exit" and out.returncode != int(value):
            missed.append(f"exit {value} (got {out.returncode})")
        elif kind == "out" and value not in printed:
            missed.append(f"output with {value!r}")
        elif kind == "file" and not (cwd / value).exists():
            missed.append(f"file {value}")
        elif kind not in ("exit", "out", "file"):
            missed.append(f"unknown expectation {item!r}")
    return missed


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


@pytest.mark.parametrize("path", SKILLS, ids=_rel)
def test_frontmatter(path: Path) -> None:
    fields = frontmatter(path.read_text())
    assert set(fields) >= {"name", "description"}
    name, desc = fields["name"], fields["description"]
    assert NAME_RULE.match(name) and len(name) <= 64, name
    expected = "onnx-deploy" if path.parent == ROOT else path.parent.name
    assert name == expected, f"name {name!r} must match its folder {expected!r}"
    assert 50 <= len(desc) <= 1024, len(desc)
    assert "<" not in desc and ">" not in desc
    assert not re.match(r"(I|You|We)\b", desc), "third person: 'Exports ...', not 'I/You ...'"
    assert "Use when" in desc, "say when to use it"


def test_overview_keywords() -> None:
    desc = frontmatter((ROOT / "SKILL.md").read_text())["description"]
    for word in ("ONNX", "export", "onnxruntime", "quantize", "TensorRT", "onnxslim"):
        assert word.lower() in desc.lower(), word


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_line_count(path: Path) -> None:
    assert path.read_text().count("\n") < 500


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_links_files_notebooks_and_commands_exist(path: Path) -> None:
    text = path.read_text()
    for target in re.findall(r"\]\(([^)\s#]+)\)", text):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{_rel(path)} links to missing {target}"
    for nb in re.findall(r"notebooks/\d\d_\w+\.ipynb", text):
        assert (ROOT / nb).exists(), f"{_rel(path)} names missing {nb}"
    for ref in re.findall(r"`((?:src|skills|notebooks|tests)/[\w./-]+)`", text):
        assert (ROOT / ref).exists(), f"{_rel(path)} names missing {ref}"
    known = subcommands()
    code = (
        "\n".join(m for m in re.findall(r"`([^`\n]+)`", text))
        + "\n"
        + "\n".join(b for _, b in blocks(path))
    )
    for cmd in re.findall(r"(?:^|[\s`(])onnx-deploy ([a-z][\w-]*)", code):
        assert cmd in known or cmd.startswith("-"), (
            f"{_rel(path)} names unknown command `onnx-deploy {cmd}`"
        )


@pytest.fixture(scope="module")
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    """One process that imported torch, transformers and the rest; each block's commands fork
    from it instead of importing them again (tests/forkserver.py)."""
    with ForkServer() as server:
        server.shim(tmp_path_factory.mktemp("shim"))
        yield server


def _run_block(
    lang: str, body: str, cwd: Path, server: ForkServer | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if server is not None:  # `onnx-deploy` through the fork server, first on PATH
        env["PATH"] = f"{server.shim_dir}{os.pathsep}{env['PATH']}"
    env["MPLBACKEND"] = "Agg"
    if lang == "python":
        script = cwd / "block.py"
        script.write_text(body)
        cmd = server.python(script) if server is not None else [sys.executable, str(script)]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", body]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_every_code_block_runs(path: Path, tmp_path: Path, forkserver: ForkServer) -> None:
    """Python and bash blocks run in document order in one fresh folder, as a reader would
    (their commands fork from a process that has imported torch: tests/forkserver.py)."""
    ran = 0
    for (lang, body), (worked_when, expected) in zip(blocks(path), expectations(path), strict=True):
        assert expected or not worked_when, (
            f"{_rel(path)}: a 'Worked when' with no <!-- expect: ... --> for its test:\n{body}"
        )
        if lang not in ("python", "bash"):
            continue
        needs = REQUIRES.search(body)
        if needs and needs["what"].strip() == "openvino":
            if not available("openvino"):
                continue  # an optional extra: runs wherever it is installed (`make test` has it)
        elif needs:
            # python: compiled and skipped with its reason in test_gpu_blocks_are_marked;
            # bash (onnx-tensorrt's trt commands): run on the recording fake, or parsed and
            # reported, in tests/trt/test_skill_blocks.py
            assert lang == "python" or path.parent.name == "onnx-tensorrt", (
                f"{_rel(path)}: a '# requires:' bash block no test runs"
            )
            continue
        out = _run_block(lang, body, tmp_path, forkserver)
        assert out.returncode == 0 or "exit 1" in expected, (
            f"{_rel(path)}: {lang} block failed (exit {out.returncode}):\n{body}\n--- stderr ---\n{out.stderr[-3000:]}"
        )
        missed = unmet(expected, out, tmp_path)  # the block's "Worked when", asserted
        assert not missed, (
            f"{_rel(path)}: 'Worked when' not met: {missed}\n{body}\n--- stdout ---\n"
            f"{out.stdout[-3000:]}\n--- stderr ---\n{out.stderr[-2000:]}"
        )
        ran += 1
    assert ran or not blocks(path), f"{_rel(path)} has code blocks but none ran"


GPU_BLOCKS = [
    pytest.param(p, b, id=f"{_rel(p)}#{i}")
    for p in DOCS
    for i, (lang, b) in enumerate(blocks(p))
    if lang == "python" and REQUIRES.search(b)
]


@pytest.mark.parametrize(("path", "body"), GPU_BLOCKS)
def test_gpu_blocks_are_marked(path: Path, body: str) -> None:
    what = REQUIRES.search(body)["what"]
    if "gpu" in what:
        import shutil

        if shutil.which("nvidia-smi") is None:
            pytest.skip(
                f"needs {what}: no NVIDIA GPU here (run on a GPU host with onnxruntime-gpu)"
            )
    if "tensorrt" in what:
        pytest.skip(
            f"needs {what}: TensorRT does not install on CPU machines (pip install tensorrt on a GPU host)"
        )
    compile(body, str(path), "exec")


def test_install_copies_without_clobbering(tmp_path: Path) -> None:
    files = skill_files()
    assert "onnx-deploy/SKILL.md" in files and "onnx-quantize/reference.md" in files
    assert "](../onnx-export/SKILL.md)" in files["onnx-deploy/SKILL.md"], (
        "links rewritten for the installed layout"
    )
    mine = tmp_path / "onnx-export" / "SKILL.md"
    mine.parent.mkdir()
    mine.write_text("the user's own edits")
    result = install_skills(tmp_path)
    assert "onnx-export/SKILL.md" in result.skipped
    assert mine.read_text() == "the user's own edits"
    assert (tmp_path / "onnx-deploy" / "SKILL.md").read_text() == files["onnx-deploy/SKILL.md"]
    again = install_skills(tmp_path)
    assert again.written == () and len(again.skipped) == len(files)
    dry = install_skills(tmp_path / "new", dry_run=True)
    assert len(dry.written) == len(files) and not (tmp_path / "new").exists()
    installed = tmp_path / "onnx-deploy" / "SKILL.md"
    for target in re.findall(r"\]\((\.\./[^)\s#]+)\)", installed.read_text()):
        assert (installed.parent / target).exists(), target


def test_installed_skills_link_only_to_files_installed_with_them(tmp_path: Path) -> None:
    """Every relative link in every installed file resolves there (the measurements file
    travels with the skills, anchors included; a notebook is named, not linked)."""
    from onnx_deploy.teach.claims import measurement_sections

    install_skills(tmp_path)
    installed = sorted(tmp_path.rglob("*.md"))
    assert (tmp_path / "onnx-deploy" / "MEASUREMENTS.md") in installed
    checked = 0
    for md in installed:
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            file, _, anchor = target.partition("#")
            where = (md.parent / file).resolve()
            assert where.is_file() and tmp_path.resolve() in where.parents, (
                f"{md.relative_to(tmp_path)} links to {target}, not installed with it"
            )
            if anchor and where.name == "MEASUREMENTS.md":
                assert anchor in measurement_sections(where), f"{md.name}: no #{anchor}"
            checked += 1
    assert checked > 20
    assert (
        "05_quantization.ipynb` in onnx-deploy's source"
        in (tmp_path / "onnx-quantize" / "SKILL.md").read_text()
    )


def test_a_worked_when_without_its_expectations_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "SKILL.md"
    doc.write_text("1. Run:\n   ```bash\n   echo hi\n   ```\n   Worked when: it says hi.\n")
    assert expectations(doc) == [(True, [])]
    doc.write_text(doc.read_text() + "   <!-- expect: exit 0 | out: bye | file: x.txt -->\n")
    ((_worked, items),) = expectations(doc)
    run = subprocess.run(["bash", "-c", "echo hi"], capture_output=True, text=True)
    assert unmet(items, run, tmp_path) == ["output with 'bye'", "file x.txt"]
