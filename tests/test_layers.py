"""The shared pieces every backend and command goes through: specs, feeds, device,
extras, saving ONNX, session options, and the CLI's defaults."""

from __future__ import annotations

import argparse
import inspect
import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper

from onnx_deploy.core import defaults
from onnx_deploy.core import feeds
from onnx_deploy.core import files as _files
from onnx_deploy.core import specs
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.extras import available
from onnx_deploy.core.extras import install_hint
from onnx_deploy.core.extras import require
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.providers import resolve_device

X = TensorSpec("x", "float32", ("batch", 3))
IDS = TensorSpec("ids", "int64", ("batch", "seq"))


# --- specs ------------------------------------------------------------------------------


def test_dtype_table_round_trips_every_vocabulary() -> None:
    import torch

    for row in specs.DTYPES:
        assert specs.from_onnx(row.onnx) == row.name
        assert specs.from_ort(row.ort) == row.name
        assert helper.tensor_dtype_to_np_dtype(row.onnx) is not None
        if row.numpy is not None and row.name != "string":
            assert specs.from_numpy(row.numpy) == row.name
        if row.torch is not None:
            assert specs.from_torch(getattr(torch, row.torch)) == row.name
    assert specs.from_onnx(TensorProto.BFLOAT16) == "bfloat16"
    assert specs.from_onnx(999) == "onnx_type_999"
    assert specs.from_numpy(np.array(["a"]).dtype) == "string"
    with pytest.raises(ValueError, match="unknown dtype 'float'"):
        specs.dtype("float")


def test_bfloat16_spec_has_no_numpy_dtype() -> None:
    spec = TensorSpec("h", "bfloat16", (1, 4))
    assert spec.numpy_dtype is None  # np.dtype("bfloat16") would raise
    assert spec.describe() == "h: bfloat16[1, 4]"
    with pytest.raises(InputMismatchError, match="bfloat16, which numpy cannot hold"):
        feeds.random_inputs([spec])


def test_spec_text_and_dynamic_axes() -> None:
    spec = TensorSpec("m", "bool", ("batch", None, 7))
    assert spec.dynamic_axes == (0, 1) and spec.shape_text == "[batch, ?, 7]"
    assert specs.describe_all([X, IDS]) == "x: float32[batch, 3], ids: int64[batch, seq]"


# --- feeds ------------------------------------------------------------------------------


def test_as_feeds_accepts_arrays_tuples_dicts_and_tensors() -> None:
    import torch

    a, i = np.ones((2, 3), np.float32), np.zeros((2, 5), np.int64)
    assert feeds.as_feeds(a, [X])["x"] is a
    assert set(feeds.as_feeds((a, i), [X, IDS])) == {"x", "ids"}
    assert feeds.as_feeds({"ids": i, "x": a}, [X, IDS])["ids"] is i
    t = feeds.as_feeds(torch.ones(2, 3), [X])["x"]
    assert isinstance(t, np.ndarray) and t.dtype == np.float32
    assert feeds.to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
    with pytest.raises(InputMismatchError, match=r"takes 2 inputs .*x: float32"):
        feeds.as_feeds(a, [X, IDS])
    with pytest.raises(InputMismatchError, match=r"takes 2 input.*got 3"):
        feeds.as_feeds((a, i, i), [X, IDS])
    with pytest.raises(InputMismatchError, match=r"np.asarray"):
        feeds.as_feeds([[1.0, 2.0, 3.0]], [X])


def test_as_batches_splits_and_loads_files(tmp_path: Path) -> None:
    a = np.arange(15, dtype=np.float32).reshape(5, 3)
    batches = feeds.as_batches(a, [X], batch_size=2)
    assert [b["x"].shape[0] for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(feeds.concatenate(batches)["x"], a)
    assert len(feeds.as_batches([a, a], [X])) == 2
    i = np.zeros((5, 4), np.int64)
    assert [b["ids"].shape for b in feeds.as_batches((a, i), [X, IDS], 4)] == [(4, 4), (1, 4)]
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "two.npz", x=a, ids=i)
    assert feeds.as_batches(tmp_path / "a.npy", [X])[0]["x"].shape == (5, 3)
    assert set(feeds.load_data(tmp_path / "two.npz")) == {"x", "ids"}
    with pytest.raises(InputMismatchError, match="no such data file"):
        feeds.load_data(tmp_path / "missing.npy")
    with pytest.raises(InputMismatchError, match=r"must be a .npy"):
        (tmp_path / "a.csv").write_text("1,2,3")
        feeds.load_data(tmp_path / "a.csv")
    with pytest.raises(InputMismatchError, match="no data"):
        feeds.as_batches([], [X])


def test_load_data_pt_is_weights_only(tmp_path: Path) -> None:
    import torch

    torch.save({"x": torch.ones(2, 3)}, tmp_path / "ok.pt")
    assert feeds.load_data(tmp_path / "ok.pt")["x"].shape == (2, 3)
    torch.save({"x": types.SimpleNamespace(a=1)}, tmp_path / "pickled.pt")
    with pytest.raises(InputMismatchError, match="weights_only=True"):
        feeds.load_data(tmp_path / "pickled.pt")


def test_check_inputs_names_every_problem() -> None:
    good = {"x": np.ones((4, 3), np.float32), "ids": np.zeros((4, 9), np.int64)}
    feeds.check_inputs([X, IDS], good)
    with pytest.raises(InputMismatchError) as e:
        feeds.check_inputs(
            [X, IDS], {"x": np.ones((4, 2), np.float64), "ids": np.zeros(9, np.int64)}
        )
    msg = str(e.value)
    assert "'x' has dtype float64" in msg and "x.astype(np.float32)" in msg
    assert "'x' axis 1 is 2, the model needs 3" in msg
    assert "'ids' has shape (9,)" in msg and "missing batch axis" in msg
    with pytest.raises(InputMismatchError, match=r"missing \['ids'\], unknown \['y'\]"):
        feeds.check_inputs([X, IDS], {"x": good["x"], "y": good["x"]})


def test_random_inputs_fill_symbolic_dims_by_name() -> None:
    mask = TensorSpec("mask", "bool", ("batch", "seq"))
    out = feeds.random_inputs([X, IDS, mask], batch_size=3, dim_values={"seq": 7})
    assert out["x"].shape == (3, 3) and out["x"].dtype == np.float32
    assert out["ids"].shape == (3, 7) and out["ids"].dtype == np.int64
    assert out["mask"].dtype == np.bool_ and out["ids"].max() < 10
    with pytest.raises(InputMismatchError, match=r"dim_values=\{'seq': N\}"):
        feeds.random_inputs([IDS])


# --- device and extras --------------------------------------------------------------------


def test_resolve_device_per_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx_deploy.convert.runners.pytorch as pytorch_runner
    import onnx_deploy.infer.providers as providers

    assert resolve_device("CPU") == "cpu" and resolve_device("cuda") == "cuda"
    assert pytorch_runner.torch_device("CPU") == "cpu"
    for resolve in (resolve_device, pytorch_runner.torch_device):
        with pytest.raises(ValueError, match="device must be one of"):
            resolve("gpu")
    monkeypatch.setattr(pytorch_runner, "torch_cuda_available", lambda: True)
    monkeypatch.setattr(providers, "ort_cuda_available", lambda: False)
    assert pytorch_runner.torch_device("auto") == "cuda"
    assert resolve_device("auto") == "cpu"


def test_missing_extra_names_it() -> None:
    with pytest.raises(MissingExtraError, match=r"onnx-deploy\[export\]") as e:
        require("onnxslim.not_a_module", "slimming")
    assert isinstance(e.value, ImportError)
    assert "pip install 'onnx-deploy[notebooks]'" in install_hint("matplotlib")
    assert install_hint("tensorrt") == "pip install tensorrt"
    assert available("numpy") and not available("no_such_package_xyz")
    with pytest.raises(MissingExtraError, match="frobnicating needs no_such_package_xyz"):
        require("no_such_package_xyz", "frobnicating")


# --- saving ONNX ------------------------------------------------------------------------


def _model_with_weights(n: int = 4096) -> onnx.ModelProto:
    w = onnx.numpy_helper.from_array(np.full(n, 0.5, np.float32), "w")  # raw_data, as exported
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_save_onnx_one_external_data_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model_with_weights()
    _files.save_onnx(model, tmp_path / "small.onnx")
    assert not (tmp_path / "small.onnx.data").exists()
    with pytest.raises(OutputExistsError):
        _files.save_onnx(model, tmp_path / "small.onnx")
    monkeypatch.setattr(_files, "PROTOBUF_LIMIT", 1000)  # pretend 16 KB is over 2 GB
    assert _files.over_protobuf_limit(model)
    _files.save_onnx(model, tmp_path / "big.onnx")
    data = tmp_path / "big.onnx.data"
    assert data.stat().st_size == 4096 * 4 and (tmp_path / "big.onnx").stat().st_size < 1000
    assert _files.file_size(tmp_path / "big.onnx") > 4096 * 4
    loaded = onnx.load(str(tmp_path / "big.onnx"))
    assert onnx.numpy_helper.to_array(loaded.graph.initializer[0])[0] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data", "small.onnx"]


def test_fp16_keeps_the_external_data_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from onnx_deploy.convert.quantize import convert_fp16
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    src = tmp_path / "w.onnx"
    _files.save_onnx(_model_with_weights(), src, external_data=True)
    assert (tmp_path / "w.onnx.data").exists()
    monkeypatch.setattr(_files, "PROTOBUF_LIMIT", 1000)
    res = convert_fp16(src, tmp_path / "w16.onnx", validation_inputs=[np.ones(4096, np.float32)])
    assert (tmp_path / "w16.onnx.data").stat().st_size == 4096 * 2, "float16 weights, outside"
    assert res.validation.ok and res.size_after == _files.file_size(tmp_path / "w16.onnx")
    with OnnxRuntimeRunner(tmp_path / "w16.onnx", "cpu") as r:
        np.testing.assert_allclose(r.infer({"x": np.full(4096, 2.0, np.float32)})["y"], 1.0)


# --- sessions ---------------------------------------------------------------------------


def test_unknown_optimization_level_is_refused_not_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnxruntime

    from onnx_deploy.infer import sessions

    class OldLevels:  # onnxruntime before 1.22 had no layout level
        ORT_DISABLE_ALL = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        ORT_ENABLE_ALL = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL

    fake = types.SimpleNamespace(
        GraphOptimizationLevel=OldLevels,
        SessionOptions=onnxruntime.SessionOptions,
        __version__="1.21.0",
    )
    monkeypatch.setattr(sessions, "ort_module", lambda: fake)
    with pytest.raises(ValueError, match=r"1.21.0 has no 'layout' optimization level"):
        sessions.session_options(graph_optimization="layout")
    assert sessions.session_options(graph_optimization="all").graph_optimization_level == (
        onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    with pytest.raises(ValueError, match="must be one of"):
        sessions.session_options(graph_optimization="max")


# --- pipeline and CLI ---------------------------------------------------------------------


def test_pipeline_refuses_an_existing_summary_before_any_work(
    tmp_path: Path, tiny_source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnx_deploy import ModelSource
    from onnx_deploy.workflows import pipeline

    (tmp_path / "summary.json").write_text('{"mine": true}')
    called = []
    monkeypatch.setattr(ModelSource, "load", lambda *a, **k: called.append(a))
    with pytest.raises(OutputExistsError, match=r"summary.json already exists"):
        pipeline.run_pipeline(ModelSource(f"{tiny_source}:tiny", input_shape=(3, 16, 16)), tmp_path)
    assert not called and json.loads((tmp_path / "summary.json").read_text()) == {"mine": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def _parser_defaults(command: str) -> dict[str, object]:
    from onnx_deploy.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.default for a in sub.choices[command]._actions}


def _default(func: object, param: str) -> object:
    return inspect.signature(func).parameters[param].default  # type: ignore[arg-type]


def test_cli_defaults_are_the_library_defaults() -> None:
    from onnx_deploy.convert.export import export_model
    from onnx_deploy.convert.quantize import quantize_dynamic_model
    from onnx_deploy.convert.quantize import quantize_static_model
    from onnx_deploy.convert.verify import compare_torch_onnx
    from onnx_deploy.infer.compare import compare
    from onnx_deploy.infer.compare import compare_onnx
    from onnx_deploy.passes import by_command
    from onnx_deploy.workflows.pipeline import benchmark_targets
    from onnx_deploy.workflows.pipeline import run_pipeline
    from onnx_deploy.workflows.validate import validate_model

    export = _parser_defaults("export")
    assert export["opset"] == _default(export_model, "opset") == defaults.DEFAULT_OPSET
    assert export["batch"][1] == _default(export_model, "max_batch")
    validate = _parser_defaults("validate")
    # None: the library decides (VALIDATE_BATCH_SIZES for random inputs, 32 for real ones)
    assert validate["batch_sizes"] is None is _default(validate_model, "batch_sizes")
    # the wrappers pass batch_sizes on to compare (their **options)
    assert _default(compare, "batch_sizes") == defaults.VALIDATE_BATCH_SIZES
    assert "batch_sizes" not in inspect.signature(compare_onnx).parameters
    assert "batch_sizes" not in inspect.signature(compare_torch_onnx).parameters
    quant = _parser_defaults("quantize")
    assert quant["calibration_size"] == _default(quantize_static_model, "calibration_size")
    assert quant["calibration_method"] == _default(quantize_static_model, "calibration_method")
    # absent, each method keeps its own: static every op, dynamic MatMul/Gemm (a shared
    # MatMul/Gemm default once left every Conv of a static INT8 resnet18 in float)
    assert quant["op_types"] is None
    assert _default(quantize_static_model, "op_types") is None
    assert by_command("quantize")["dynamic"].options().op_types == _default(
        quantize_dynamic_model, "op_types"
    )
    for command, func in (("bench", benchmark_targets), ("pipeline", run_pipeline)):
        parsed = _parser_defaults(command)
        for name in ("warmup", "iters", "batch_sizes"):
            assert tuple(np.atleast_1d(parsed[name])) == tuple(
                np.atleast_1d(_default(func, name))
            ), (command, name)
