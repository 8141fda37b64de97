from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.convert.verify import benchmark_torch
from onnx_deploy.infer.bench import benchmark_onnx
from onnx_deploy.infer.bench import benchmark_onnx_interleaved
from onnx_deploy.infer.bench import collect_environment
from onnx_deploy.infer.bench import comparison_rows
from onnx_deploy.infer.bench import comparison_table
from onnx_deploy.infer.bench import cpu_info
from onnx_deploy.infer.bench import summarize
from onnx_deploy.infer.bench import sweep
from onnx_deploy.infer.bench import time_callable


def test_time_callable_counts_calls() -> None:
    calls = []
    first, times = time_callable(lambda: calls.append(1), warmup=3, iters=7)
    assert len(calls) == 10 and len(times) == 7 and first >= 0
    with pytest.raises(ValueError):
        time_callable(lambda: None, iters=0)


def test_summarize_statistics() -> None:
    times = list(range(1, 101))  # 1..100 ms
    r = summarize("m", "onnxruntime", "cpu", 4, 5, 123.0, times, environment={})
    assert r.median_ms == pytest.approx(50.5)
    assert r.p90_ms == pytest.approx(np.percentile(times, 90))
    assert r.p99_ms == pytest.approx(np.percentile(times, 99))
    assert r.min_ms == 1 and r.count == 100 and r.first_ms == 123.0
    assert r.throughput == pytest.approx(4 * 1000 / 50.5)
    assert "p99" in r.summary() and "first 123.0 ms" in r.summary()
    json.dumps(r.to_dict())


def test_comparison_ratio() -> None:
    t = summarize("resnet", "torch", "cpu", 1, 1, 0, [40.0], environment={})
    o = summarize("resnet", "onnxruntime", "cpu", 1, 1, 0, [20.0], environment={})
    (row,) = comparison_rows([t, o])
    assert row["speedup"] == pytest.approx(2.0)
    assert "2.00x" in comparison_table([t, o])
    lone = summarize("other", "onnxruntime", "cpu", 1, 1, 0, [5.0], environment={})
    assert comparison_rows([lone])[0]["speedup"] is None


def test_environment() -> None:
    cpu = cpu_info()
    assert {"model", "arch", "logical_cpus", "flags", "int8_features"} <= set(cpu)
    env = collect_environment()
    assert env["versions"].get("onnxruntime-gpu") or env["versions"].get("onnxruntime")
    json.dumps(env)


def test_environment_does_not_import_torch() -> None:
    code = "import sys; from onnx_deploy.infer.bench import collect_environment as c; c(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_benchmarks_run(tiny_module, tiny_onnx: Path) -> None:
    ort_results = sweep(
        lambda b: benchmark_onnx(tiny_onnx, b, warmup=2, iters=5, device="cpu"), [1, 4]
    )
    assert [r.batch_size for r in ort_results] == [1, 4]
    assert ort_results[0].environment["providers"] == ["CPUExecutionProvider"]
    t = benchmark_torch(tiny_module, (3, 16, 16), batch_size=4, warmup=2, iters=5, name="tiny.onnx")
    assert t.backend == "torch" and t.device == "cpu" and "torch_threads" in t.environment
    assert all(r.median_ms > 0 for r in [*ort_results, t])
    assert any(r["speedup"] for r in comparison_rows([t, *ort_results]))


def test_interleaved_benchmark_alternates(tiny_onnx: Path, monkeypatch) -> None:
    from onnx_deploy.infer import bench

    order = []
    real = bench.time_callable

    def spy(fn, warmup=10, iters=50, sync=None):
        order.append(fn)  # each runner's timed call is its own function
        return real(fn, warmup, iters, sync)

    monkeypatch.setattr(bench, "time_callable", spy)
    a, b = benchmark_onnx_interleaved(
        {"a": tiny_onnx, "b": tiny_onnx}, batch_size=2, warmup=1, iters=6, rounds=3
    )
    assert (a.name, b.name) == ("a", "b") and a.count == b.count == 6
    assert len(order) == 2 + 3 * 2, "one warm-up call each, then three alternating rounds"
    ids = [id(x) for x in order[2:]]
    first, second = id(order[0]), id(order[1])
    assert first != second
    # a b, then b a, then a b: every other round in reverse, so no runner always goes first
    assert ids == [first, second, second, first, first, second]
    # iters not a multiple of rounds: every requested timed call still happens
    a, b = benchmark_onnx_interleaved(
        {"a": tiny_onnx, "b": tiny_onnx}, batch_size=2, warmup=1, iters=7, rounds=3
    )
    assert a.count == b.count == 7


def test_each_turn_starts_with_untimed_calls(tiny_onnx: Path, monkeypatch) -> None:
    from onnx_deploy.infer import bench

    warmups = []
    real = bench.time_callable

    def spy(fn, warmup=10, iters=50, sync=None):
        warmups.append(warmup)
        return real(fn, warmup, iters, sync)

    monkeypatch.setattr(bench, "time_callable", spy)
    benchmark_onnx_interleaved({"a": tiny_onnx, "b": tiny_onnx}, 2, warmup=5, iters=6, rounds=3)
    # the first warm-up of each, then every turn: the other runner's threads still spin
    assert warmups == [5, 5] + [bench.ROUND_WARMUP] * 6
    warmups.clear()
    benchmark_onnx_interleaved({"a": tiny_onnx, "b": tiny_onnx}, 2, warmup=1, iters=6, rounds=3)
    assert warmups == [1, 1] + [1] * 6  # never more than the warm-up asked for


def test_a_busy_machine_is_flagged_and_a_quiet_one_is_not() -> None:
    from onnx_deploy.infer.bench import summarize

    quiet = summarize("m", "onnxruntime", "cpu", 1, 1, 1.0, [10.0, 10.2, 9.9, 10.1, 10.0, 10.3])
    assert quiet.contention == "" and "warning" not in quiet.summary()
    busy = summarize("m", "onnxruntime", "cpu", 1, 1, 1.0, [10, 10, 10, 10, 10, 30, 31, 10, 10, 10])
    assert "p90" in busy.contention and "busy" in busy.contention
    assert "\n  warning timings spread widely" in busy.summary()
    assert busy.to_dict()["contention"] == busy.contention
    few = summarize("m", "onnxruntime", "cpu", 1, 1, 1.0, [10, 40])
    assert few.contention == "", "too few runs to judge"
    # one stall in hundreds of sub-ms calls: a CV of several hundred percent over all of them,
    # but neither the median nor the tail moves; two stalls in a hundred calls are a tail
    calls = [0.15 + 0.01 * (i % 5) for i in range(300)]
    stall = summarize("m", "onnxruntime", "cpu", 1, 1, 1.0, [*calls[:-3], 30.0, 31.0, 29.0])
    assert stall.std_ms / stall.mean_ms > 4 and stall.contention == ""
    often = summarize("m", "onnxruntime", "cpu", 1, 1, 1.0, [*calls[:-30], *[30.0] * 30])
    assert "busy" in often.contention


def test_threads_are_recorded_and_ratios_name_both_models(tiny_onnx: Path) -> None:
    from onnx_deploy.infer.bench import benchmark
    from onnx_deploy.infer.bench import relative_table
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    one = OnnxRuntimeRunner(tiny_onnx, "cpu", threads=1, name="one")
    default = OnnxRuntimeRunner(tiny_onnx, "cpu", name="default")
    results = benchmark([one, default], batch_size=2, warmup=1, iters=3)
    assert results[0].environment["intra_op_threads"] == 1
    assert results[0].environment["intra_op_threads_source"] == "set"
    assert results[1].environment["intra_op_threads"] >= 1
    assert "default" in results[1].environment["intra_op_threads_source"]
    assert ", 1 threads)" in results[0].summary()
    assert "default vs one:" in relative_table(results)
