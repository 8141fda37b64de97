from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from onnx_deploy.cli import main
from onnx_deploy.digits import load_digits_model, load_digits_split
from onnx_deploy.errors import OutputExistsError
from onnx_deploy.export import export_model
from onnx_deploy.modelinfo import describe
from onnx_deploy.quantize import (
    QuantizationWarning,
    QuantizeError,
    calibration_reader,
    convert_fp16,
    default_types,
    is_quantized,
    layer_errors,
    node_names,
    preprocessed_copy,
    quantize_dynamic_model,
    quantize_static_model,
    worst_nodes,
)


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "digits.onnx"
    export_model(load_digits_model(), torch.zeros(2, 1, 8, 8), out)
    return out


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_default_types() -> None:
    assert default_types("x86_64") == ("uint8", "int8")
    assert default_types("aarch64") == ("int8", "int8")


def test_static_int8_meets_the_accuracy_target(digits_onnx: Path, data, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    res = quantize_static_model(
        digits_onnx, out, data.x_train, calibration_size=200,
        validation_inputs=np.array_split(data.x_test, 5), labels=data.y_test,
    )  # fmt: skip
    assert is_quantized(onnx.load(str(out)))
    assert res.validation is not None and res.validation.ok
    assert res.metrics["accuracy_fp32"] - res.metrics["accuracy_quantized"] <= 0.005
    assert res.metrics["agreement"] >= 0.99
    assert res.compression > 2 and res.details["per_channel"] is True
    assert res.details["activations"] == default_types()[0]
    assert "quantize" in res.summary() and json.dumps(res.to_dict(), default=str)
    assert _only(tmp_path) == ["int8.onnx"], "no pre-processed or temporary files left"


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_calibration_methods(digits_onnx: Path, data, tmp_path: Path, method: str) -> None:
    res = quantize_static_model(
        digits_onnx, tmp_path / "q.onnx", data.x_train[:64], calibration_method=method
    )
    assert res.validation.ok and method in res.details["calibration"]


def test_calibration_sources(digits_onnx: Path, data, tmp_path: Path) -> None:
    from PIL import Image

    name = describe(digits_onnx).inputs[0].name
    x = data.x_train[:5]
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", images=x)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, im in enumerate(x):
        Image.fromarray((im[0] * 255).astype(np.uint8)).save(imgs / f"{i}.png")
    sources = [x, {name: x}, list(x[:, None]), tmp_path / "x.npy", tmp_path / "x.npz", imgs]
    for src in sources:
        reader = calibration_reader(digits_onnx, src)
        assert len(reader) == 5
        first = reader.get_next()
        assert list(first) == [name] and first[name].shape == (1, 1, 8, 8)
        assert first[name].dtype == np.float32
    assert len(calibration_reader(digits_onnx, x, limit=2)) == 2


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4, 1, 9, 9), np.float32), "does not fit.*axis 2 is 9"),
        (np.zeros((4, 1, 8, 8), np.float64), "does not fit.*float64"),
        (np.zeros((0, 1, 8, 8), np.float32), "empty"),
    ],
    ids=["shape", "dtype", "empty"],
)
def test_bad_calibration_data(digits_onnx: Path, tmp_path: Path, bad, match: str) -> None:
    with pytest.raises(QuantizeError, match=match):
        quantize_static_model(digits_onnx, tmp_path / "q.onnx", bad)
    assert _only(tmp_path) == []


def test_already_quantized_and_unknown_exclusion(digits_onnx: Path, data, tmp_path: Path) -> None:
    q = tmp_path / "q.onnx"
    quantize_static_model(digits_onnx, q, data.x_train[:32], validate=False)
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize_static_model(q, tmp_path / "qq.onnx", data.x_train[:32])
    assert len(node_names(digits_onnx, op_types=["Conv"])) == 3
    with pytest.raises(QuantizeError, match="not found in the graph"):
        quantize_static_model(
            digits_onnx, tmp_path / "x.onnx", data.x_train[:32], nodes_to_exclude=["nope"]
        )
    assert _only(tmp_path) == ["q.onnx"]
    with pytest.raises(OutputExistsError):
        quantize_static_model(digits_onnx, q, data.x_train[:32])


def test_dynamic_warns_on_convolutions(digits_onnx: Path, tmp_path: Path) -> None:
    with pytest.warns(QuantizationWarning, match="Conv"):
        quantize_dynamic_model(digits_onnx, tmp_path / "all.onnx", op_types=None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)
        res = quantize_dynamic_model(digits_onnx, tmp_path / "mm.onnx")
    ops = describe(tmp_path / "mm.onnx").op_histogram
    assert "ConvInteger" not in ops and ("MatMulInteger" in ops or "DynamicQuantizeLinear" in ops)
    assert res.validation.ok


def test_fp16_keeps_float32_io(digits_onnx: Path, data, tmp_path: Path) -> None:
    res = convert_fp16(
        digits_onnx, tmp_path / "h.onnx", validation_inputs=[data.x_test], labels=data.y_test
    )
    info = describe(tmp_path / "h.onnx")
    assert info.inputs[0].dtype == "float32" and info.outputs[0].dtype == "float32"
    assert res.validation.ok and res.metrics["agreement"] >= 0.99
    assert 1.5 < res.compression < 2.1


def test_layer_errors_and_exclusion(digits_onnx: Path, data, tmp_path: Path) -> None:
    pre = preprocessed_copy(digits_onnx, tmp_path / "pre.onnx")
    q = tmp_path / "q.onnx"
    quantize_static_model(digits_onnx, q, data.x_train[:128], validate=False)
    errors = layer_errors(pre, q, data.x_test, limit=32)
    assert errors and all(np.isfinite(e.sqnr) for e in errors)
    drops = [e.sqnr_drop for e in errors if np.isfinite(e.sqnr_drop)]
    assert drops == sorted(drops, reverse=True)
    worst = worst_nodes(errors, 1)
    graph_nodes = {n.name for n in onnx.load(pre).graph.node}
    assert worst and set(worst) <= graph_nodes
    res = quantize_static_model(
        digits_onnx, tmp_path / "ex.onnx", data.x_train[:128], nodes_to_exclude=worst
    )
    assert res.details["excluded"] == tuple(worst) and res.validation.ok


def test_cli_quantize(digits_onnx: Path, data, tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "cal.npy", data.x_train[:100])
    np.save(tmp_path / "x.npy", data.x_test)
    np.save(tmp_path / "y.npy", data.y_test)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(digits_onnx), "-o", str(out), "--calibration", str(tmp_path / "cal.npy"),
            "--validation-data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--json"]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["metrics"]["agreement"] >= 0.99 and payload["method"] == "static"
    assert main(["quantize", str(out), "--calibration", str(tmp_path / "cal.npy")]) == 1
    assert "already quantized" in capsys.readouterr().err
    assert main(["quantize", str(digits_onnx), "-o", str(tmp_path / "s.onnx")]) == 1
    assert "--calibration" in capsys.readouterr().err
    assert (
        main(["quantize", str(digits_onnx), "--method", "fp16", "-o", str(tmp_path / "h.onnx")])
        == 0
    )
