"""``onnx-deploy web``: a static page that runs the model with onnxruntime-web."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import emit

HELP = "write a static web page that runs the model in the browser (onnxruntime-web)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="an .onnx file (weights inline; preprocessing in the graph is best)"
    )
    p.add_argument(
        "--out", default="artifacts/web", help="the folder to write, default artifacts/web"
    )
    p.add_argument("--title", help="the page's title (default: the file name)")
    p.add_argument("--labels", help="comma-separated class names for the output's indices")
    p.add_argument(
        "--serve", action="store_true", help="then serve the folder on 127.0.0.1 for a look"
    )
    p.add_argument(
        "--port", type=int, default=8080, help="with --serve, default 8080 (0: a free one)"
    )
    add_force(p, "an existing page in --out")


def run(args: argparse.Namespace) -> int:
    import time

    from onnx_deploy.targets.web import static_server
    from onnx_deploy.targets.web import write_web_app

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    app = write_web_app(args.model, args.out, title=args.title, labels=labels, force=args.force)
    emit(args, app)
    if args.serve:
        import signal

        def _stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        # SIGINT and SIGTERM stop it also when started in the background, where a shell
        # without job control starts it with SIGINT ignored
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _stop)
        with static_server(args.out, args.port) as url:
            print(f"serving   {url} (Ctrl-C stops it)", flush=True)
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                print("stopped")
    return EXIT_OK
