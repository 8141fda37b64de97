"""The shared pieces in core/: tables, latency statistics, JSON and folder writes, dtypes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.files import staged_folder
from onnx_deploy.core.files import write_json
from onnx_deploy.core.specs import from_triton
from onnx_deploy.core.specs import to_triton
from onnx_deploy.core.tables import format_table
from onnx_deploy.core.timing import latency_stats


def test_format_table_fixed_and_auto_widths_and_markdown() -> None:
    text = format_table(("model", "ms"), [("resnet18", "9.92"), ("a", "10.5")], align="<>")
    assert text.splitlines() == ["model      ms", "resnet18 9.92", "a        10.5"]
    fixed = format_table(("m", "x"), [("long-name", "1")], widths=(4, 3), align="<>", sep="")
    assert fixed.splitlines()[1] == "long-name  1"  # a longer cell overflows, as in an f-string
    assert format_table(("a", "b"), [(1, 2)], rule="-").splitlines()[1] == "---"
    assert format_table(("a", "b"), [(1, 2)], markdown=True) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_latency_stats_match_numpy_and_say_nan_for_none() -> None:
    times = [5.0, 1.0, 3.0, 2.0, 4.0]
    st = latency_stats(times)
    assert (st.count, st.median_ms, st.min_ms) == (5, 3.0, 1.0)
    assert st.p90_ms == pytest.approx(np.percentile(times, 90))
    assert st.std_ms == pytest.approx(np.std(times))
    empty = latency_stats([])
    assert empty.count == 0 and math.isnan(empty.median_ms)


def test_write_json_is_whole_or_absent_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_json(path, {"a": Path("x"), "b": (1, 2)})
    assert json.loads(path.read_text()) == {"a": "x", "b": [1, 2]}
    with pytest.raises(OutputExistsError):
        write_json(path, {"c": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_staged_folder_replaces_or_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "model"
    with staged_folder(final) as stage:
        assert stage.name == "model" and stage.parent.parent == tmp_path  # its own name
        (stage / "config.pbtxt").write_text("one")
    assert (final / "config.pbtxt").read_text() == "one"
    with pytest.raises(OutputExistsError), staged_folder(final):
        pass
    with pytest.raises(RuntimeError), staged_folder(final, force=True) as stage:
        (stage / "config.pbtxt").write_text("half")
        raise RuntimeError("the writer failed")
    assert (final / "config.pbtxt").read_text() == "one"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging left
    (final / "keep.txt").write_text("mine")
    with staged_folder(final, merge=True, last=("index.html",)) as stage:
        (stage / "index.html").write_text("page")
    assert sorted(p.name for p in final.iterdir()) == ["config.pbtxt", "index.html", "keep.txt"]


def test_triton_names_are_a_column_of_the_dtype_table() -> None:
    assert to_triton("float32") == "FP32" and to_triton("bfloat16") == "BF16"
    assert to_triton("float8e4m3fn") is None
    assert from_triton("TYPE_INT64") == "int64" and from_triton("BYTES") == "string"
    with pytest.raises(ValueError, match="unknown Triton data type"):
        from_triton("FP128")
