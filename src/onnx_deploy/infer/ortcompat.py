"""The oldest ONNX Runtime that loads a file: measured on every release, not read off a
table.

A file needs an ONNX Runtime whose IR version and ``ai.onnx`` opset reach the file's, and
that has a CPU kernel for each of its nodes at the opset of the node's domain (contrib ops
included: ``com.microsoft`` ops arrived release by release). ``data/onnxruntime_releases.json``
records, for the CPU wheel of each minor release from 1.16 on, the highest IR version and
opset it loads (tiny models tried one by one) and the kernel version ranges it registers
on the CPU (``get_all_opkernel_def``). ``refresh`` rebuilds it from downloaded wheels::

    python -m pip download --no-deps --only-binary=:all: --python-version 3.11 \\
        --platform manylinux_2_28_x86_64 "onnxruntime~=1.16.0" ... -d wheels/
    python -m onnx_deploy.infer.ortcompat refresh wheels/ --python /path/to/python-with-numpy1

(``--python``: an interpreter with ``numpy<2`` and ``onnx``, which the older wheels need.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from onnx_deploy.core.files import PACKAGE_DATA
from onnx_deploy.core.results import Result

RELEASES_FILE = PACKAGE_DATA / "onnxruntime_releases.json"
OPEN = 10**6  # a kernel range with no end


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:3])


@cache
def releases() -> dict[str, Any]:
    """The measured table (module docstring): ``{"releases": [{"version", "max_ir",
    "max_opset"}, ...], "kernels": {"domain:op": [[lo, hi, oldest], ...]}, ...}``."""
    return json.loads(RELEASES_FILE.read_text())


@dataclass(frozen=True)
class OrtRequirement(Result):
    """The oldest ONNX Runtime release (of those measured) that loads a file on the CPU,
    and why: the requirement that set it (``because``). ``version`` is None when no
    measured release has a kernel for one of its nodes (``missing``)."""

    version: str | None  # a minor release: 1.18
    because: tuple[str, ...]
    missing: tuple[str, ...] = ()
    measured: str = ""  # the releases the table covers
    wheel: str = ""  # the release measured for that minor version: 1.18.1

    def summary(self) -> str:
        if self.version is None:
            return f"no measured ONNX Runtime runs {', '.join(self.missing)} on the CPU"
        return (
            f"onnxruntime >= {self.version} ({'; '.join(self.because)}; measured on {self.wheel})"
        )


def oldest_onnxruntime(model: Any) -> OrtRequirement:
    """The oldest measured ONNX Runtime that loads ``model`` (a path or ``ModelProto``)."""
    from onnx_deploy.infer.modelinfo import load_onnx

    proto = (
        model if hasattr(model, "graph") else load_onnx(model, load_external_data=False)  # type: ignore[arg-type]
    )
    table = releases()
    rows = sorted(table["releases"], key=lambda r: _version_key(r["version"]))
    measured = f"{rows[0]['version']} to {rows[-1]['version']}"
    opsets = {o.domain or "": int(o.version) for o in proto.opset_import}
    needs: list[tuple[str, str]] = []  # (oldest version, why)

    def first(pred: Any, why: str) -> None:
        hit = next((r["version"] for r in rows if pred(r)), None)
        needs.append((hit or "", why))

    ir = int(proto.ir_version)
    first(lambda r: r["max_ir"] >= ir, f"IR version {ir}")
    opset = opsets.get("", opsets.get("ai.onnx", 0))
    first(lambda r: r["max_opset"] >= opset, f"ai.onnx opset {opset}")
    missing = []
    for domain, op in sorted({(n.domain or "", n.op_type) for n in proto.graph.node}):
        at = opsets.get(domain, 1)
        ranges = table["kernels"].get(f"{domain}:{op}", [])
        oldest = [v for lo, hi, v in ranges if lo <= at <= hi]
        name = f"{domain + '.' if domain else ''}{op}-{at}"
        if not oldest:
            missing.append(name)
            continue
        needs.append((min(oldest, key=_version_key), name))
    if missing:
        return OrtRequirement(None, (), tuple(missing), measured)
    unknown = [why for v, why in needs if not v]
    if unknown:
        return OrtRequirement(None, (), tuple(unknown), measured)
    version = max((v for v, _ in needs), key=_version_key)
    because = tuple(why for v, why in needs if v == version)
    return OrtRequirement(minor(version), because[:4], (), measured, version)


def minor(version: str) -> str:
    """``1.18.1`` -> ``1.18``: a minor release (the table measures its latest patch)."""
    return ".".join(version.split(".")[:2])


# --- measuring the releases (a maintainer's tool: module docstring) ------------------------


def probe() -> dict[str, Any]:
    """In an interpreter that imports one ONNX Runtime release: the highest IR version and
    ``ai.onnx`` opset it loads, and its CPU kernels' version ranges."""
    import onnxruntime as ort
    from onnx import TensorProto
    from onnx import helper
    from onnxruntime.capi import _pybind_state as capi

    from onnx_deploy.infer.sessions import create_session

    kernels: dict[str, list[list[int]]] = {}
    for d in capi.get_all_opkernel_def():
        if d.provider == "CPUExecutionProvider":
            lo, hi = d.version_range
            kernels.setdefault(f"{d.domain}:{d.op_name}", []).append([int(lo), min(int(hi), OPEN)])

    def loads(ir: int, opset: int) -> bool:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = ir
        try:
            create_session(model.SerializeToString(), "cpu")
            return True
        except Exception:
            return False

    return {
        "version": ort.__version__,
        "max_ir": max(ir for ir in range(3, 16) if loads(ir, 13)),
        "max_opset": max(o for o in range(7, 30) if loads(7, o)),
        "kernels": kernels,
    }


def merge(probes: Iterable[dict[str, Any]], when: str, machine: str) -> dict[str, Any]:
    """One table from each release's ``probe``: every kernel range with the oldest release
    that registers it."""
    rows = sorted(probes, key=lambda p: _version_key(p["version"]))
    oldest: dict[tuple[str, int, int], str] = {}
    for p in rows:
        for key, ranges in p["kernels"].items():
            for lo, hi in ranges:
                oldest.setdefault((key, lo, hi), p["version"])
    kernels: dict[str, list[list[Any]]] = {}
    for (key, lo, hi), version in sorted(oldest.items()):
        kernels.setdefault(key, []).append([lo, hi, version])
    return {
        "measured": when,
        "machine": machine,
        "method": "each release's CPU wheel: tiny Relu models at IR 3-15 and opsets 7-29 "
        "loaded one by one; get_all_opkernel_def() on the CPU execution provider",
        "releases": [{k: p[k] for k in ("version", "max_ir", "max_opset")} for p in rows],
        "kernels": kernels,
    }


def refresh(wheels: str, python: str, output: str | os.PathLike[str] = RELEASES_FILE) -> None:
    """Probe every ``onnxruntime-*.whl`` in ``wheels`` with ``python`` and write the table."""
    import datetime
    import platform
    import subprocess
    import sys
    import tempfile
    import zipfile
    from pathlib import Path

    from onnx_deploy.core.files import write_json

    src = str(Path(__file__).resolve().parents[2])
    probes = []
    for wheel in sorted(Path(wheels).glob("onnxruntime-*.whl")):
        with tempfile.TemporaryDirectory() as tmp:
            zipfile.ZipFile(wheel).extractall(tmp)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([tmp, src])}
            code = "import json, onnx_deploy.infer.ortcompat as m; print(json.dumps(m.probe()))"
            done = subprocess.run(
                [python, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            probes.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"probed {probes[-1]['version']}", file=sys.stderr)
    machine = f"{platform.machine()} {platform.python_version()}"
    table = merge(probes, datetime.date.today().isoformat(), machine)
    write_json(output, table, force=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="rebuild the ONNX Runtime releases table")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("refresh")
    r.add_argument("wheels", help="a folder of onnxruntime-*.whl (CPU wheels)")
    r.add_argument("--python", required=True, help="an interpreter with numpy<2 and onnx")
    r.add_argument("--output", default=str(RELEASES_FILE))
    args = parser.parse_args()
    refresh(args.wheels, args.python, args.output)
