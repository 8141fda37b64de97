from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_deploy.cli import build_parser
from onnx_deploy.cli import main

COMMANDS = ["doctor", "inspect", "export", "slim", "validate", "quantize", "bench", "pipeline"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_imports_no_heavy_library() -> None:
    # what --help costs is what it imports; a wall-clock bound is flaky on a shared machine
    heavy = ("torch", "onnxruntime", "onnx", "onnxslim", "numpy", "matplotlib")
    code = (
        "import sys\n"
        "from onnx_deploy.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "doctor" in out.stdout and "--target-isa" not in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 2 and "COMMAND" in out


def test_doctor(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "doctor", "--no-torch", "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"]
    assert "CPUExecutionProvider" in data["providers working"]["detail"]
    assert "tensorrt" in data and "cpu int8" in data and "int8 speed" in data
    # what the CPU's own flags say, read without onnx_deploy.core.cpu: an x86 CPU without VNNI
    # gets the saturation warning and reduce_range, one with VNNI plain u8/s8
    from pathlib import Path as _P

    cpuinfo = _P("/proc/cpuinfo")
    flags = set()
    if cpuinfo.is_file() and not os.environ.get("ONNX_DEPLOY_EMULATED"):
        line = next((x for x in cpuinfo.read_text().splitlines() if x.startswith("flags")), "")
        flags = set(line.partition(":")[2].split())
    detail, status = data["cpu int8"]["detail"], data["cpu int8"]["status"]
    if "avx2" in flags and {"avx512_vnni", "avx_vnni"} & flags:
        assert status == "ok" and "u8/s8" in detail and "reduce_range" not in detail, detail
    elif "avx2" in flags:
        assert status == "warn" and "reduce_range" in detail, detail


def test_inspect(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", str(tiny_onnx))
    assert code == 0 and "opset 20" in out and "Conv 1" in out
    code, out, _ = run(capsys, "inspect", str(tiny_onnx), "--json")
    assert json.loads(out)["opset"] == 20


@pytest.mark.parametrize("kind", ["missing", "text", "truncated"])
def test_inspect_bad_files(
    kind: str, tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"{kind}.onnx"
    if kind == "text":
        path.write_text("hello\n" * 50)
    elif kind == "truncated":
        path.write_bytes(tiny_onnx.read_bytes()[:300])
    before = path.read_bytes() if path.exists() else None
    code, _, err = run(capsys, "inspect", str(path))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("onnx-deploy: error: ") and len(err.strip().splitlines()) == 1
    assert (path.read_bytes() if path.exists() else None) == before


def test_export_slim_validate_bench_flow(
    tiny_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "tiny.onnx"
    spec = f"{tiny_source}:tiny"
    code, out, err = run(
        capsys, "export", spec, "-o", str(model), "--input-shape", "3,16,16", "--batch", "1:64"
    )
    assert code == 0, err
    assert "export" in out and "validate" in out and "PASS" in out
    code, out, err = run(capsys, "slim", str(model))
    assert code == 0, err
    assert (tmp_path / "tiny.slim.onnx").exists()
    code, out, err = run(capsys, "validate", str(tmp_path / "tiny.slim.onnx"), "--reference", spec)
    assert code == 0 and "PASS" in out, err
    code, out, err = run(
        capsys, "validate", str(tmp_path / "tiny.slim.onnx"), "--reference", str(model), "--json"
    )
    assert code == 0 and json.loads(out)["ok"]
    code, out, err = run(
        capsys, "bench", str(model), spec, "--input-shape", "3,16,16", "--batch-sizes", "1,2",
        "--warmup", "1", "--iters", "3", "--output", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png"),
    )  # fmt: skip
    assert code == 0, err
    assert "speed-up" in out
    data = json.loads((tmp_path / "b.json").read_text())
    assert len(data["results"]) == 2 + 4
    speedups = {r["model"]: r["speedup"] for r in data["comparison"]}
    assert speedups["tiny.onnx"] is None  # an .onnx file alone has no PyTorch baseline
    assert speedups["tiny"] > 0
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_pipeline_writes_a_summary_and_never_overwrites_it(
    tiny_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "pipeline", f"{tiny_source}:tiny", "--input-shape", "3,16,16", "--out-dir", str(tmp_path),
        "--batch-sizes", "1,2", "--warmup", "1", "--iters", "2",
    ]  # fmt: skip
    code, _, err = run(capsys, *args)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "summary.json",
        "tiny.onnx",
        "tiny.slim.onnx",
    ]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["validation"]["ok"] is True
    timed = [(r["backend"], r["batch_size"], r["count"]) for r in summary["bench"]]
    assert timed == [("torch", 1, 2), ("onnxruntime", 1, 2), ("torch", 2, 2), ("onnxruntime", 2, 2)]
    before = (tmp_path / "summary.json").read_bytes()
    code, _, err = run(capsys, *args)
    assert code == 1 and "already exists" in err
    assert (tmp_path / "summary.json").read_bytes() == before
    code, _, err = run(capsys, *args, "--force")
    assert code == 0, err


def test_export_refuses_existing_output(
    tiny_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    code, _, err = run(
        capsys, "export", f"{tiny_source}:tiny", "-o", str(out), "--input-shape", "3,16,16"
    )
    assert code == 1 and "--force" in err
    assert out.read_bytes() == b"keep"


def test_export_unsafe_checkpoint(
    tiny_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "whole_model.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, ckpt)  # a pickled module, not a state dict
    code, _, err = run(
        capsys, "export", f"{tiny_source}:tiny", "--weights", str(ckpt), "-o", str(tmp_path / "m.onnx"),
        "--input-shape", "3,16,16",
    )  # fmt: skip
    assert code == 1 and "unsafe unpickling" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_unexportable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "bad.py"
    src.write_text(
        "import torch\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        "        if x.mean() > 0:\n            return x\n        return -x\n\n\ndef make():\n    return M()\n"
    )
    code, _, err = run(
        capsys, "export", f"{src}:make", "-o", str(tmp_path / "m.onnx"), "--input-shape", "4"
    )
    assert code == 1
    assert "data-dependent control flow" in err and "bad.py:5" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_needs_input_shape_for_files(
    tiny_source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "export", f"{tiny_source}:tiny")
    assert code == 1 and "needs the shape of one input sample" in err and "--input-shape" in err


def test_validate_mismatch_exits_1(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(tiny_onnx))
    init = m.graph.initializer[0]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1, init.name))
    onnx.save(m, str(tmp_path / "bad.onnx"))
    code, out, err = run(
        capsys, "validate", str(tmp_path / "bad.onnx"), "--reference", str(tiny_onnx)
    )
    assert code == 1 and "FAIL" in out and "differ" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "x.onnx", "--batch-sizes", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["export", "torchvision:resnet18", "--batch", "8:2"])
    assert info.value.code == 2


def test_wrong_input_is_reported_by_the_predictor(tiny_onnx: Path) -> None:
    # The CLI has no raw-input command; the library's Predictor is where inputs are checked.
    from onnx_deploy.core.errors import InputMismatchError
    from onnx_deploy.infer.predictor import Predictor

    with pytest.raises(InputMismatchError, match="dtype int64"):
        Predictor(tiny_onnx, device="cpu")(np.zeros((2, 3, 16, 16), np.int64))


def test_commands_on_an_onnx_file_do_not_import_torch(tiny_onnx: Path, tmp_path: Path) -> None:
    """bench (its FLOP count uses onnxruntime's symbolic shape inference) and quantize (its
    pre-processing does) import no torch: ``onnxruntime/tools/__init__.py`` imports torch
    wherever it is installed, seconds a user waits for nothing (``core.extras``)."""
    code = (
        "import sys\n"
        "from onnx_deploy.cli import main\n"
        f"assert main(['bench', {str(tiny_onnx)!r}, '--batch-sizes', '1', '--iters', '2',"
        " '--warmup', '1', '--no-peak']) == 0\n"
        f"assert main(['quantize', {str(tiny_onnx)!r}, '--method', 'dynamic', '-o',"
        f" {str(tmp_path / 'q.onnx')!r}]) == 0\n"
        "assert 'onnxruntime.tools.symbolic_shape_infer' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]
