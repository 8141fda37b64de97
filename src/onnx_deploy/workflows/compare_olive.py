"""Microsoft Olive's goal-driven search side by side with the report card's choice.

``make bench-olive`` runs it after ``make bench-optimum`` (it reuses that BERT-base folder,
its 32 samples at seq 128 and the card's choice). Olive (``olive-ai``) pins its own
onnxruntime and transformers, so it lives in its own environment (``.venv-olive``) and is
driven through its command line; it is not a dependency. Olive gets the card's objective
(the lowest latency) with a stricter constraint than the card's INT8 agreement preset:

- the same ``save_pretrained`` folder and samples; labels are our FP32 file's answers on
  them (random weights: accuracy means agreement with FP32), and Olive's accuracy goal is
  "at most 0.5 points below" them, where the card asked for top-1 agreement of 90%;
- a search (``execution_order: joint``, Olive's TPE sampler, ``--samples`` points) over
  ONNX conversion, ``OrtTransformersOptimization`` and ``OnnxQuantization`` (dynamic or
  static and their settings, searched), with the goals above and "average latency lower";
- Olive's best model by its own evaluation is then timed here, interleaved with the card's
  choice and our FP32 file on ONNX Runtime's CPU provider at seq 128, batch 1 and 8, as
  paired per-round speed-ups with their 95% intervals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import write_json

USER_SCRIPT = '''
"""Olive's view of the samples: a torch Dataset of (inputs, label) pairs."""
import numpy as np
import torch
from olive.data.registry import Registry


class Samples(torch.utils.data.Dataset):
    def __init__(self, data_dir):
        data = np.load(f"{data_dir}/samples.npz")
        self.inputs = {k: torch.from_numpy(data[k]) for k in data.files}
        self.labels = torch.from_numpy(np.load(f"{data_dir}/labels.npy"))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.inputs.items()}, self.labels[i]


@Registry.register_dataset()
def onnx_deploy_samples(data_dir, **kwargs):
    return Samples(data_dir)


@Registry.register_post_process()
def onnx_deploy_argmax(output, **kwargs):
    logits = output["logits"] if isinstance(output, dict) else output
    return torch.as_tensor(logits).argmax(dim=-1)
'''


def _log(text: str) -> None:
    print(text, flush=True)


def olive_config(folder: Path, data_dir: Path, out: Path, samples: int) -> dict[str, Any]:
    """The Olive workflow: the card's goal in Olive's terms (module docstring)."""
    data = {
        "name": "samples",
        "type": "DataContainer",
        "user_script": str(data_dir / "olive_data.py"),
        "load_dataset_config": {"type": "onnx_deploy_samples", "data_dir": str(data_dir)},
        "post_process_data_config": {"type": "onnx_deploy_argmax"},
        "dataloader_config": {"batch_size": 1},
    }
    return {
        "input_model": {
            "type": "HfModel", "model_path": str(folder), "task": "text-classification",
            "load_kwargs": {"attn_implementation": "eager"},
        },
        "systems": {
            "local_system": {
                "type": "LocalSystem",
                "accelerators": [{"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}],
            }
        },
        "data_configs": [data],
        "evaluators": {
            "goal": {
                "metrics": [
                    {
                        "name": "accuracy", "type": "accuracy", "backend": "torch_metrics",
                        "data_config": "samples",
                        "sub_types": [{
                            "name": "accuracy_score", "priority": 1,
                            "metric_config": {"task": "multiclass", "num_classes": 2},
                            "goal": {"type": "max-degradation", "value": 0.005},
                        }],
                    },
                    {
                        "name": "latency", "type": "latency", "data_config": "samples",
                        "sub_types": [{"name": "avg", "priority": 2,
                                       "goal": {"type": "percent-min-improvement", "value": 0.1}}],
                    },
                ]
            }
        },
        "passes": {
            "conversion": {"type": "OnnxConversion", "target_opset": 17},
            "transformers_optimization": {"type": "OrtTransformersOptimization", "model_type": "bert"},
            "quantization": {"type": "OnnxQuantization", "data_config": "samples"},
        },
        "search_strategy": {
            "execution_order": "joint", "sampler": "tpe",
            "max_samples": samples, "max_iter": samples, "seed": 0,
        },
        "evaluator": "goal",
        "host": "local_system",
        "target": "local_system",
        "cache_dir": str(out / "olive_cache"),
        "output_dir": str(out / "olive_output"),
    }  # fmt: skip


# ``olive run`` with two upstream bugs worked around (Olive 0.13.0, pydantic 2.14):
# - Olive looks for resource paths in every dict of the evaluator config, and one whose
#   ``type`` is None (an evaluator left to pick its framework's, as Olive's own examples
#   leave it) raises AttributeError where its check catches only ValueError ("'NoneType'
#   object has no attribute 'lower'");
# - a search step that reuses a cached pass run records it under the field's alias
#   (``FootprintNode.update(model_config=...)``, a field named ``model_config_data``), which
#   pydantic refuses ('"FootprintNode" object has no field "model_config"'), so every step
#   after the first failed before this.
OLIVE_RUN = """
import sys
import olive.resource_path as rp
from olive.engine import footprint

_create = rp.create_resource_path


def create(config):
    try:
        return _create(config)
    except AttributeError as e:
        raise ValueError(str(e)) from e


rp.create_resource_path = create
_update = footprint.FootprintNode.update


def update(self, **kwargs):
    if "model_config" in kwargs:
        kwargs["model_config_data"] = kwargs.pop("model_config")
    return _update(self, **kwargs)


footprint.FootprintNode.update = update
from olive.cli.launcher import main

sys.argv = ["olive", "run", "--config", sys.argv[1]]
main()
"""


def run_olive(venv: Path, config: Path, out: Path) -> tuple[str | None, str, float]:
    """``olive run --config``; Olive's best model, the output's last lines, seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", OLIVE_RUN, str(config)],
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    (out / "olive.log").write_text(done.stdout + "\n" + done.stderr)
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
    models = sorted((out / "olive_output").rglob("*.onnx"), key=lambda p: p.stat().st_mtime)
    return (str(models[-1]) if models else None), tail, seconds


def main(argv: list[str] | None = None) -> int:
    from onnx_deploy.infer.bench import benchmark
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.workflows.compare_optimum import samples

    p = argparse.ArgumentParser(prog="python -m onnx_deploy.workflows.compare_olive",
                                description=__doc__)  # fmt: skip
    p.add_argument("--olive-venv", default=".venv-olive")
    p.add_argument("--optimum-out", default="artifacts/optimum",
                   help="the folder of `make bench-optimum` (BERT-base, the card)")  # fmt: skip
    p.add_argument("--out", default="artifacts/olive")
    p.add_argument("--samples", type=int, default=12, help="Olive's search budget (TPE samples)")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args(argv)
    venv, base, out = Path(args.olive_venv), Path(args.optimum_out), Path(args.out)
    if not (venv / "bin" / "olive").exists():
        print(f"error: no olive in {venv}; run `make bench-olive`", file=sys.stderr)
        return 1
    card = json.loads((base / "card" / "report.json").read_text())
    folder, fp32 = base / "bert-base", base / "card" / "variants" / "model.fp32.onnx"
    out.mkdir(parents=True, exist_ok=True)
    data = samples()
    np.savez(out / "samples.npz", **data)
    with OnnxRuntimeRunner(fp32, "cpu") as ref:  # labels: our FP32 file's answers
        labels = ref.infer(data)[ref.output_names[0]].argmax(1)
    np.save(out / "labels.npy", labels)
    (out / "olive_data.py").write_text(USER_SCRIPT)
    cfg = out / "olive_config.json"
    write_json(cfg, olive_config(folder, out, out, args.samples), force=True)
    _log(f"olive run --config {cfg} (its own environment: {venv})")
    best, tail, seconds = run_olive(venv, cfg, out)
    result: dict[str, Any] = {"olive_seconds": seconds, "olive_model": best, "olive_tail": tail}
    files = {
        "ours FP32": str(fp32),
        f"ours: the card's choice ({card['chosen']})": card["files"]["model"],
    }
    if best is not None:
        files["Olive's best"] = best
    try:
        runners = {k: OnnxRuntimeRunner(f, "cpu", name=k) for k, f in files.items()}
        ref_logits = runners["ours FP32"].infer(data)[runners["ours FP32"].output_names[0]]
        result["agreement_with_fp32"] = {
            k: float((r.infer({s.name: data[s.name] for s in r.inputs})[r.output_names[0]]
                      .argmax(1) == ref_logits.argmax(1)).mean())
            for k, r in runners.items()
        }  # fmt: skip
        result["timings"] = []
        for b in (1, 8):
            feeds = {k: v[:b] for k, v in data.items()}
            for r in benchmark(runners, b, inputs=feeds, warmup=2, iters=args.iters,
                               rounds=args.rounds):  # fmt: skip
                result["timings"].append(r.to_dict())
                _log(r.summary())
    except Exception as e:  # Olive's file may not load here: say so
        result["problem"] = f"{type(e).__name__}: {first_line(e)}"
    write_json(out / "olive.json", result, force=True)
    print(json.dumps({k: v for k, v in result.items() if k != "timings"}, indent=1))
    if "timings" in result:
        text = table(result, next(n for n in files if "card's choice" in n))
        (out / "olive.md").write_text(text + "\n")
        print(text)
    return 0


def table(result: dict[str, Any], choice: str) -> str:
    """Each file against the card's choice: median latency at batch 1 and 8, the paired
    speed-up of the choice over it (above 1: the choice is faster), top-1 agreement."""
    from onnx_deploy.workflows.compare_optimum import choice_speedups

    by = {(t["name"], t["batch_size"]): t for t in result["timings"]}
    rows = [
        "| file | b1 median ms | b8 median ms | the choice's speed-up over it (b1) | (b8) "
        "| top-1 agreement with ours FP32 |",
        "|---|---|---|---|---|---|",
    ]
    for n, agree in result["agreement_with_fp32"].items():
        cells = choice_speedups(result["timings"], choice, n)
        rows.append(
            f"| {n} | {by[(n, 1)]['median_ms']:.1f} | {by[(n, 8)]['median_ms']:.1f} | "
            f"{cells[0]} | {cells[1]} | {100 * agree:.1f}% |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
