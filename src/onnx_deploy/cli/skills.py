"""``onnx-deploy skills``: list or install the agent skills, never overwriting."""

from __future__ import annotations

import argparse
import sys

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import EXIT_USAGE
from onnx_deploy.cli._common import emit

HELP = "list or install the agent skills (never overwrites existing files)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("install", "list"))
    p.add_argument("--target", help="an agent's skills folder, e.g. ~/.claude/skills")
    p.add_argument("--dry-run", action="store_true", help="show what would be written")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.teach.skills import install_skills
    from onnx_deploy.teach.skills import skill_files

    if args.action == "list":
        files = list(skill_files())
        emit(args, {"files": files}, text="\n".join(files))
        return EXIT_OK
    if not args.target:
        print("onnx-deploy: error: skills install needs --target DIR", file=sys.stderr)
        return EXIT_USAGE
    emit(args, install_skills(args.target, dry_run=args.dry_run))
    return EXIT_OK
