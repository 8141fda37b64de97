"""Runners: one interface over ONNX Runtime and PyTorch, and the comparison and benchmark
that take any of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_deploy.convert.runners import pytorch as pytorch_runner
from onnx_deploy.convert.runners.pytorch import TorchRunner
from onnx_deploy.convert.verify import benchmark_torch
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import ValidationError
from onnx_deploy.core.timing import paired_speedup
from onnx_deploy.infer.bench import benchmark
from onnx_deploy.infer.bench import relative_table
from onnx_deploy.infer.compare import compare
from onnx_deploy.infer.runners.base import Runner
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner


def test_onnxruntime_runner_specs_and_infer(tiny_onnx: Path, tiny_module) -> None:
    runner = OnnxRuntimeRunner(tiny_onnx, "cpu")
    assert isinstance(runner, Runner) and runner.backend == "onnxruntime" and runner.device == "cpu"
    (spec,) = runner.inputs
    assert (
        spec.dtype == "float32" and spec.shape[1:] == (3, 16, 16) and isinstance(spec.shape[0], str)
    )
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    out = runner.infer(x)
    assert list(out) == runner.output_names and out[runner.output_names[0]].shape == (3, 5)
    np.testing.assert_allclose(
        out[runner.output_names[0]], tiny_module(torch.from_numpy(x)).detach().numpy(), atol=1e-5
    )
    with pytest.raises(InputMismatchError, match="dtype float64"):
        runner.infer(x.astype(np.float64))
    assert "float32[" in runner.describe() and runner.environment()["providers"] == [
        "CPUExecutionProvider"
    ]


def test_iobinding_is_bound_once_per_shape(tiny_onnx: Path) -> None:
    plain = OnnxRuntimeRunner(tiny_onnx, "cpu")
    bound = OnnxRuntimeRunner(tiny_onnx, "cpu", io_binding=True)  # the CUDA path, on the CPU
    rng = np.random.default_rng(1)
    for batch in (2, 2, 2, 5, 5):
        x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
        name = plain.output_names[0]
        np.testing.assert_allclose(bound.infer(x)[name], plain.infer(x)[name], atol=1e-6)
    assert bound.bound_shapes == 2, "one binding per input shape, reused with new values"
    before = {key: b.binding for key, b in bound._bindings.items()}
    call = bound.timed_call(rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    call()
    bound.synchronize()
    after = {key: b.binding for key, b in bound._bindings.items()}
    assert set(after) == set(before) and all(after[k] is before[k] for k in before)


def test_context_manager_opens_and_releases(tiny_onnx: Path) -> None:
    runner = OnnxRuntimeRunner(tiny_onnx, "cpu")
    runner.close()
    assert not runner.active and runner.session is None
    with runner:
        assert runner.active and runner.session is not None
        with runner:  # nested: the inner block does not release what the outer opened
            pass
        assert runner.active
    assert not runner.active
    runner.infer(runner.example_inputs(2))  # used again: opens again
    assert runner.active


def test_a_runner_opened_to_read_its_inputs_is_not_in_use(tiny_onnx: Path) -> None:
    """A new ONNX Runtime runner holds its session (it read the inputs from it) but is not
    in use until it runs or is entered: ``release()`` frees it (it counted as in use from
    construction, so release never did, and every comparison of two paths held both)."""
    fresh = OnnxRuntimeRunner(tiny_onnx, "cpu")
    assert fresh.session is not None
    fresh.release()
    assert fresh.session is None and not fresh.active and fresh.inputs  # its specs stay
    fresh.infer(fresh.example_inputs(1))  # used again: opens again, in use until closed
    fresh.release()
    assert fresh.active and fresh.session is not None
    entered = OnnxRuntimeRunner(tiny_onnx, "cpu")
    with entered:
        entered.release()  # inside a block: in use
        assert entered.session is not None
    fresh.close()
    assert fresh.session is None and not fresh.active


def test_a_large_file_is_read_from_its_graph_and_opens_when_it_runs(
    tiny_onnx: Path, monkeypatch
) -> None:
    """``open_now=False`` (what compare uses): a file of LARGE_MODEL_BYTES or more on the
    CPU gets its inputs, outputs and contract from its graph, with no session until it runs
    (a 2.2 GB file loaded twice per side before); the same specs and answers as a session's.
    A small file still opens, as ONNX Runtime's own reading of its inputs is the reference."""
    from onnx_deploy.infer.runners import onnxrt

    opened = OnnxRuntimeRunner(tiny_onnx, "cpu")
    small = OnnxRuntimeRunner(tiny_onnx, "cpu", open_now=False)
    assert small.session is not None, "below the size where a load costs anything: opened"
    monkeypatch.setattr(onnxrt, "LARGE_MODEL_BYTES", 0)
    deferred = OnnxRuntimeRunner(tiny_onnx, "cpu", open_now=False)
    assert deferred.session is None and not deferred.active
    assert deferred.inputs == opened.inputs and deferred.outputs == opened.outputs
    assert deferred.contract == opened.contract and deferred.name == opened.name
    x = deferred.example_inputs(2)
    name = opened.output_names[0]
    np.testing.assert_array_equal(deferred.infer(x)[name], opened.infer(x)[name])
    assert deferred.session is not None and deferred.providers == ["CPUExecutionProvider"]
    bound = OnnxRuntimeRunner(tiny_onnx, "cpu", open_now=False, io_binding=True)
    assert bound.session is None and bound.io_binding, "io_binding as asked, deferred too"
    np.testing.assert_array_equal(bound.infer(x)[name], opened.infer(x)[name])
    assert bound.bound_shapes == 1
    later = OnnxRuntimeRunner(tiny_onnx, "cpu", open_now=False)
    assert later.environment()["providers"] == ["CPUExecutionProvider"]
    named = OnnxRuntimeRunner(tiny_onnx, "cpu", open_now=False, providers=["CPUExecutionProvider"])
    assert named.session is not None, "providers named: opened, to report what really runs"


def test_torch_runner_leaves_the_module_as_it_was(tiny_module, monkeypatch) -> None:
    from onnx_deploy.core.specs import TensorSpec

    spec = TensorSpec("x", "float32", ("batch", 3, 16, 16))
    tiny_module.train()
    runner = TorchRunner(tiny_module, [spec], ["logits"])
    with runner:
        assert not tiny_module.training, "runs in eval mode"
        out = runner.infer(np.zeros((2, 3, 16, 16), np.float32))
    assert tiny_module.training, "training flag restored"
    assert list(out) == ["logits"] and runner.outputs[0].shape == (2, 5)
    tiny_module.eval()
    # a module on another device is copied, never moved
    monkeypatch.setattr(pytorch_runner, "_module_device", lambda m: "cuda")
    copy_runner = TorchRunner(tiny_module, [spec], device="cpu")
    with copy_runner:
        assert copy_runner._running is not tiny_module
    benchmark_torch(tiny_module, (3, 16, 16), 2, warmup=1, iters=2)
    assert next(tiny_module.parameters()).device.type == "cpu"


def test_compare_any_pair_of_runners(tiny_module, tiny_onnx: Path, tmp_path: Path) -> None:
    ort_runner = OnnxRuntimeRunner(tiny_onnx, "cpu")
    torch_runner = TorchRunner(tiny_module, ort_runner.inputs)  # outputs named output_0
    report = compare(torch_runner, ort_runner, batch_sizes=(1, 3))
    assert report.ok and report.batch_sizes == (1, 3) and set(report.max_abs_by_batch) == {1, 3}
    assert report.outputs[0].name == ort_runner.output_names[0], "paired by position, named"
    same = compare(
        ort_runner, OnnxRuntimeRunner(tiny_onnx, "cpu"), np.zeros((4, 3, 16, 16), np.float32)
    )
    assert same.ok and same.max_abs == 0.0 and same.num_samples == 4
    from onnx_deploy.core.specs import TensorSpec

    other = TorchRunner(tiny_module, [TensorSpec("images", "float32", ("b", 3, 16, 16))])
    with pytest.raises(ValidationError, match="different inputs"):
        compare(other, ort_runner)


def test_benchmark_labels_each_runner(tiny_module, tiny_onnx: Path) -> None:
    ort_runner = OnnxRuntimeRunner(tiny_onnx, "cpu", name="m")
    torch_runner = TorchRunner(tiny_module, ort_runner.inputs, name="m")
    for rounds in (1, 3):
        results = benchmark([torch_runner, ort_runner], 4, warmup=1, iters=3, rounds=rounds)
        assert [(r.backend, r.device, r.batch_size) for r in results] == [
            ("torch", "cpu", 4),
            ("onnxruntime", "cpu", 4),
        ]
        assert all(r.count == 3 for r in results)
    assert "providers" in results[1].environment and "torch_threads" in results[0].environment
    table = relative_table(results).splitlines()
    # two runners called "m" on two backends keep the name (results pair by it: PyTorch vs
    # ONNX Runtime of one model); the table tells them apart by backend
    assert [r.name for r in results] == ["m", "m"]
    first, second = "m [torch/cpu]", "m [onnxruntime/cpu]"
    assert table[0].startswith(f"Relative to {first} (")
    # three interleaved rounds: the paired speed-up with its interval, not a bare ratio
    paired = paired_speedup(results[0].rounds_ms, results[1].rounds_ms)
    assert paired.rounds == 3 and paired.low <= paired.estimate <= paired.high
    assert table[1].endswith(f"{second} vs {first}: {paired.text()}"), table
    one_round = benchmark([torch_runner, ort_runner], 4, warmup=1, iters=3)
    ratio = one_round[0].median_ms / one_round[1].median_ms
    assert relative_table(one_round).splitlines()[1].split()[-1] == f"{ratio:.2f}x"
    assert relative_table(results[:1]) == ""
