"""Where the time goes and how fast it could be: FLOPs, the profiler, the machine's peak,
session settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper
from onnx import numpy_helper

from onnx_deploy.cli import main
from onnx_deploy.infer import peak as peak_module
from onnx_deploy.infer.bench import benchmark
from onnx_deploy.infer.bench import with_flops
from onnx_deploy.infer.flops import model_flops
from onnx_deploy.infer.flops import node_flops
from onnx_deploy.infer.peak import MachinePeak
from onnx_deploy.infer.peak import gemm_throughput
from onnx_deploy.infer.peak import machine_peak
from onnx_deploy.infer.peak import numpy_sgemm_throughput
from onnx_deploy.infer.profile import parse_trace
from onnx_deploy.infer.profile import profile_model
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
from onnx_deploy.infer.sessions import SessionSettings
from onnx_deploy.infer.tuning import study_settings

# the tiny CNN of conftest: Conv 3->8 (3x3, 16x16 output) and Linear 8->5, per sample
TINY_FLOPS = 2 * 8 * 16 * 16 * 3 * 9 + 2 * 5 * 8


def test_node_flops_count_multiply_adds_twice() -> None:
    assert node_flops("Conv", [(1, 3, 8, 8), (4, 3, 3, 3)], (1, 4, 8, 8)) == 2 * 4 * 64 * 27
    # a grouped (depthwise) conv: the weight's C_in / group is 1
    assert node_flops("Conv", [(1, 8, 8, 8), (8, 1, 3, 3)], (1, 8, 8, 8)) == 2 * 8 * 64 * 9
    assert node_flops("MatMul", [(2, 16, 32), (32, 64)], (2, 16, 64)) == 2 * 2 * 16 * 64 * 32
    assert node_flops("Gemm", [(32, 4), (32, 10)], (4, 10), {"transA": 1}) == 2 * 4 * 10 * 32
    assert node_flops("QLinearConv", [(1, 3, 8, 8), (), (), (4, 3, 3, 3)], (1, 4, 8, 8)) == (
        2 * 4 * 64 * 27
    )
    assert node_flops("ConvTranspose", [(1, 4, 8, 8), (4, 2, 2, 2)], (1, 2, 16, 16)) == (
        2 * 4 * 64 * 2 * 4
    )
    assert node_flops("Relu", [(1, 4)], (1, 4)) is None
    assert node_flops("Conv", [(1, 3, 8, 8), None], (1, 4, 8, 8)) is None


def test_model_flops_at_two_batch_sizes(tiny_onnx: Path) -> None:
    one = model_flops(tiny_onnx, {"x": (1, 3, 16, 16)})
    eight = model_flops(tiny_onnx, {"x": (8, 3, 16, 16)})
    assert one.total == TINY_FLOPS and eight.total == 8 * TINY_FLOPS
    assert one.unknown == 0 and not one.integer


def _events(run_ts: list[int], node_us: float) -> list[dict]:
    events = []
    for ts in run_ts:
        events.append({"cat": "Session", "name": "model_run", "ts": ts, "dur": 100})
        events.append({
            "cat": "Node", "name": "conv_kernel_time", "ts": ts + 10, "dur": node_us,
            "args": {"op_name": "Conv", "input_type_shape": [{"float": [1, 3, 8, 8]},
                     {"float": [4, 3, 3, 3]}], "output_type_shape": [{"float": [1, 4, 8, 8]}]},
        })  # fmt: skip
    return events


def test_parse_trace_leaves_out_the_warm_up_calls() -> None:
    events = _events([0, 1000, 2000], 50.0)
    events[1]["dur"] = 999  # the warm-up call's node: must not count
    runs, nodes = parse_trace(events, skip_runs=1)
    assert runs == [0.1, 0.1]
    (conv,) = nodes
    assert conv.mean_ms == pytest.approx(0.05) and conv.flops == 2 * 4 * 64 * 27
    with pytest.raises(ValueError, match="no model_run"):
        parse_trace(events, skip_runs=3)


def test_a_profile_adds_up_to_the_latency(tiny_onnx: Path) -> None:
    result = profile_model(tiny_onnx, batch_size=8, runs=30, warmup=5, peak=False)
    assert result.model_flops == 8 * TINY_FLOPS
    # NCHWc pads the conv's 8 output channels to a block of 8 (AVX2) or 16 (AVX-512)
    assert 8 * TINY_FLOPS <= result.total_flops <= 8 * (2 * TINY_FLOPS)
    # the nodes fit inside the profiled call; what is left is the executor's
    assert 0 < result.node_ms <= result.run_ms
    assert result.unaccounted_ms == pytest.approx(result.run_ms - result.node_ms)
    assert {r.op_type for r in result.by_op_type} >= {"Gemm"}
    assert sum(r.share for r in result.by_op_type) == pytest.approx(1.0)
    assert "profiler overhead" in result.summary()
    assert not list(tiny_onnx.parent.glob("*.json"))  # the trace file is gone


def _fake_probe(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    def gemm(n, integer=False, threads=None, seconds=0.5):
        calls.append("gemm")
        return 1000.0 if integer else 100.0 + n / 1024

    monkeypatch.setattr(peak_module, "gemm_throughput", gemm)
    monkeypatch.setattr(peak_module, "conv_throughput", lambda c, hw, threads=None: 50.0)
    monkeypatch.setattr(peak_module, "memory_bandwidth", lambda threads=None: 20.0)


def test_the_peak_is_cached_per_machine_and_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls: list[str] = []
    _fake_probe(monkeypatch, calls)
    first = machine_peak()
    assert (first.fp32_gflops, first.int8_gops, first.memory_gbps) == (101.0, 1000.0, 20.0)
    assert not first.cached and len(list((tmp_path / "onnx-deploy").glob("peak-*.json"))) == 1
    n = len(calls)
    again = machine_peak()
    assert again.cached and again.fp32_gflops == first.fp32_gflops and len(calls) == n
    assert not machine_peak(threads=1).cached  # another thread count: measured
    assert not machine_peak(refresh=True).cached
    assert first.percent(50.5) == pytest.approx(50.0)
    assert first.percent(250.0, integer=True) == pytest.approx(25.0)


def test_the_probe_agrees_with_numpy_blas() -> None:
    # the probe's check: MLAS's SGEMM and numpy's BLAS on one thread each, same size. Under
    # `make test` each worker sets OMP_NUM_THREADS=1, which OpenBLAS obeys and ONNX Runtime
    # does not: two threads against one gave 3.75x on an AMD EPYC Zen 5 (2026-12-08)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    ours = gemm_throughput(512, threads=1, seconds=0.2)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        blas = numpy_sgemm_throughput(512, seconds=0.2)
    assert 1 / 3 < ours / blas < 3, (ours, blas)


def test_bench_reports_gflops_and_percent_of_peak(tiny_onnx: Path) -> None:
    result = benchmark(OnnxRuntimeRunner(tiny_onnx, "cpu"), 4, iters=5, warmup=1)[0]
    peak = MachinePeak(100.0, 1000.0, 20.0, None, "cpu", "x86", "1", "now")
    counted = with_flops(result, model_flops(tiny_onnx, {"x": (4, 3, 16, 16)}), peak)
    assert counted.flops == 4 * TINY_FLOPS and counted.peak == 100.0
    assert counted.gflops == pytest.approx(4 * TINY_FLOPS / counted.median_ms / 1e6)
    assert counted.percent_of_peak == pytest.approx(counted.gflops)  # a peak of 100
    assert "% of this machine's FP32 peak" in counted.summary()
    low = MachinePeak(counted.gflops / 1.5, 1000.0, 20.0, None, "cpu", "x86", "1", "now")
    over = with_flops(result, model_flops(tiny_onnx, {"x": (4, 3, 16, 16)}), low)
    assert over.percent_of_peak == pytest.approx(150.0)  # the number stays in the result
    assert "above this machine's measured FP32 peak" in over.summary()
    compute = next(x for x in over.summary().splitlines() if "compute" in x)
    assert "%" not in compute, compute
    bf16 = with_flops(
        result.__class__(**{**result.__dict__, "environment": {"inference_precision": "bf16"}}),
        model_flops(tiny_onnx, {"x": (4, 3, 16, 16)}),
        peak,
    )
    assert bf16.gflops is not None and bf16.percent_of_peak is None  # no bf16 peak probed


def test_session_settings_reach_the_options() -> None:
    so = SessionSettings(threads=1, spinning=False, execution_mode="parallel",
                         memory_arena=False, memory_pattern=False).options()  # fmt: skip
    assert so.intra_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert not so.enable_cpu_mem_arena and not so.enable_mem_pattern
    assert "PARALLEL" in str(so.execution_mode)
    with pytest.raises(ValueError, match="execution_mode"):
        SessionSettings(execution_mode="fast")  # refused when made, not when used
    assert SessionSettings().describe() == "onnxruntime defaults"


def test_sessions_taking_turns_stop_spinning_between_calls() -> None:
    from onnx_deploy.workflows.optimize import OptimizeConfig

    turns = SessionSettings.taking_turns(None, None)
    so = turns.options()
    assert so.get_session_config_entry("session.force_spinning_stop") == "1"
    assert SessionSettings.taking_turns(2, False).stop_spinning is None  # nothing spins anyway
    assert OptimizeConfig().settings() == turns, "the card's candidates take turns"


def test_a_settings_study_is_relative_to_the_first(tiny_onnx: Path) -> None:
    grid = {"defaults": SessionSettings(), "1 thread": SessionSettings(threads=1)}
    study = study_settings(tiny_onnx, grid, batch_sizes=(1, 4), warmup=1, iters=3)
    assert [(r.label, r.batch_size) for r in study.rows] == [
        ("defaults", 1), ("1 thread", 1), ("defaults", 4), ("1 thread", 4)
    ]  # fmt: skip
    assert study.ratio("defaults", 4) == 1.0
    assert study.ratio("1 thread", 1) > 0
    with pytest.raises(KeyError):
        study.ratio("2 threads")


def test_cli_profile_prints_the_table_and_refuses_an_existing_plot(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "profile.png"
    assert main(["profile", str(tiny_onnx), "--runs", "3", "--no-peak", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "op type" in out and "GFLOP/s" in out and plot.stat().st_size > 0
    assert main(["profile", str(tiny_onnx), "--runs", "3", "--no-peak", "--plot", str(plot)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["profile", str(tiny_onnx), "--runs", "2", "--no-peak", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["useful_flops"] == TINY_FLOPS and payload["by_op_type"]


def test_cli_profile_of_a_file_that_is_not_a_model(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["profile", str(bad), "--no-peak"]) == 1
    assert "error" in capsys.readouterr().err


def _integer_model(tmp_path: Path) -> Path:
    w = numpy_helper.from_array(np.ones((4, 8), np.int8), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["batch", 8])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    path = tmp_path / "int.onnx"
    onnx.save(model, path)
    return path


def test_a_quantized_graph_counts_as_integer(tmp_path: Path) -> None:
    counted = model_flops(_integer_model(tmp_path), {"x": (3, 4)})
    assert counted.integer and counted.total == 2 * 3 * 8 * 4


def test_doctor_prints_the_peak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from onnx_deploy.workflows.doctor import run_doctor

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _fake_probe(monkeypatch, [])
    names = {c.name: c for c in run_doctor(probe_torch=False).checks}
    assert "FP32 101 GFLOP/s, INT8 1000 GOP/s, memory 20 GB/s" in names["peak"].detail
    assert "peak" not in {c.name for c in run_doctor(probe_torch=False, peak=False).checks}


def test_files_timed_together_keep_their_own_flops(tiny_onnx: Path, tmp_path: Path) -> None:
    from onnx_deploy.workflows.pipeline import benchmark_targets

    other = _integer_model(tmp_path)
    results = benchmark_targets(
        [str(tiny_onnx), str(other)], tmp_path, batch_sizes=(2,), warmup=1, iters=3,
        rounds=2, device="cpu", peak=False,
    )  # fmt: skip
    by_name = {r.name: r for r in results}
    assert by_name[tiny_onnx.name].flops == 2 * TINY_FLOPS
    assert not by_name[tiny_onnx.name].integer
    assert by_name[other.name].flops == 2 * 2 * 8 * 4 and by_name[other.name].integer
