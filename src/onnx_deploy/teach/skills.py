"""Install this package's agent skills into an agent's skills folder, never clobbering.

Layout installed under ``--target``::

    onnx-deploy/SKILL.md          the overview skill (SKILL.md at the repository root)
    onnx-export/SKILL.md, ...     each folder of skills/, with its reference files

    onnx-deploy/MEASUREMENTS.md   the measurements file the skills cite

Links are rewritten so that every one resolves in the installed layout: the overview's
``skills/NAME/`` to ``../NAME/``, links to the measurements file to the installed copy, and
links to a notebook (too big to travel) to plain text naming it in onnx-deploy's source.
Existing files are left untouched and reported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.files import CHECKOUT
from onnx_deploy.core.files import PACKAGE_DIR
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.results import Result

OVERVIEW_NAME = "onnx-deploy"


def source_root() -> Path:
    """The folder holding SKILL.md and skills/: the copy inside an installed wheel
    (``onnx_deploy/_skills``), else the source checkout of an editable install."""
    for candidate in (PACKAGE_DIR / "_skills", CHECKOUT, Path.cwd()):
        if (candidate / "SKILL.md").is_file() and (candidate / "skills").is_dir():
            return candidate
    raise OnnxDeployError(
        "cannot find SKILL.md and skills/: this installation carries no skills; reinstall "
        "onnx-deploy from its wheel, or from a source checkout (pip install -e .)"
    )


MEASUREMENTS = "MEASUREMENTS.md"


def measurements_file(root: Path) -> Path:
    """The measurements file: beside SKILL.md in a wheel, in notebooks/ in a checkout."""
    for candidate in (root / MEASUREMENTS, root / "notebooks" / MEASUREMENTS):
        if candidate.is_file():
            return candidate
    raise OnnxDeployError(f"cannot find {MEASUREMENTS} beside {root / 'SKILL.md'}")


def portable(text: str, installed_as: str) -> str:
    """``text`` with its links to the measurements file pointed at the installed copy and
    its links to notebooks turned into plain text that names them."""
    folder = Path(installed_as).parent
    to_measurements = Path(os.path.relpath(Path(OVERVIEW_NAME) / MEASUREMENTS, folder)).as_posix()
    text = re.sub(r"\]\((?:\.\./)*notebooks/MEASUREMENTS\.md", f"]({to_measurements}", text)
    return re.sub(
        r"\[([^\]]*)\]\((?:\.\./)*notebooks/(\d\d_[\w-]+\.ipynb)(#[^)]*)?\)",
        r"\1 (`notebooks/\2` in onnx-deploy's source)",
        text,
    )


def skill_files(root: Path | None = None) -> dict[str, str]:
    """Relative install path -> file text, for every skill file and the measurements file."""
    root = root or source_root()
    files = {}
    overview = (root / "SKILL.md").read_text(encoding="utf-8")
    overview = re.sub(r"\]\(skills/([\w-]+)/", r"](../\1/", overview)
    files[f"{OVERVIEW_NAME}/SKILL.md"] = portable(overview, f"{OVERVIEW_NAME}/SKILL.md")
    for path in sorted((root / "skills").rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(root / "skills").as_posix()
            text = path.read_text(encoding="utf-8")
            files[rel] = portable(text, rel) if path.suffix == ".md" else text
    measurements = measurements_file(root).read_text(encoding="utf-8")
    files[f"{OVERVIEW_NAME}/{MEASUREMENTS}"] = portable(
        measurements, f"{OVERVIEW_NAME}/{MEASUREMENTS}"
    )
    return files


@dataclass(frozen=True)
class InstallResult(Result):
    target: str
    written: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        lines = [f"skills    {len(self.written)} file(s) written to {self.target}"]
        lines += [f"  wrote   {p}" for p in self.written]
        lines += [f"  kept    {p} (exists; not overwritten)" for p in self.skipped]
        return "\n".join(lines)


def install_skills(target: str | os.PathLike[str], dry_run: bool = False) -> InstallResult:
    """Copy the skills under ``target``; files that already exist are never overwritten."""
    target_dir = Path(target)
    written, skipped = [], []
    for rel, text in skill_files().items():
        dest = target_dir / rel
        if dest.exists():
            skipped.append(rel)
            continue
        written.append(rel)
        if not dry_run:
            with atomic_output(dest) as tmp:
                tmp.write_text(text, encoding="utf-8")
    return InstallResult(str(target_dir), tuple(written), tuple(skipped))
