from __future__ import annotations

from pathlib import Path

import pytest

from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.infer.modelinfo import describe
from onnx_deploy.infer.modelinfo import load_onnx


def test_describe_tiny(tiny_onnx: Path) -> None:
    info = describe(tiny_onnx)
    assert info.opset >= 18
    assert info.ir_version >= 8
    (inp,) = info.inputs
    assert inp.dtype == "float32"
    assert isinstance(inp.shape[0], str), "batch dim should be symbolic"
    assert inp.shape[1:] == (3, 16, 16)
    assert info.outputs[0].shape[1] == 5
    assert info.op_histogram["Conv"] == 1
    assert info.num_nodes == sum(info.op_histogram.values())
    text = info.summary()
    assert "opset" in text and "Conv" in text and "float32[" in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        load_onnx(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is a text file, not a protobuf\n" * 20)
    with pytest.raises(ModelFileError, match="is not a readable ONNX model"):
        load_onnx(bad)
    assert bad.read_text().startswith("this is a text file")


def test_truncated(tiny_onnx: Path) -> None:
    data = tiny_onnx.read_bytes()
    tiny_onnx.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        load_onnx(tiny_onnx)


def test_empty_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_onnx(empty)
    with pytest.raises(ModelFileError, match="directory"):
        load_onnx(tmp_path)


def test_missing_external_data(tiny_module, tmp_path: Path) -> None:
    import shutil

    import torch

    from onnx_deploy.convert.export import export_model

    export_model(
        tiny_module, torch.randn(2, 3, 16, 16), tmp_path / "a" / "m.onnx", external_data=True
    )
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "m.onnx", tmp_path / "b" / "m.onnx")  # the .data file left behind
    with pytest.raises(ModelFileError, match="external-data file that is missing"):
        load_onnx(tmp_path / "b" / "m.onnx")
