"""TensorRT's real Python bindings, importable without TensorRT.

TensorRT cannot be installed on this project's machines (its wheels fetch the libraries
from NVIDIA's index, which is not reachable, and there is no GPU). Its Python bindings
are a separate 1.3 MB wheel on PyPI (``tensorrt-cu13-bindings``, ``tensorrt-cu12-
bindings``) whose ``tensorrt.so`` needs three libraries and calls into them only through
nine factory functions (``nm -D --undefined-only``). Three stub libraries under those
sonames, each defining the nine functions as returning 0, let ``import
tensorrt_bindings`` succeed: every class, enum and method is then present with its
pybind11 signature in ``__doc__`` (and ``trt.Builder(trt.Logger())`` raises TypeError
instead of building anything). ``dump_api.py`` prints that API as JSON; the tests check
the code against it.

The wheels are fetched once with pip into ``artifacts/trt-bindings`` (git-ignored); the
stubs are compiled there with gcc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "trt-bindings"
BINDINGS = {
    11: "tensorrt-cu13-bindings==11.4.0.106",
    10: "tensorrt-cu12-bindings==10.16.1.11",
}
STUB_SYMBOLS = """
void* createInferBuilder_INTERNAL(void* a, int b) { return 0; }
void* createInferRuntime_INTERNAL(void* a, int b) { return 0; }
void* createInferRefitter_INTERNAL(void* a, void* b, int c) { return 0; }
void* createNvOnnxParser_INTERNAL(void* a, void* b, int c) { return 0; }
void* createNvOnnxParserRefitter_INTERNAL(void* a, void* b, int c) { return 0; }
void* getPluginRegistry(void) { return 0; }
void* getBuilderPluginRegistry(int a) { return 0; }
int initLibNvInferPlugins(void* a, const char* b) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
"""


def _prepare(major: int) -> dict[str, Any]:
    folder = CACHE / str(major)
    site, stubs = folder / "site", folder / "stubs"
    dump = folder / "api.json"
    if dump.exists():
        cached = json.loads(dump.read_text())
        if cached.get("format") == 2:  # values, required arguments and return types
            return cached
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler for TensorRT's stub libraries: apt-get install gcc")
    if not (site / "tensorrt_bindings").is_dir():
        out = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
             "--target", str(site), BINDINGS[major]],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if out.returncode != 0:
            pytest.skip(f"could not fetch {BINDINGS[major]} from PyPI: {out.stderr[-300:]}")
    stubs.mkdir(parents=True, exist_ok=True)
    source = stubs / "stub.c"
    source.write_text(STUB_SYMBOLS)
    for lib in ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin"):
        soname = f"{lib}.so.{major}"
        subprocess.run(
            [gcc, "-shared", "-fPIC", "-o", str(stubs / soname), f"-Wl,-soname,{soname}", str(source)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    env = dict(os.environ, LD_LIBRARY_PATH=str(stubs), PYTHONPATH=str(site))
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dump_api.py"))],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, f"the real bindings did not import over the stubs: {out.stderr}"
    dump.write_text(out.stdout)
    return json.loads(out.stdout)


@pytest.fixture(scope="session", params=[11, 10], ids=["trt11", "trt10"])
def real_api(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``{"format": 2, "version": "11.4.0.106", "api": {class: {member: [overload]}},
    "enums": {enum: {name: value}}}``; an overload is ``{"params": [{"name", "required",
    "variadic"}], "returns": class}``."""
    return _prepare(request.param)


@pytest.fixture(scope="session")
def real_api_11() -> dict[str, Any]:
    return _prepare(11)
