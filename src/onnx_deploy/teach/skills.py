"""Install this package's agent skills into an agent's skills folder, never clobbering.

Layout installed under ``--target``::

    onnx-deploy/SKILL.md          the overview skill (SKILL.md at the repository root)
    onnx-export/SKILL.md, ...     each folder of skills/, with its reference files

Links from the overview to ``skills/NAME/`` are rewritten to ``../NAME/`` so they resolve
in the installed layout. Existing files are left untouched and reported.
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


def skill_files(root: Path | None = None) -> dict[str, str]:
    """Relative install path -> file text, for every skill file."""
    root = root or source_root()
    files = {}
    overview = (root / "SKILL.md").read_text(encoding="utf-8")
    files[f"{OVERVIEW_NAME}/SKILL.md"] = re.sub(r"\]\(skills/([\w-]+)/", r"](../\1/", overview)
    for path in sorted((root / "skills").rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            files[path.relative_to(root / "skills").as_posix()] = path.read_text(encoding="utf-8")
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
