from __future__ import annotations

from pathlib import Path

import pytest

from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import check_output_path
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size


def test_human_size() -> None:
    assert human_size(512) == "512 B"
    assert human_size(2048) == "2.0 KB"
    assert human_size(46843392) == "44.7 MB"


def test_existing_output_is_refused_and_untouched(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="--force"), atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_force_replaces(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with atomic_output(target, force=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_failed_writer_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"precious")
    with pytest.raises(RuntimeError), atomic_output(target, force=True) as tmp:
        tmp.write_bytes(b"half written")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_side_files_move_with_the_model(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.onnx"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"graph")
        (tmp.parent / "model.onnx.data").write_bytes(b"weights")
    assert target.read_bytes() == b"graph"
    assert (target.parent / "model.onnx.data").read_bytes() == b"weights"
    assert file_size(target) == len(b"graph") + len(b"weights")


def test_directory_is_not_an_output(tmp_path: Path) -> None:
    with pytest.raises(OutputExistsError, match="directory"):
        check_output_path(tmp_path, force=True)
