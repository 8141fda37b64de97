"""``onnx-deploy optimize``: the report card that finds the file to ship for a stated goal."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_runtimes
from onnx_deploy.cli._common import add_session_settings
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import model_source
from onnx_deploy.cli._common import size_bytes
from onnx_deploy.cli._common import step

HELP = "find the file to ship: every pass and runtime, judged, timed, chosen for your goal"
OBJECTIVES = ("latency", "throughput", "size")  # workflows.optimize.config.OBJECTIVES


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


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", nargs="?", default="project:digits_cnn",
        help="an FP32 .onnx file or a model spec (torchvision:resnet18, file.py:factory, "
        "hf:DIR, project:NAME); default: the trained digits CNN with its real data",
    )  # fmt: skip
    p.add_argument("--out-dir", default="artifacts/optimize", help="default artifacts/optimize")
    p.add_argument("--weights", help="checkpoint for a model spec (loaded with weights_only=True)")
    p.add_argument("--input-shape", type=ints, help="a spec's one float input, e.g. 3,224,224")
    add_signature(p)
    data = p.add_argument_group("data")
    data.add_argument(
        "--calibration",
        help="samples for static INT8: .npy, .npz (one array per input name), .pt or an image "
        "folder; default: --data",
    )
    data.add_argument(
        "--data",
        help="validation samples: .npy, .npz (one array per input name: input_ids, "
        "attention_mask, ...) or .pt; default: random valid inputs. Timings run on them too",
    )
    data.add_argument("--labels", help=".npy labels for --data: adds accuracy and its budget")
    data.add_argument(
        "--prompts",
        help="a decoder: prompts its greedy tokens are judged on (.npy rows left-padded with "
        "-1, or .npz input_ids + attention_mask); default: 32 drawn from the FP32 file",
    )
    data.add_argument(
        "--genai",
        metavar="DIR",
        help="a decoder: the folder of onnxruntime-genai's model builder (python -m "
        "onnxruntime_genai.models.builder -i HF_DIR -o DIR -p int4 -e cpu) as a candidate, "
        "judged by its tokens and timed on one decode step by onnxruntime-genai itself",
    )
    goal = p.add_argument_group("the goal")
    goal.add_argument(
        "--objective", choices=OBJECTIVES, default="latency",
        help="what to optimize: median latency or samples/s at --objective-batch, or file "
        "size (default latency)",
    )  # fmt: skip
    goal.add_argument(
        "--objective-batch", type=int,
        help="the batch size the objective is measured at (default 1 for latency, the "
        "largest --batch-sizes for throughput); it must be among --batch-sizes",
    )  # fmt: skip
    goal.add_argument(
        "--max-accuracy-drop", type=float, default=0.5,
        help="with --labels: points of accuracy a candidate may lose against FP32 (default 0.5)",
    )  # fmt: skip
    goal.add_argument(
        "--min-agreement", type=_agreement, default=None,
        help="top-1 agreement with FP32 required (default: each precision's preset, 0.9 for "
        "INT8, not judged for random weights or features; 'none' for any)",
    )  # fmt: skip
    goal.add_argument("--max-size", type=size_bytes, help="largest file allowed: 25MB, 800KB, ...")
    goal.add_argument(
        "--min-speedup", type=float,
        help="a margin on top of 'faster beyond this run's noise': a candidate's 95%% "
        "interval must lie above it to leave FP32 (default: none, 1.0)",
    )  # fmt: skip
    search = p.add_argument_group("the search")
    search.add_argument("--target", choices=("cpu", "cuda"), default="cpu")
    search.add_argument("--batch-sizes", type=ints, default=(1, 8), help="default 1,8")
    add_runtimes(search, "the candidates")
    search.add_argument(
        "--passes", type=_names,
        help="only these passes (comma-separated; default all; --list-passes names them)",
    )  # fmt: skip
    search.add_argument(
        "--list-passes", action="store_true",
        help="print every pass (what it needs, its options) and the chains the card tries, "
        "then exit",
    )  # fmt: skip
    add_session_settings(search)
    timing = p.add_argument_group("timing")
    timing.add_argument("--warmup", type=int, default=3, help="default 3")
    timing.add_argument(
        "--iters", type=int, default=20, help="timed runs per candidate, default 20"
    )
    timing.add_argument("--rounds", type=int, default=5, help="interleaved rounds, default 5")
    timing.add_argument(
        "--budget", type=float, default=180.0,
        help="seconds for extra rounds until every interval decides (default 180; 0: none)",
    )  # fmt: skip
    p.add_argument("--no-plots", action="store_true", help="skip the two PNG plots")
    add_force(p, "an existing report in --out-dir")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    if args.list_passes:
        from onnx_deploy.passes import describe_registry

        print(describe_registry())
        return EXIT_OK

    from onnx_deploy.workflows.optimize import Goal
    from onnx_deploy.workflows.optimize import OptimizeConfig
    from onnx_deploy.workflows.optimize import report_card

    goal = Goal(
        objective=args.objective, batch=args.objective_batch,
        max_accuracy_drop=args.max_accuracy_drop, min_agreement=args.min_agreement,
        max_size=args.max_size, min_speedup=args.min_speedup,
    )  # fmt: skip
    config = OptimizeConfig(
        goal=goal, target=args.target, batch_sizes=args.batch_sizes, runtimes=args.runtimes,
        passes=args.passes, warmup=args.warmup, iters=args.iters, rounds=args.rounds,
        budget_s=args.budget, threads=args.threads, spinning=args.spinning,
        plots=not args.no_plots, force=args.force, calibration=args.calibration,
        validation=args.data, labels=args.labels, prompts=args.prompts, genai=args.genai,
    )  # fmt: skip
    card = report_card(replace(model_source(args), data=None), args.out_dir, config, log=step(args))
    if not args.json:
        print()
    emit(args, card)
    if not card.chosen:
        return fail(f"no candidate meets the constraints: see {card.files['markdown']}")
    if not args.json:
        print(f"\nwrote {card.files['markdown']}, the chosen model {card.files.get('model')} "
              f"and its manifest {card.files.get('manifest')}")  # fmt: skip
    return EXIT_OK
