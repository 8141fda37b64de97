"""``onnx-deploy serve``: a local Triton (PyTriton) serving an ONNX model on 127.0.0.1."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import ints

HELP = "serve an ONNX model with a local Triton (PyTriton) on 127.0.0.1, dynamic batching on"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--name", help="the model's name in Triton (default: the file's stem)")
    p.add_argument("--http-port", type=int, default=8000, help="default 8000; 0: a free port")
    p.add_argument("--grpc-port", type=int, default=8001, help="default 8001; 0: a free port")
    p.add_argument("--metrics-port", type=int, default=8002, help="default 8002; 0: a free port")
    p.add_argument("--max-batch-size", type=int, default=64, help="default 64")
    p.add_argument(
        "--queue-delay-us", type=int, default=100,
        help="how long Triton's dynamic batcher waits to fill a batch (default 100)",
    )  # fmt: skip
    p.add_argument("--preferred", type=ints, default=(), help="preferred batch sizes, e.g. 4,8")
    p.add_argument("--no-batching", action="store_true", help="one request per execution")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: its own)")
    p.add_argument(
        "--python",
        help="the interpreter of an environment with the serve extra (default: this one if "
        "it can serve, else ./.venv-serve; PyTriton needs numpy < 2)",
    )
    p.add_argument("--ready-file", help="write the endpoints as JSON here once Triton is ready")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.serve.serving import serve

    return serve(
        args.model, python=args.python, name=args.name, http_port=args.http_port,
        grpc_port=args.grpc_port, metrics_port=args.metrics_port,
        max_batch_size=args.max_batch_size,
        queue_delay_us=None if args.no_batching else args.queue_delay_us,
        preferred_batch_sizes=args.preferred, threads=args.threads, ready_file=args.ready_file,
    )  # fmt: skip
