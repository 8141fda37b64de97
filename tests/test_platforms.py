"""The dependencies resolve on the platforms learners use, each with its ONNX Runtime wheel.

pip's ``--platform`` evaluates environment markers on this machine; uv's resolver evaluates
them for the target (``--python-platform``), so a marker that breaks macOS fails here, on
Linux. Every extra is resolved (the serving extra with its own constraints, as ``make
serve-env`` installs it), the pinned versions come from constraints.txt, and removing any
marker in pyproject.toml makes a platform fail. ``make check-platforms`` runs this file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from onnx_deploy.core.extras import onnxruntime_wheel

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "3.11"  # the version constraints.txt was tested on
# name: (uv's --python-platform, extra environment, sys.platform, platform.machine()).
# macOS 14: onnxruntime 1.31.1's arm64 wheel is macosx_14_0. glibc 2.35 on Linux (Ubuntu
# 22.04, Debian 12 and newer): openvino's aarch64 wheel and nvidia-pytriton need it.
PLATFORMS = {
    "macOS arm64": ("aarch64-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": "14.0"}, "darwin", "arm64"),
    "Linux aarch64": ("aarch64-manylinux_2_35", {}, "linux", "aarch64"),
    "Windows x86-64": ("x86_64-pc-windows-msvc", {}, "win32", "AMD64"),
    "Linux x86-64": ("x86_64-manylinux_2_35", {}, "linux", "x86_64"),
}  # fmt: skip
ORT_WHEELS = ("onnxruntime", "onnxruntime-gpu")
# uv's words when the index cannot be reached (then this check cannot run here)
OFFLINE = re.compile(r"Failed to fetch|error sending request|dns error|Could not connect", re.I)
SETS = {  # what `make install` and `make serve-env` resolve, with their constraints
    "all": (("all", "trt"), "constraints.txt"),
    "serve": (("serve",), "constraints-serve.txt"),
    # one group alone, for the marker checks
    "core": ((), "constraints.txt"),
    "trt": (("trt",), "constraints.txt"),
}


def _uv() -> str:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (pip install 'onnx-deploy[test]' installs it)")
    return uv


def compile_for(
    platform_name: str, which: str, pyproject: Path = ROOT / "pyproject.toml"
) -> tuple[int, dict[str, str], str]:
    """Exit code, pinned packages (name -> version) and uv's messages, for the dependency
    set ``which`` (a ``SETS`` key) resolved for one of ``PLATFORMS``."""
    target, env, _, _ = PLATFORMS[platform_name]
    extras, constraints = SETS[which]
    cmd = [_uv(), "pip", "compile", str(pyproject), "--python-platform", target,
           "--python-version", PYTHON, "-c", str(ROOT / constraints), "--no-header",
           "--no-annotate", "-q"]  # fmt: skip
    for extra in extras:
        cmd += ["--extra", extra]
    got = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )
    if got.returncode and OFFLINE.search(got.stderr):
        pytest.skip(f"the package index is not reachable: {got.stderr.strip()[:200]}")
    pins = dict(
        line.split("==", 1) for line in got.stdout.splitlines() if "==" in line and line[0] != " "
    )
    return got.returncode, {k.lower(): v.strip() for k, v in pins.items()}, got.stderr


@pytest.mark.parametrize("name", PLATFORMS)
def test_every_extra_resolves_with_one_onnxruntime_wheel(name: str) -> None:
    _, _, sys_platform, machine = PLATFORMS[name]
    wheel = onnxruntime_wheel(sys_platform, machine)  # what doctor tells the user
    for which in ("all", "serve"):
        code, pins, err = compile_for(name, which)
        assert code == 0, f"{name}, {which}: {err}"
        assert [w for w in ORT_WHEELS if w in pins] == [wheel], f"{name}, {which}: {pins}"
        assert "torch" in pins or which == "serve", pins
        if which == "serve":
            assert ("nvidia-pytriton" in pins) == (sys_platform == "linux"), pins


def _marked() -> list[tuple[str, str, str]]:
    """(group, requirement, marker) for every requirement with a marker in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return [
        (group, spec, str(Requirement(spec).marker))
        for group, specs in groups.items()
        for spec in specs
        if Requirement(spec).marker is not None
    ]


def _environment(name: str) -> dict[str, str]:
    _, _, sys_platform, machine = PLATFORMS[name]
    system = {"darwin": "Darwin", "linux": "Linux", "win32": "Windows"}[sys_platform]
    os_name = "nt" if sys_platform == "win32" else "posix"
    return {"sys_platform": sys_platform, "platform_machine": machine,
            "platform_system": system, "os_name": os_name}  # fmt: skip


def test_the_markers_match_the_wheel_doctor_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = [Requirement(s) for s in project["dependencies"]]
    for name in PLATFORMS:
        env = _environment(name)
        wheels = [r.name for r in core if r.name in ORT_WHEELS and r.marker.evaluate(env)]
        assert wheels == [onnxruntime_wheel(env["sys_platform"], env["platform_machine"])], name


@pytest.mark.parametrize("group, spec, marker", _marked(), ids=lambda v: str(v)[:40])
def test_removing_a_marker_breaks_a_platform(
    group: str, spec: str, marker: str, tmp_path: Path
) -> None:
    """Without its marker, each requirement fails to resolve, or puts both ONNX Runtime
    wheels in one environment, on a platform its marker left it out of."""
    excluded = [n for n in PLATFORMS if not Requirement(spec).marker.evaluate(_environment(n))]
    assert excluded, f"{spec}: its marker leaves out none of {list(PLATFORMS)}"
    text = (ROOT / "pyproject.toml").read_text()
    assert text.count(f'"{spec}"') == 1, spec
    stripped = text.replace(f'"{spec}"', f'"{spec.split(";")[0].strip()}"')
    (tmp_path / "pyproject.toml").write_text(stripped)
    which = group if group in SETS else "all"
    code, pins, err = compile_for(excluded[0], which, tmp_path / "pyproject.toml")
    both = all(w in pins for w in ORT_WHEELS)
    assert (code != 0 and Requirement(spec).name in err) or both, (
        f"{spec} without '{marker}' still resolves on {excluded[0]}: {err[-300:]}"
    )


def test_doctor_names_the_platform_and_its_wheel() -> None:
    from onnx_deploy.workflows.doctor import platform_checks

    mac = platform_checks({"onnxruntime": "1.31.1"}, "darwin", "arm64")
    assert [c.name for c in mac] == ["platform"]  # the CPU wheel is the right one there
    assert "macOS arm64" in mac[0].detail and "installs onnxruntime," in mac[0].detail
    assert "CoreML" in mac[0].detail
    both = platform_checks({"onnxruntime": "1", "onnxruntime-gpu": "1"}, "linux", "aarch64")
    assert both[1].status == "warn" and both[1].detail.endswith("pip install onnxruntime")
    assert "glibc 2.34" in both[0].detail
    none = platform_checks({}, "win32", "AMD64")
    assert (none[1].name, none[1].status) == ("onnxruntime-gpu", "missing")
