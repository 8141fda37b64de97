"""``onnx-deploy serve``: a local Triton (PyTriton) serving an ONNX model on 127.0.0.1."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK, ints

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


def _forward(args: argparse.Namespace) -> list[str]:
    out = [args.model]
    for flag in ("name", "http_port", "grpc_port", "metrics_port", "max_batch_size",
                 "queue_delay_us", "threads", "ready_file"):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            out += [f"--{flag.replace('_', '-')}", str(value)]
    if args.preferred:
        out += ["--preferred", ",".join(map(str, args.preferred))]
    if args.no_batching:
        out.append("--no-batching")
    return out


def _run_child(cmd: list[str]) -> int:
    """Run the server in its own session and pass on exactly one stop signal (Ctrl-C or
    SIGTERM to this process), so that Triton shuts down once, cleanly."""
    import signal
    import subprocess

    child = subprocess.Popen(cmd, start_new_session=True)

    def forward(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)  # also when a shell started us with SIGINT ignored
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            forward(signal.SIGINT, None)


def run(args: argparse.Namespace) -> int:
    import sys

    from onnx_deploy.serving import can_serve_here, run_server, serve_python

    if args.python or can_serve_here():
        python = serve_python(args.python)
        if python != sys.executable:  # the serving environment runs it, this one waits
            return _run_child([python, "-m", "onnx_deploy.serving", *_forward(args)])
    run_server(
        args.model, name=args.name, http_port=args.http_port, grpc_port=args.grpc_port,
        metrics_port=args.metrics_port, max_batch_size=args.max_batch_size,
        queue_delay_us=None if args.no_batching else args.queue_delay_us,
        preferred_batch_sizes=args.preferred, threads=args.threads, ready_file=args.ready_file,
    )  # fmt: skip
    return EXIT_OK
