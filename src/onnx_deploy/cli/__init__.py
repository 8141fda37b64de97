"""``onnx-deploy``: one module per command, each owning its arguments and its handler.

A command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> exit code``; a new command is one new module listed in ``COMMANDS``. The
modules import only the standard library at the top, so ``onnx-deploy --help`` stays
fast; each handler imports what it needs, calls one library function, and prints.
Exit codes: 0 success, 1 failure (with a one-line reason on stderr), 2 bad command line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from onnx_deploy.cli._common import EXIT_FAIL
from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import EXIT_USAGE
from onnx_deploy.core.errors import first_line

COMMANDS = (
    "doctor",
    "inspect",
    "export",
    "generate",
    "slim",
    "validate",
    "quantize",
    "fuse",
    "bench",
    "profile",
    "pipeline",
    "edit",
    "optimize",
    "trt",
    "triton",
    "serve",
    "loadtest",
    "web",
    "targets",
    "skills",
)

__all__ = ["COMMANDS", "EXIT_FAIL", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="onnx-deploy",
        description="Take a PyTorch model to a validated ONNX deployment.",
        epilog="Start with `onnx-deploy doctor`. Model specs: torchvision:resnet18, path/to/file.py:factory or hf:DIR.",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"onnx_deploy.cli.{name}")
        sp = sub.add_parser(name, help=module.HELP, description=module.HELP)
        sp.set_defaults(func=module.run)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        module.add_arguments(sp)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from onnx_deploy import __version__

        print(__version__)
        return EXIT_OK
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from onnx_deploy.core.errors import OnnxDeployError

    try:
        return int(args.func(args))
    except OnnxDeployError as e:
        lines = str(e).splitlines()
        if len(lines) > 1:
            print("\n".join(lines[1:]), file=sys.stderr)
        print(f"onnx-deploy: error: {lines[0] if lines else type(e).__name__}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("onnx-deploy: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("ONNX_DEPLOY_DEBUG"):
            raise
        first = first_line(e)
        print(
            f"onnx-deploy: error: unexpected {type(e).__name__}: {first} "
            "(set ONNX_DEPLOY_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
