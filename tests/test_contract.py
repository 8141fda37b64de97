"""The package's shape: the layer contract, private names, and the public API.

``lint-imports`` (import-linter, configured in pyproject.toml) reads every import,
including those inside functions, so the contract holds for the lazy imports too.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import onnx_deploy

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "onnx_deploy"
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def copy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package and its contract, copied: a place to plant a bad import."""
    root = tmp_path_factory.mktemp("contract")
    shutil.copytree(SRC, root / "src" / "onnx_deploy", ignore=shutil.ignore_patterns("data"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def _planted(copy_root: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    path = copy_root / "src" / "onnx_deploy" / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n\ndef _planted() -> None:\n    {line}\n")
        return _lint(copy_root)
    finally:
        path.write_text(original)


def test_the_contract_holds() -> None:
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "3 kept, 0 broken" in out.stdout


def test_an_upward_import_breaks_the_layers(copy_root: Path) -> None:
    """core/ is the lowest layer: a (lazy) import of a workflow from it is refused."""
    out = _planted(copy_root, "core/specs.py", "from onnx_deploy.workflows import pipeline")
    assert out.returncode == 1
    assert "onnx_deploy.core is not allowed to import onnx_deploy.workflows" in out.stdout
    assert "onnx_deploy.core.specs -> onnx_deploy.workflows.pipeline" in out.stdout


def test_torch_on_the_inference_side_breaks_the_contract(copy_root: Path) -> None:
    out = _planted(copy_root, "infer/bench.py", "import torch")
    assert out.returncode == 1
    assert "onnx_deploy.infer is not allowed to import torch" in out.stdout


def test_a_cycle_inside_a_folder_breaks_the_contract(copy_root: Path) -> None:
    """specs is imported by signature; signature imported by specs closes a circle."""
    out = _planted(copy_root, "core/specs.py", "from onnx_deploy.core import signature")
    assert out.returncode == 1
    assert "No cycles are allowed in onnx_deploy.core" in out.stdout


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("onnx_deploy"):
                found += [
                    f"{path.relative_to(SRC)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not found, found


def test_every_session_opens_through_the_session_factory() -> None:
    """One place opens ONNX Runtime sessions (``infer/sessions.create_session``; providers
    probes its own): everything else goes through it or the ONNX Runtime runner."""
    allowed = {"infer/sessions.py", "infer/providers.py"}
    found = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if str(path.relative_to(SRC)) not in allowed and "InferenceSession(" in path.read_text()
    ]
    assert not found, found


def test_every_public_name_resolves_and_the_import_stays_light() -> None:
    for name in onnx_deploy.__all__:
        assert getattr(onnx_deploy, name) is not None, name
    code = (
        "import sys, onnx_deploy; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'matplotlib', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        onnx_deploy.nope  # noqa: B018


def test_each_folder_is_a_layer_named_in_the_contract() -> None:
    """A new folder must be placed in the contract (exhaustive) and in the README."""
    folders = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())
    assert folders == [
        "cli", "convert", "core", "infer", "passes", "present", "runtimes", "serve", "sources",
        "targets", "teach", "workflows",
    ]  # fmt: skip
    readme = (ROOT / "README.md").read_text()
    for folder in folders:
        assert f"{folder}/" in readme, f"README's layout does not describe {folder}/"


CYCLES = """
import json, sys
import grimp

graph = grimp.build_graph(
    "onnx_deploy", include_external_packages=False, exclude_type_checking_imports=False
)
sys.setrecursionlimit(10000)
index, low, stack, cycles = {}, {}, [], []


def visit(v):  # Tarjan's strongly connected components
    index[v] = low[v] = len(index)
    stack.append(v)
    for w in graph.find_modules_directly_imported_by(v):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            cycles.append(sorted(component))


for module in sorted(graph.modules):
    if module not in index:
        visit(module)
print(json.dumps(cycles))
"""


def _cycles(src: Path) -> list[list[str]]:
    """Import cycles in the package at ``src`` (grimp's graph: imports inside functions and
    under TYPE_CHECKING count too), as strongly connected components of modules."""
    pytest.importorskip("grimp")
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", CYCLES], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_no_import_cycle_anywhere_counting_lazy_and_type_checking_imports() -> None:
    """The layer contract's acyclic check covers the siblings of one folder; this covers
    every module of the package."""
    assert _cycles(ROOT / "src") == []


def test_the_cycle_check_finds_a_planted_cycle(copy_root: Path) -> None:
    """The check can fail: plots importing the report card's module closes a circle
    (report -> plots -> report), as the TYPE_CHECKING import of ReportCard once did."""
    path = copy_root / "src" / "onnx_deploy" / "present" / "plots.py"
    original = path.read_text()
    try:
        path.write_text(original + "\n\ndef _planted() -> None:\n    "
                        "from onnx_deploy.workflows.optimize import report\n")  # fmt: skip
        found = _cycles(copy_root / "src")
    finally:
        path.write_text(original)
    assert any("onnx_deploy.present.plots" in c for c in found), found
