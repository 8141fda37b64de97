"""The manifest beside the chosen file: what a deployment needs to know about it.

``manifest.json``: the file's sha256 and size; its IR version and opsets; the oldest ONNX
Runtime that loads it (``infer.ortcompat``, measured on every release's CPU wheel); the
contrib ops it holds and the runtime and execution providers it needs; the candidate,
its chain of passes and its validation against FP32; the goal it was chosen for, with its
speed-up; the machine, the versions and the date it was chosen on; the model's contract.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from onnx_deploy.core.contract import ModelContract


def build_manifest(card: Any, contract: ModelContract | None) -> dict[str, Any]:
    """The manifest of ``card``'s chosen candidate (a ``ReportCard``)."""
    from dataclasses import asdict

    from onnx_deploy.core.files import file_sha256
    from onnx_deploy.runtimes import resolve

    chosen = card.chosen_candidate
    path = Path(chosen.path)
    runtime, mode = resolve(chosen.runtime)
    if path.is_dir():  # onnxruntime-genai's folder: every file's hash, its graph's facts
        from onnx_deploy.infer.genai import genai_graph

        graph = genai_graph(path)
        file, sha = (
            "genai/",
            {p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file()},
        )
    else:
        graph, file, sha = path, "model" + path.suffix, file_sha256(path)
    manifest: dict[str, Any] = {
        "file": file,
        "sha256": sha,
        "bytes": chosen.size,
        "candidate": chosen.name,
        "chain": list(chosen.chain),
        "runtime": {
            "name": chosen.runtime,
            "needs": chosen.needs,
            "setting": mode.setting or None,
            "devices": list(runtime.devices),
        },
    }
    if graph.suffix == ".onnx" and graph.is_file():
        manifest |= _onnx_facts(graph, card.target)
    sp = chosen.speedup
    manifest["validation"] = {
        "against": "FP32 (the model as given, on ONNX Runtime)",
        "tolerance": chosen.precision,
        "passed": bool(chosen.passed),
        "accuracy": chosen.accuracy,
        "reference_accuracy": card.candidate("FP32").accuracy,
        "agreement": chosen.agreement,
        "max_abs": chosen.max_abs,
        "min_cosine": chosen.min_cosine,
        "data": card.data,
    }
    manifest["chosen_for"] = {
        "goal": card.goal,
        "objective": card.objective,
        "batch": card.objective_batch,
        "speedup_over_fp32": None
        if sp is None
        else {"estimate": sp.estimate, "low": sp.low, "high": sp.high, "rounds": sp.rounds},
        "verdict": chosen.verdict,
    }
    env = card.environment
    manifest["chosen_on"] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": env.get("cpu", {}).get("model"),
        "int8_isa": env.get("cpu", {}).get("int8_isa"),
        "logical_cpus": env.get("cpu", {}).get("logical_cpus"),
        "threads": env.get("threads"),
        "python": env.get("python"),
        "platform": env.get("platform"),
        "versions": env.get("versions", {}),
    }
    manifest["contract"] = asdict(contract) if contract is not None else None
    return manifest


def _onnx_facts(path: Path, target: str) -> dict[str, Any]:
    """IR version, opsets, the oldest ONNX Runtime, contrib ops and the providers that
    load the file here."""
    from onnx_deploy.infer.modelinfo import load_onnx
    from onnx_deploy.infer.ortcompat import oldest_onnxruntime
    from onnx_deploy.runtimes import CONTRIB_DOMAINS

    proto = load_onnx(path, load_external_data=False)
    need = oldest_onnxruntime(proto)
    contrib = sorted({n.op_type for n in proto.graph.node if n.domain in CONTRIB_DOMAINS})
    # the opsets its nodes use: ONNX Runtime's fusions import every domain it knows
    used = {"", "ai.onnx"} | {n.domain for n in proto.graph.node}
    used |= {n.domain for f in proto.functions for n in f.node} | {
        f.domain for f in proto.functions
    }
    return {
        "ir_version": int(proto.ir_version),
        "opsets": {
            o.domain or "ai.onnx": int(o.version) for o in proto.opset_import if o.domain in used
        },
        "min_onnxruntime": {
            "version": need.version,
            "because": list(need.because),
            "missing": list(need.missing),
            "measured_on": need.wheel or None,
            "measured_releases": need.measured,
        },
        "contrib_ops": contrib,
        "execution_providers": _providers(path, target),
    }


def _providers(path: Path, target: str) -> list[str]:
    """The execution providers a session on this machine runs the file with."""
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, "cuda" if target == "cuda" else "cpu") as runner:
        return runner.providers
