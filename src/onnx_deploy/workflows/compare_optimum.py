"""This project's transformer path side by side with optimum-onnx's, on one BERT-base.

``make bench-optimum`` runs it. optimum-onnx 0.1.0 pins transformers 4.57, so it lives in
its own environment (``.venv-optimum``) and is driven through its command line; it is not
a dependency. Both sides start from the same ``save_pretrained`` folder (BERT-base from its
config, 110M parameters, seed 0: random weights, so only speed and agreement mean anything):

- ours: ``export hf:DIR`` (dynamo), ``fuse`` (onnxscript ort_fusions), dynamic INT8 of the
  plain and of the fused graph;
- optimum: ``optimum-cli export onnx`` (plain, and ``--optimize O2``), and
  ``optimum-cli onnxruntime quantize --avx512_vnni`` of each.

Every file is timed on ONNX Runtime's CPU provider, interleaved in one process
(``benchmark(rounds=...)``), at seq 128, batch 1 and 8, on the same unpadded inputs;
fused-op counts and agreement with our FP32 file are reported beside the timings.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.files import write_json

SEQ = 128


def _log(text: str) -> None:
    print(text, flush=True)


def make_model(folder: Path) -> None:
    import torch
    from transformers import BertConfig
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(num_labels=2)).save_pretrained(folder)


def samples(n: int = 32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (n, SEQ)).astype(np.int64)
    ones = np.ones_like(ids)
    return {"input_ids": ids, "attention_mask": ones, "token_type_ids": np.zeros_like(ids)}


def ours(folder: Path, out: Path, sdpa: bool = False) -> dict[str, str]:
    from onnx_deploy.convert.fusion import fuse_transformer
    from onnx_deploy.convert.quantize import quantize_dynamic_model
    from onnx_deploy.workflows.pipeline import export_spec

    fp32 = out / "ours.fp32.onnx"
    export_spec(f"hf:{folder}", fp32, force=True, log=_log)
    fused = fuse_transformer(fp32, out / "ours.fused.onnx", force=True)
    _log(fused.summary())
    files = {"ours FP32": fp32, "ours fused": fused.output_path}
    sources = [("ours INT8 dynamic", fp32), ("ours fused + INT8 dynamic", fused.output_path)]
    if sdpa:  # transformers' default attention, for the EXPORT_ATTENTION comparison
        from onnx_deploy.convert.export import export_model
        from onnx_deploy.convert.hf import load_hf_model
        from onnx_deploy.convert.hf import signature_for

        model = load_hf_model(f"hf:{folder}", attn_implementation=None)
        path = out / "ours.sdpa.onnx"
        export_model(model, None, path, signature=signature_for(model), force=True)
        files["ours FP32 (sdpa attention)"] = path
        sources.append(("ours INT8 dynamic (sdpa attention)", path))
    for name, src in sources:
        dst = out / (Path(src).stem + ".int8.onnx")
        _log(quantize_dynamic_model(src, dst, force=True).summary())
        files[name] = dst
    return {k: str(v) for k, v in files.items()}


def optimum(folder: Path, out: Path, venv: Path) -> tuple[dict[str, str], list[str]]:
    cli = venv / "bin" / "optimum-cli"
    files: dict[str, str] = {}
    problems: list[str] = []

    def run(args: list[str]) -> bool:
        done = subprocess.run([str(cli), *args], capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
            problems.append(f"optimum-cli {' '.join(args[:2])} ... failed: {last}")
        return done.returncode == 0

    for name, extra in (("plain", []), ("O2", ["--optimize", "O2"])):
        target = out / f"optimum.{name}"
        base = ["export", "onnx", "--model", str(folder), "--task", "text-classification"]
        if run([*base, *extra, str(target)]):
            files[f"optimum {name}"] = str(target / "model.onnx")
            q = out / f"optimum.{name}.int8"
            if run(["onnxruntime", "quantize", "--onnx_model", str(target), "--avx512_vnni",
                    "-o", str(q)]):  # fmt: skip
                files[f"optimum {name} + INT8 (avx512_vnni)"] = str(q / "model_quantized.onnx")
    return files, problems


def measure(files: dict[str, str], iters: int, rounds: int) -> dict[str, Any]:
    import onnx

    from onnx_deploy.convert.fusion import fused_op_counts
    from onnx_deploy.infer.bench import benchmark
    from onnx_deploy.infer.bench import collect_environment
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    data = samples()
    runners = {k: OnnxRuntimeRunner(f, "cpu", name=k) for k, f in files.items()}
    first = next(iter(runners.values()))
    ref = first.infer(data)[first.output_names[0]]
    result: dict[str, Any] = {"environment": collect_environment(), "files": {}, "timings": []}
    for name, runner in runners.items():
        got = runner.infer({s.name: data[s.name] for s in runner.inputs})
        logits = got[runner.output_names[0]]
        result["files"][name] = {
            "fused_ops": fused_op_counts(onnx.load(files[name], load_external_data=False)),
            "max_abs_vs_first": float(np.abs(logits - ref).max()),
            "top1_agreement_vs_first": float((logits.argmax(1) == ref.argmax(1)).mean()),
        }
    for b in (1, 8):
        feeds = {k: v[:b] for k, v in data.items()}
        for r in benchmark(runners, b, inputs=feeds, warmup=2, iters=iters, rounds=rounds):
            result["timings"].append(r.to_dict())
            _log(r.summary())
    return result


def table(result: dict[str, Any]) -> str:
    by = {(t["name"], t["batch_size"]): t for t in result["timings"]}
    names = list(result["files"])
    base = names[0]
    rows = [
        "| file | fused ops | b1 median ms | b8 median ms | vs ours FP32 (b1 / b8) | max abs vs ours FP32 |",
        "|---|---|---|---|---|---|",
    ]
    for n in names:
        ops = ", ".join(f"{v} {k}" for k, v in result["files"][n]["fused_ops"].items()) or "-"
        b1, b8 = by[(n, 1)]["median_ms"], by[(n, 8)]["median_ms"]
        r1, r8 = by[(base, 1)]["median_ms"] / b1, by[(base, 8)]["median_ms"] / b8
        rows.append(
            f"| {n} | {ops} | {b1:.1f} | {b8:.1f} | {r1:.2f}x / {r8:.2f}x | "
            f"{result['files'][n]['max_abs_vs_first']:.1e} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m onnx_deploy.workflows.compare_optimum", description=__doc__
    )
    p.add_argument("--optimum-venv", default=".venv-optimum")
    p.add_argument("--out", default="artifacts/optimum")
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--sdpa", action="store_true", help="also export with transformers' default attention"
    )
    args = p.parse_args(argv)
    venv = Path(args.optimum_venv)
    if not (venv / "bin" / "optimum-cli").exists():
        print(f"error: no optimum-cli in {venv}; run `make bench-optimum`", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "bert-base"
    start = time.perf_counter()
    if not (folder / "config.json").exists():
        make_model(folder)
    files = ours(folder, out, args.sdpa)
    theirs, problems = optimum(folder, out, venv)
    result = measure(files | theirs, args.iters, args.rounds)
    result["problems"] = problems
    result["seconds"] = time.perf_counter() - start
    write_json(out / "optimum.json", result, force=True)
    text = table(result) + "".join(f"\n- {p}" for p in problems)
    (out / "optimum.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
