"""The onnx-tensorrt skill's bash blocks: ``trt build`` runs end to end on the recording
fake (real API dump), after the blocks before it made its input; ``trt compare`` and
``trt bench`` execute an engine on a GPU, so here they are parsed and reported as skipped
with the reason (never skipped silently)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from onnx_deploy.cli import build_parser
from onnx_deploy.cli import main
from onnx_deploy.convert import tensorrt as trt_mod

from .fake_trt import FakeTensorRT

ROOT = Path(__file__).resolve().parents[2]
SKILL = ROOT / "skills" / "onnx-tensorrt" / "SKILL.md"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)


def _blocks() -> list[tuple[str, str]]:
    return [(m["lang"], textwrap.dedent(m["body"])) for m in FENCE.finditer(SKILL.read_text())]


def _commands(body: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in body.splitlines() if line.startswith("onnx-deploy ")]


def test_the_trt_blocks_run_on_the_recording_fake(
    real_api_11: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ran_build, gpu_only = 0, []
    fake = FakeTensorRT(real_api_11)
    monkeypatch.setattr(trt_mod, "load_tensorrt", lambda: fake)
    monkeypatch.setattr(trt_mod, "gpu_identity", lambda: ("Fake GPU", "9.0"))
    monkeypatch.chdir(tmp_path)
    for lang, body in _blocks():
        if "# requires:" not in body:  # the set-up blocks, in order, make the inputs
            if lang == "python":
                (tmp_path / "block.py").write_text(body)
                cmd = [sys.executable, "block.py"]
            elif lang == "bash":
                cmd = ["bash", "-euo", "pipefail", "-c", body]
            else:
                continue
            out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=600)  # fmt: skip
            assert out.returncode == 0, out.stderr[-2000:]
            continue
        if lang != "bash":
            continue
        for args in _commands(body):
            build_parser().parse_args(args)  # every GPU command at least parses
            if args[:2] == ["trt", "build"]:
                assert main(args) == 0, capsys.readouterr().err
                printed = capsys.readouterr().out
                assert "precision fp16" in printed, printed  # the block's "Worked when"
                assert "Builder.build_serialized_network" in fake.names()
                ran_build += 1
            else:
                gpu_only.append(" ".join(args[:2]))
    assert ran_build == 1
    assert sorted(set(gpu_only)) == ["trt bench", "trt compare"]
    print(f"run on a GPU host only (they execute the engine): {sorted(set(gpu_only))}")
