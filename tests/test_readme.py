"""The README's Python examples must run as written (in order, as one program: each
continues the one before, as in a notebook)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "README has the library and the runners examples"
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"README python examples failed:\n{out.stderr[-3000:]}"
    assert out.stdout.count("median") >= 3, out.stdout  # one bench, then two runners
    assert ": PASS" in out.stdout and "FAIL" not in out.stdout, out.stdout


def test_readme_names_every_skill_folder() -> None:
    """The README's list of focused skills names each folder in skills/ (it once left out
    detection)."""
    listed = re.search(r"one folder per stage: ([^)]*)\)", README.read_text().replace("\n", " "))
    assert listed, "the README lists the skills' stages"
    named = {f"onnx-{s.strip()}" for s in listed[1].split(",")}
    folders = {p.name for p in (README.parent / "skills").iterdir() if (p / "SKILL.md").exists()}
    assert named == folders, f"README lists {sorted(named)}, skills/ has {sorted(folders)}"
