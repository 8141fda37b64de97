"""``onnx-deploy loadtest``: concurrency levels against a Triton endpoint, and bad requests."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import ints

HELP = "load-test a Triton/KServe v2 endpoint at several concurrencies and send bad requests"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="the HTTP endpoint, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", help="the model's name (default: the endpoint's only model)")
    p.add_argument(
        "--grpc-url", help="the gRPC endpoint (default: 127.0.0.1:8001 style from url + 1)"
    )
    p.add_argument("--metrics-url", help="Triton's metrics, e.g. http://127.0.0.1:8002/metrics")
    p.add_argument("--concurrency", type=ints, default=(1, 4, 16, 32), help="default 1,4,16,32")
    p.add_argument("--requests", type=int, default=200, help="per level, default 200")
    p.add_argument("--max-seconds", type=float, default=20.0, help="per level, default 20")
    p.add_argument("--batch-size", type=int, default=1, help="samples per request, default 1")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--no-bad-requests", action="store_true", help="skip the bad-request checks")
    p.add_argument(
        "--allow-remote", action="store_true",
        help="send load to a host other than this machine (refused by default)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.serve.loadtest import load_test

    result = load_test(
        args.url, model=args.model, grpc_url=args.grpc_url, metrics_url=args.metrics_url,
        concurrency=args.concurrency, requests=args.requests, max_seconds=args.max_seconds,
        batch_size=args.batch_size, protocol=args.protocol,
        check_bad_requests=not args.no_bad_requests, allow_remote=args.allow_remote,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK if result.ok else EXIT_FAIL
