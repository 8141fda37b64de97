"""The core install: the wheel with numpy, onnx and onnxruntime-gpu only, no torch.

A production inference image ships ONNX Runtime, not PyTorch. This builds the wheel,
installs it into a fresh virtual environment with the core dependencies alone, and runs
what must work there: `inspect`, `bench` of an .onnx file, a runner, the skills installer,
and a command that needs an extra, which must name the extra.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _onnx_model(path: Path) -> None:
    """A two-input model (float image, int64 ids) with a dynamic batch, built with onnx."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["h", "idsf"], ["y"]),
        ],
        "core",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("core")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp / "dist").glob("onnx_deploy-*.whl"))
    venv.create(tmp / "venv", with_pip=True)
    py = tmp / "venv" / "bin" / "python"
    installed = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(wheel)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    return tmp / "venv" / "bin"


def _run(bin_dir: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_core_install_has_no_torch(core_env: Path, tmp_path: Path) -> None:
    out = _run(
        core_env,
        "python",
        "-c",
        "import importlib.util as u; print(u.find_spec('torch'))",
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "None", "torch must not come with the core install"


def test_core_install_inspects_benchmarks_and_runs(core_env: Path, tmp_path: Path) -> None:
    _onnx_model(tmp_path / "m.onnx")
    out = _run(core_env, "onnx-deploy", "inspect", "m.onnx", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "x: float32[batch, 4]" in out.stdout and "ids: int64[batch, 3]" in out.stdout
    out = _run(
        core_env,
        "onnx-deploy",
        "bench",
        "m.onnx",
        "--batch-sizes",
        "1,4",
        "--warmup",
        "1",
        "--iters",
        "3",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("median") == 2 and "[onnxruntime/cpu]" in out.stdout
    code = (
        "import numpy as np, sys\n"
        "from onnx_deploy import OnnxRuntimeRunner\n"
        "with OnnxRuntimeRunner('m.onnx', 'cpu') as r:\n"
        "    y = r.infer({'x': np.ones((2, 4), np.float32), 'ids': np.arange(6).reshape(2, 3)})['y']\n"
        "assert y.tolist() == [[4, 5, 6], [7, 8, 9]], y\n"
        "assert 'torch' not in sys.modules\n"
        "print('runner ok')\n"
    )
    out = _run(core_env, "python", "-c", code, cwd=tmp_path)
    assert out.returncode == 0 and "runner ok" in out.stdout, out.stderr


def test_core_install_names_the_missing_extra(core_env: Path, tmp_path: Path) -> None:
    out = _run(core_env, "onnx-deploy", "export", "torchvision:resnet18", cwd=tmp_path)
    assert out.returncode == 1
    assert "pip install 'onnx-deploy[export]'" in out.stderr and "Traceback" not in out.stderr
    out = _run(core_env, "onnx-deploy", "doctor", "--no-torch", cwd=tmp_path)
    assert out.returncode == 0 and "onnx-deploy[export]" in out.stdout


def test_core_install_ships_the_skills(core_env: Path, tmp_path: Path) -> None:
    out = _run(core_env, "onnx-deploy", "skills", "install", "--target", "agent", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "agent" / "onnx-deploy" / "SKILL.md").is_file()
    assert (tmp_path / "agent" / "onnx-quantize" / "reference.md").is_file()


def _install_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ci_install", ROOT / ".ci" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_install_splits_pips_plan_into_two_lanes(tmp_path: Path) -> None:
    """`.ci/install.py` reads pip's own --report (a real one here): the large wheels in the
    first lane, each by the URL pip resolved, and the project itself left to the plain
    install."""
    import json

    script = _install_script()
    report = tmp_path / "plan.json"
    got = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "-q",
         "--dry-run", "--ignore-installed", "--no-deps", "--report", str(report),
         f"numpy=={np.__version__}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr[-2000:]
    items = json.loads(report.read_text())["install"]
    heavy, rest = script.split_plan(items)
    assert heavy == [] and len(rest) == 1 and rest[0].startswith("numpy @ "), rest
    fake = {"download_info": {"url": "file:///w/torch-2.whl"}, "metadata": {"name": "Torch"}}
    nvidia = {"download_info": {"url": "file:///w/n.whl"}, "metadata": {"name": "nvidia-cublas"}}
    project = {  # as pip reports `-e .` (PEP 610's direct URL of a local folder)
        "download_info": {"url": f"file://{ROOT}", "dir_info": {"editable": True}},
        "metadata": {"name": "onnx-deploy"},
    }
    assert script.split_plan([fake, project, nvidia, *items]) == (
        ["torch @ file:///w/torch-2.whl", "nvidia-cublas @ file:///w/n.whl"],
        rest,
    )
    assert script.main([]) == 2  # usage
