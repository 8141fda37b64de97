"""The report card's choice side by side with optimum-onnx's files, on one BERT-base.

``make bench-optimum`` runs it. optimum-onnx 0.1.0 pins transformers 4.57, so it lives in
its own environment (``.venv-optimum``) and is driven through its command line; it is not
a dependency. Both sides start from the same ``save_pretrained`` folder (BERT-base from its
config, 110M parameters, seed 0: random weights, so only speed and agreement mean anything):

- ours: ``onnx-deploy optimize hf:DIR`` on 32 samples at seq 128 (the card's goal: the
  lowest latency at batch 1), its choice, and the FP32 and INT8 dynamic files it built;
- optimum: ``optimum-cli export onnx`` (plain, and ``--optimize O2``), and
  ``optimum-cli onnxruntime quantize --avx512_vnni`` of each.

Every file is timed on ONNX Runtime's CPU provider, interleaved in one process
(``benchmark(rounds=...)``), at seq 128, batch 1 and 8, on the same unpadded inputs; each
is compared with the card's choice as a paired per-round speed-up with its 95% interval,
beside its fused-op counts and its agreement with our FP32 file.
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
    """The card's choice for ``hf:folder`` and the files it built that matter here."""

    from onnx_deploy.workflows.optimize import OptimizeConfig
    from onnx_deploy.workflows.optimize import report_card

    data = samples()
    config = OptimizeConfig(
        calibration=data, validation=data, batch_sizes=(1, 8), plots=False, force=True,
        name="BERT-base (random weights, seq 128)",
    )  # fmt: skip
    card = report_card(f"hf:{folder}", out / "card", config, log=_log)
    _log(card.summary())
    by_name = {c.name: c for c in card.candidates if c.runs}
    files = {"ours FP32": by_name["FP32"].path}
    for name in ("INT8 dynamic", "INT8 dynamic fused"):
        if name in by_name and name != card.chosen:
            files[f"ours {name}"] = by_name[name].path
    files[f"ours: the card's choice ({card.chosen})"] = card.files["model"]
    if sdpa:  # transformers' default attention, for the EXPORT_ATTENTION comparison
        from onnx_deploy.convert.export import export_model
        from onnx_deploy.convert.hf import load_hf_model
        from onnx_deploy.convert.hf import signature_for
        from onnx_deploy.convert.quantize import quantize_dynamic_model

        model = load_hf_model(f"hf:{folder}", attn_implementation=None)
        path = out / "ours.sdpa.onnx"
        export_model(model, None, path, signature=signature_for(model), force=True)
        files["ours FP32 (sdpa attention)"] = str(path)
        dst = out / "ours.sdpa.int8.onnx"
        _log(quantize_dynamic_model(path, dst, force=True).summary())
        files["ours INT8 dynamic (sdpa attention)"] = str(dst)
    return {k: str(v) for k, v in files.items() if v}


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


def choice_speedups(timings: list[dict[str, Any]], choice: str, name: str) -> list[str]:
    """The paired speed-up of ``choice`` over ``name`` at batch 1 and 8, with its interval
    (above 1: the choice is faster), from one interleaved run's ``timings``."""
    from onnx_deploy.core.timing import paired_speedup

    by = {(t["name"], t["batch_size"]): t for t in timings}
    cells = []
    for b in (1, 8):
        mine = {int(k): v for k, v in by[(choice, b)]["rounds_ms"].items()}
        theirs = {int(k): v for k, v in by[(name, b)]["rounds_ms"].items()}
        cells.append("-" if name == choice else paired_speedup(theirs, mine).text())
    return cells


def table(result: dict[str, Any]) -> str:
    """Each file against the card's choice: median latency at batch 1 and 8, the paired
    speed-up of the choice over it (above 1: the choice is faster) with its interval."""
    by = {(t["name"], t["batch_size"]): t for t in result["timings"]}
    names = list(result["files"])
    choice = next(n for n in names if "card's choice" in n)
    rows = [
        "| file | fused ops | b1 median ms | b8 median ms | the choice's speed-up over it (b1) "
        "| (b8) | max abs vs ours FP32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in names:
        ops = ", ".join(f"{v} {k}" for k, v in result["files"][n]["fused_ops"].items()) or "-"
        cells = choice_speedups(result["timings"], choice, n)
        rows.append(
            f"| {n} | {ops} | {by[(n, 1)]['median_ms']:.1f} | {by[(n, 8)]['median_ms']:.1f} | "
            f"{cells[0]} | {cells[1]} | {result['files'][n]['max_abs_vs_first']:.1e} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m onnx_deploy.workflows.compare_optimum", description=__doc__
    )
    p.add_argument("--optimum-venv", default=".venv-optimum")
    p.add_argument("--out", default="artifacts/optimum")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--rounds", type=int, default=10)
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
