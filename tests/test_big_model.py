"""Past 2 GB: a graph whose weights (2.21 GB) cannot live in one protobuf, built cheaply
(its weights written to their ``.data`` file a block at a time, never held in memory), through
inspect, slim, fuse, FP16, dynamic INT8 and INT4 weights from the CLI, each in its own process with its peak memory
read off the operating system. The 600M decoder's figures for every command are in
notebooks/MEASUREMENTS.md; this keeps the external-data paths from regressing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper

from onnx_deploy.core.files import PROTOBUF_LIMIT

VOCAB, WIDTH, BRANCHES = 8192, 4096, 31  # a 128 MB table and 31 weights of 64 MB: 2.21 GB

# what a command may peak at, over the model's file size: the aim is 3x. One is
# over it, and its bound holds it where it is (notebooks/MEASUREMENTS.md) so that it does
# not grow: dynamic INT8 (3.07x here, 3.15x on the 600M decoder: onnxruntime's
# quantize_dynamic loads the whole float model and holds its INT8 weights beside it).
# FP16 converts the weights a chunk at a time on their way to the output's file (1.06x
# here; 5.8x when onnxruntime's converter held the loaded model and a copy of each tensor).
MAX_PEAK = {"inspect": 1.5, "slim": 3.0, "fuse": 3.0, "fp16": 3.0, "dynamic": 3.5, "int4": 3.0}

# runs one command and prints its peak resident memory in bytes as the last line (ru_maxrss
# is in KiB on Linux, in bytes on macOS)
PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "unit = 1 if sys.platform == 'darwin' else 1024\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * unit)\n"
    "sys.exit(code)\n"
)


def build_big_model(folder: Path) -> Path:
    """input_ids -> Gather(table) -> 31 MatMuls side by side -> Sum -> logits, laid out as a
    decoder's weights are (many tensors of tens of MB), every weight written to
    ``model.onnx.data`` a block at a time and never held in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    rng = np.random.default_rng(0)
    block = (rng.standard_normal((WIDTH, WIDTH)) * 0.02).astype(np.float32).tobytes()
    initializers, nodes, offset = [], [], 0
    with open(folder / "model.onnx.data", "wb") as f:
        for name, rows in [("embed.weight", VOCAB)] + [(f"w{i}", WIDTH) for i in range(BRANCHES)]:
            nbytes = rows * WIDTH * 4
            left = nbytes
            while left:
                f.write(block[: min(len(block), left)])
                left -= min(len(block), left)
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[rows, WIDTH])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", "model.onnx.data"), ("offset", str(offset)),
                               ("length", str(nbytes))):  # fmt: skip
                t.external_data.add(key=key, value=value)
            initializers.append(t)
            offset += nbytes
    nodes.append(helper.make_node("Gather", ["embed.weight", "input_ids"], ["hidden"]))
    for i in range(BRANCHES):
        nodes.append(helper.make_node("MatMul", ["hidden", f"w{i}"], [f"b{i}"]))
    nodes.append(helper.make_node("Sum", [f"b{i}" for i in range(BRANCHES)], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", WIDTH])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)
    onnx.save_model(model, str(path))  # the graph only: the weights are already on disk
    return path


# The test writes about 9 GB (the model, then each command's output). On this project's
# machines a disk write runs at about 90 MB/s (`dd` of 2 GB: 23.7 s; into /dev/shm: 1.4 s),
# so the files live in RAM when there is room for them beside the commands' peaks: the
# model and one output (4.4 GB) plus the highest peak (6.8 GB). Reading a file from tmpfs
# counts in a process's resident memory as reading it from the page cache does: the peaks
# are the same either way (dynamic INT8: 3.07x on disk and in RAM).
RAM_DISK = Path("/dev/shm")
RAM_NEEDED = 12 * 2**30


def _memory_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def work_folder() -> str | None:
    """A folder in RAM where there is room for the test's files beside its peaks, else None
    (the default temporary folder, on disk)."""
    try:
        room = shutil.disk_usage(RAM_DISK).free
    except OSError:
        return None
    if room > 5 * 2**30 and _memory_available() > RAM_NEEDED:
        return str(RAM_DISK)
    return None


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="onnx-deploy-big-", dir=work_folder()))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # 2.2 GB or more: never left behind


@pytest.fixture(scope="module")
def big(work: Path) -> Path:
    path = build_big_model(work / "src")
    assert _size(path) > PROTOBUF_LIMIT
    onnx.checker.check_model(str(path))  # by path: the checker reads past 2 GB from disk
    return path


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.iterdir() if p.name.startswith(path.name))


def run_peak(*argv: object) -> tuple[int, str, float]:
    """Exit code, output and peak memory in bytes of ``onnx-deploy ARGV`` in its own process."""
    cli = Path(sys.executable).parent / "onnx-deploy"
    got = subprocess.run(
        [sys.executable, "-c", PEAK, str(cli), *map(str, argv)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    *lines, peak = got.stdout.strip().splitlines()
    return got.returncode, "\n".join(lines) + got.stderr, float(peak)


# Two lanes of commands run side by side when there is memory for both: each command is
# mostly one thread (protobuf, numpy, onnxruntime's Python quantizer), so on 2 cores the
# lanes take about half the time of one after the other. Each command's peak is its own
# process's (ru_maxrss of its wrapper's child), so running beside another does not change it.
# Beyond the source model, lane A holds the highest peak (dynamic INT8, 3.07x: 6.8 GB) and
# its 0.75 GB output, lane B at most 4.5 GB (INT4's 1.86x and its output, or slim's 2.2 GB
# output): about 12 GB, checked once the source is written.
LANES_NEEDED = 14 * 2**30


def _lanes(*lanes) -> None:
    """Run each lane (a function that runs its commands and asserts on them) side by side
    when memory allows, else one after the other; a failed assert fails the test."""
    if _memory_available() < LANES_NEEDED:
        for lane in lanes:
            lane()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(lanes)) as pool:
        for future in [pool.submit(lane) for lane in lanes]:
            future.result()


def test_every_command_past_2gb_stays_under_3x_its_size(big: Path, work: Path) -> None:
    size = _size(big)
    tmp_path = work / "out"

    def inspect_and_dynamic_int8() -> None:
        code, out, peak = run_peak("inspect", big)
        assert code == 0, out
        assert peak < MAX_PEAK["inspect"] * size, f"inspect peaked at {peak / size:.2f}x"
        assert "input_ids" in out and "Gather" in out

        int8 = tmp_path / "int8" / "model.onnx"
        # per tensor: onnxruntime's per-channel weights loop in Python over 126,976 channels
        # here (27 s of 50); the same peak memory (6.63 GB both ways), which is what this checks
        code, out, peak = run_peak(
            "quantize", big, "--method", "dynamic", "--per-tensor", "-o", int8
        )
        assert code == 0, out
        assert peak < MAX_PEAK["dynamic"] * size, f"dynamic INT8 peaked at {peak / size:.2f}x"
        assert "PASS" in out
        assert _size(int8) < 0.35 * size  # the MatMul weights in INT8, the table in float
        shutil.rmtree(int8.parent)

    def slim_fuse_fp16_int4() -> None:
        slim = tmp_path / "slim" / "model.onnx"
        code, out, peak = run_peak("slim", big, "-o", slim)
        assert code == 0, out
        assert peak < MAX_PEAK["slim"] * size, f"slim peaked at {peak / size:.2f}x"
        assert _size(slim) > PROTOBUF_LIMIT
        onnx.checker.check_model(str(slim))
        shutil.rmtree(slim.parent)  # 2.2 GB each: each lane holds one output at a time

        fused = tmp_path / "fused" / "model.onnx"  # onnx_ir reads the weights lazily
        code, out, peak = run_peak("fuse", big, "-o", fused)
        assert code == 0, out
        assert peak < MAX_PEAK["fuse"] * size, f"fuse peaked at {peak / size:.2f}x"
        assert _size(fused) > PROTOBUF_LIMIT and "PASS" in out
        shutil.rmtree(fused.parent)

        half = tmp_path / "fp16" / "model.onnx"  # shapes inferred from the graph alone
        code, out, peak = run_peak("quantize", big, "--method", "fp16", "-o", half)
        assert code == 0, out
        assert peak < MAX_PEAK["fp16"] * size, f"FP16 peaked at {peak / size:.2f}x"
        assert "PASS" in out and 0.45 * size < _size(half) < 0.55 * size
        shutil.rmtree(half.parent)

        int4 = tmp_path / "int4" / "model.onnx"
        code, out, peak = run_peak("quantize", big, "--method", "int4", "-o", int4)
        assert code == 0, out
        assert peak < MAX_PEAK["int4"] * size, f"INT4 weights peaked at {peak / size:.2f}x"
        assert "PASS" in out and "MatMulNBits" in out
        assert _size(int4) < 0.2 * size

    _lanes(inspect_and_dynamic_int8, slim_fuse_fp16_int4)
