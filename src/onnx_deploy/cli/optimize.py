"""``onnx-deploy optimize``: the report card that picks the variant to ship."""

from __future__ import annotations

import argparse
from dataclasses import replace

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import model_source
from onnx_deploy.cli._common import runtimes
from onnx_deploy.cli._common import step

HELP = "build FP32/FP16/INT8 (and TensorRT) variants, validate, benchmark, pick one to ship"


def _agreement(text: str) -> float:
    if text.lower() in ("none", "off"):
        return 0.0  # any agreement passes
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction such as 0.9, or none: {text!r}"
        ) from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction between 0 and 1, got {text!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", default="digits",
        help="an FP32 .onnx file, a model spec (torchvision:resnet18, file.py:factory, hf:DIR) or "
        "'digits' (default: the trained digits CNN with its real data)",
    )  # fmt: skip
    p.add_argument("--out-dir", default="artifacts/optimize", help="default artifacts/optimize")
    p.add_argument("--weights", help="checkpoint for a model spec (loaded with weights_only=True)")
    p.add_argument("--input-shape", type=ints, help="a spec's one float input, e.g. 3,224,224")
    add_signature(p)
    p.add_argument(
        "--calibration",
        help="samples for static INT8: .npy, .npz (one array per input name), .pt or an image "
        "folder; default: --data",
    )
    p.add_argument(
        "--data",
        help="validation samples: .npy, .npz (one array per input name: input_ids, "
        "attention_mask, ...) or .pt; default: random valid inputs. Timings run on them too",
    )
    p.add_argument("--labels", help=".npy labels for --data: adds accuracy and its budget")
    p.add_argument("--target", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch-sizes", type=ints, default=(1, 8), help="default 1,8")
    p.add_argument(
        "--max-accuracy-drop", type=float, default=0.5,
        help="with --labels: points of accuracy a variant may lose (default 0.5)",
    )  # fmt: skip
    p.add_argument(
        "--min-speedup", type=float, default=1.2,
        help="a lower precision must be this much faster than FP32 at every batch size "
        "(default 1.2: smaller gains are within run-to-run noise)",
    )  # fmt: skip
    p.add_argument(
        "--min-agreement", type=_agreement, default=None,
        help="top-1 agreement with FP32 required (default: the precision's preset, 0.9 for "
        "INT8; 'none' for random-weight specs, where it is a coin toss)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")
    p.add_argument(
        "--runtimes", type=runtimes, default=("onnxruntime",),
        help="runtimes to try the variants on: onnxruntime (default), or onnxruntime,openvino "
        "(OpenVINO's CPU plugin on the same files: FP32, BF16, FP16 weights, QDQ INT8; "
        "pip install 'onnx-deploy[openvino]')",
    )  # fmt: skip
    p.add_argument("--warmup", type=int, default=3, help="default 3")
    p.add_argument("--iters", type=int, default=20, help="timed runs per variant, default 20")
    p.add_argument("--rounds", type=int, default=5, help="interleaving rounds, default 5")
    p.add_argument("--no-plots", action="store_true", help="skip the two PNG plots")
    add_force(p, "an existing report in --out-dir")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.optimize import report_card

    card = report_card(
        replace(model_source(args), data=None), args.out_dir,
        calibration=args.calibration, validation=args.data, labels=args.labels,
        min_agreement="auto" if args.min_agreement is None else args.min_agreement,
        target=args.target, batch_sizes=args.batch_sizes,
        max_accuracy_drop=args.max_accuracy_drop, min_speedup=args.min_speedup,
        warmup=args.warmup, iters=args.iters, rounds=args.rounds, threads=args.threads,
        runtimes=args.runtimes,
        plots=not args.no_plots, force=args.force, log=step(args),
    )  # fmt: skip
    if not args.json:
        print()
    emit(args, card)
    if not args.json:
        print(f"\nwrote {card.files['markdown']} and the chosen model {card.files.get('model')}")
    return EXIT_OK
