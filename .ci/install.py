"""Install requirements into a virtual environment with two pip processes side by side.

pip installs one wheel after another on one core, and `make test` spent about 230 s in it
on a 2-core machine (notebooks/MEASUREMENTS.md, "The test command's time"). This resolves
once (``pip install --dry-run --report``: what is missing or at another version), installs
the plan's wheels in two pip processes at once (PyTorch, CUDA's libraries, Triton's compiler
and client in one; everything else in the other), then runs the plain install, which finds
them in place, installs the project itself and repairs anything the two left out: 238.2 s
-> 159.9 s on a 2-core machine, the same packages at the same versions. Where resolving
fails, it stops with pip's exit code and the Makefile runs the plain install alone.

Usage: python .ci/install.py VENV PIP_INSTALL_ARGS...   (as ``pip install ARGS``)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

# the large wheels (about 4.4 GB unpacked) and what only they need, in the first process
HEAVY = ("torch", "nvidia-", "triton", "cuda-", "sympy", "networkx", "mpmath")


def split_plan(items: list[dict]) -> tuple[list[str], list[str]]:
    """The report's wheels as two requirement lists, the large ones first; the project itself
    (a local folder) is left to the plain install. Each names the URL the plan resolved to:
    `name==version` makes each process search the indexes again (220 s instead of 160 s
    here); pip freeze shows these as `name @ URL`."""
    lanes: tuple[list[str], list[str]] = ([], [])
    for item in items:
        info = item["download_info"]
        if "dir_info" in info:
            continue
        name = item["metadata"]["name"].lower()
        lanes[0 if name.startswith(HEAVY) else 1].append(f"{name} @ {info['url']}")
    return lanes


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    venv, args = Path(argv[0]), argv[1:]
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "plan.json"
        plan = subprocess.run([*pip, "install", "-q", "--dry-run", "--report", str(report), *args])
        if plan.returncode:
            return plan.returncode
        lanes = split_plan(json.loads(report.read_text())["install"])
        procs = []
        for i, lane in enumerate(lanes):
            if not lane:
                continue
            reqs = Path(tmp) / f"lane{i}.txt"
            reqs.write_text("\n".join(lane) + "\n")
            procs.append(subprocess.Popen([*pip, "install", "-q", "--no-deps", "-r", str(reqs)]))
        codes = [p.wait() for p in procs]
    if any(codes):
        print("note: a parallel pip process failed; the plain install follows", file=sys.stderr)
    return subprocess.run([*pip, "install", "-q", *args]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
