"""The shared pieces in core/: tables, latency statistics, JSON and folder writes, dtypes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import staged_folder
from onnx_deploy.core.files import write_json
from onnx_deploy.core.specs import from_triton
from onnx_deploy.core.specs import to_triton
from onnx_deploy.core.tables import format_table
from onnx_deploy.core.timing import decisive
from onnx_deploy.core.timing import latency_stats
from onnx_deploy.core.timing import paired_speedup
from onnx_deploy.core.timing import t_quantile_975


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


def test_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (*range(1, 31), 31, 40, 60, 120, 500):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1.5e-3), df
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_paired_speedup_pairs_rounds_and_says_how_sure_it_is() -> None:
    base = {0: 10.0, 1: 11.0, 2: 30.0, 3: 10.5, 4: 10.2}  # round 2: a busy spell hit both
    fast = {0: 8.0, 1: 8.9, 2: 24.5, 3: 8.3, 4: 8.2}
    s = paired_speedup(base, fast)
    ratios = np.log([base[r] / fast[r] for r in base])
    assert s.rounds == 5 and s.estimate == pytest.approx(math.exp(ratios.mean()))
    assert s.above(1.0) and not s.above(1.3) and s.low < s.estimate < s.high
    # unpaired, the busy round would swamp the 20% difference: medians of all calls mix rounds
    noisy = paired_speedup(base, {0: 10.5, 1: 9.8, 2: 31.0, 3: 10.0, 4: 11.0})
    assert not noisy.above(1.0) and not noisy.below(1.0)
    assert paired_speedup(base, {9: 1.0}).rounds == 0  # no common round
    two = paired_speedup({0: 2.0, 1: 2.0}, {0: 1.0, 1: 1.0})
    assert not two.decided and "too few for an interval" in two.text()
    assert s.text().startswith(f"{s.estimate:.2f}x (95% interval ")


def test_decisive_numbers_never_land_on_the_wrong_side() -> None:
    assert decisive(1.234, 1.0) == "1.23"
    assert decisive(1.003, 1.0) == "1.003"  # not "1.00": it is above the threshold
    assert decisive(0.996, 1.0) == "0.996"
    assert decisive(1.00004, 1.0) == "1.0000"  # as close as four places go


def test_first_line_quotes_an_error_in_one_line() -> None:
    assert first_line(ValueError("\n  bad thing\nmore")) == "bad thing"
    assert first_line(KeyError()) == "KeyError"
    assert first_line("x" * 500).endswith("...") and len(first_line("x" * 500)) == 300


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
