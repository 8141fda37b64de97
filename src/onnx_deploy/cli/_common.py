"""What every command shares: exit codes, argument types, and printing a result."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _int_list(text: str, minimum: int, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < minimum for v in values):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return values


def ints(text: str) -> tuple[int, ...]:
    """``"1,8"`` or ``"3x224x224"`` -> a tuple of positive ints."""
    return _int_list(text, 1, "positive integers")


def token_ids(text: str) -> tuple[int, ...]:
    """``"5,17,99"`` -> token ids (0 is one)."""
    return _int_list(text, 0, "token ids such as 5,17,99")


def batch_range(text: str) -> tuple[int, int]:
    """``"1:64"`` (or ``"64"`` for 1:64) -> (min, max)."""
    lo, sep, hi = text.partition(":")
    try:
        lo_i, hi_i = (int(lo), int(hi)) if sep else (1, int(lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX such as 1:64, got {text!r}") from None
    if not 1 <= lo_i <= hi_i:
        raise argparse.ArgumentTypeError(f"need 1 <= MIN <= MAX, got {text!r}")
    return lo_i, hi_i


SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def size_bytes(text: str) -> int:
    """``"25MB"``, ``"800KB"``, ``"1.5GB"`` or a number of bytes -> bytes (SI units, as
    ``human_size`` prints them)."""
    value = text.strip().upper().replace(" ", "")
    unit = next((u for u in ("KB", "MB", "GB", "B") if value.endswith(u)), "")
    try:
        number = float(value[: len(value) - len(unit)] if unit else value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 25MB or 800KB, got {text!r}"
        ) from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"a size must be positive, got {text!r}")
    return int(number * SIZE_UNITS[unit])


def runtimes(text: str) -> tuple[str, ...]:
    """``"onnxruntime,openvino"`` -> the runtimes ``onnx_deploy.runtimes`` knows."""
    from onnx_deploy.runtimes import parse_runtimes

    try:
        return parse_runtimes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_runtimes(parser: Any, what: str) -> None:
    """--runtimes: the runtimes (``onnx_deploy.runtimes``, by name) to run ``what`` on."""
    parser.add_argument(
        "--runtimes", type=runtimes, default=("onnxruntime",),
        help=f"runtimes to run {what} on, comma-separated: onnxruntime (default), openvino "
        "(its CPU plugin in FP32), openvino-bf16 (an FP32 file computed in bf16); OpenVINO: "
        "pip install 'onnx-deploy[openvino]'",
    )  # fmt: skip


def signature_part(parser_name: str) -> Any:
    """An argparse type that parses with ``onnx_deploy.core.signature.<parser_name>`` (imported
    only when an argument is parsed: ``--help`` stays free of numpy)."""

    def parse(text: str) -> Any:
        from onnx_deploy.core import signature

        try:
            return getattr(signature, parser_name)(text)
        except signature.SignatureError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = parser_name  # argparse names the type in its messages
    return parse


def add_repeatable(
    parser: argparse.ArgumentParser, flag: str, dest: str, parser_name: str, metavar: str, help: str
) -> None:
    """A repeatable flag parsed by ``onnx_deploy.core.signature.<parser_name>``."""
    parser.add_argument(
        flag, dest=dest, action="append", type=signature_part(parser_name), default=[],
        metavar=metavar, help=help,
    )  # fmt: skip


def add_signature(parser: argparse.ArgumentParser, data_flag: str | None = None) -> None:
    """--input and --dim (any model signature) and, with ``data_flag``, a data file."""
    add_repeatable(
        parser, "--input", "inputs", "parse_input", "NAME:DTYPE:DIMS[:LOW..HIGH]",
        "one model input, repeatable: a forward() parameter, its dtype (float32, "
        "float16, int64, int32, bool, ...) and dims (ints fixed, names dynamic), e.g. "
        "ids:int64:batch,seq:0..30522 (token ids below 30522) or image:float32:batch,3,224,224",
    )  # fmt: skip
    add_repeatable(
        parser, "--dim", "dims", "parse_dim", "NAME=MIN:MAX",
        "range of a dynamic dim, repeatable: seq=1:512, or MIN:OPT:MAX (OPT: the size "
        "to export with; default the smallest size >= 2)",
    )  # fmt: skip
    if data_flag == "example":
        parser.add_argument(
            "--example",
            help="example inputs to export with: .npz (arrays by input name) or .pt (a dict "
            "of tensors, loaded with weights_only=True); names and dtypes come from it",
        )
    elif data_flag == "inputs":
        parser.add_argument(
            "--inputs",
            dest="data",
            metavar="FILE",
            help="real samples for every input instead of random ones: .npz (arrays by input "
            "name), .npy (one input) or .pt (tensors, weights_only=True); axis 0 is the sample",
        )


def model_source(args: argparse.Namespace, target: str | None = None) -> Any:
    """The ``ModelSource`` the common flags describe (``--weights``, ``--input-shape``,
    ``--input``, ``--dim``, ``--example``/``--inputs``, ``--pretrained``) for ``target``
    (default: the command's ``model``)."""
    from onnx_deploy.sources import ModelSource

    data = getattr(args, "example", None) or getattr(args, "data", None)
    return ModelSource(
        target if target is not None else args.model,
        weights=getattr(args, "weights", None),
        input_shape=getattr(args, "input_shape", None),
        inputs=tuple(getattr(args, "inputs", ())),
        dims=tuple(getattr(args, "dims", ())),
        data=None if data is None else str(data),
        pretrained=bool(getattr(args, "pretrained", False)),
    )


def joined(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def auto(value: str) -> str | None:
    """``"auto"`` -> None (the library decides), anything else as it is."""
    return None if value == "auto" else value


def emit(args: argparse.Namespace, result: Any, text: str | None = None) -> None:
    """Print ``result.summary()`` (or ``text``), or its ``to_dict()`` as JSON with --json."""
    if getattr(args, "json", False):
        payload = result.to_dict() if hasattr(result, "to_dict") else result
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text if text is not None else result.summary())


def fail(message: str) -> int:
    print(f"onnx-deploy: error: {message}", file=sys.stderr)
    return EXIT_FAIL


def add_force(parser: argparse.ArgumentParser, what: str = "an existing output") -> None:
    parser.add_argument("--force", action="store_true", help=f"overwrite {what}")


def add_timing(parser: argparse.ArgumentParser, warmup: int, iters: int) -> None:
    """--batch-sizes, --warmup and --iters, with the library's defaults."""
    from onnx_deploy.core.defaults import BENCH_BATCH_SIZES

    parser.add_argument(
        "--batch-sizes",
        type=ints,
        default=BENCH_BATCH_SIZES,
        help=f"default {joined(BENCH_BATCH_SIZES)}",
    )
    parser.add_argument("--warmup", type=int, default=warmup, help=f"default {warmup}")
    parser.add_argument("--iters", type=int, default=iters, help=f"timed runs, default {iters}")


def add_session_settings(parser: argparse.ArgumentParser) -> None:
    """--threads and --spinning: the session settings a benchmark or a card runs with."""
    parser.add_argument(
        "--threads", type=int, help="intra-op threads of each runtime (default: one per core)"
    )
    parser.add_argument(
        "--spinning", action=argparse.BooleanOptionalAction, default=None,
        help="ONNX Runtime's idle threads busy-wait for the next call (its default: on); "
        "--no-spinning frees the cores between calls, which a shared machine wants",
    )  # fmt: skip


def step(args: argparse.Namespace) -> Any:
    """A ``log`` for library functions: prints each step's line unless --json."""

    def log(line: str) -> None:
        if not getattr(args, "json", False):
            print(line, flush=True)

    return log
