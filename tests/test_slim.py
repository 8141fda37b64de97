from __future__ import annotations

from pathlib import Path

import onnx
import onnxslim
import pytest
import torch
from onnx import numpy_helper

from onnx_deploy.convert.export import export_model
from onnx_deploy.convert.slim import slim_model
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.errors import SlimError


@pytest.fixture
def torchscript_onnx(tiny_module, tmp_path: Path) -> Path:
    """The TorchScript exporter leaves work for onnxslim (unfused ops, Identity nodes)."""
    out = tmp_path / "ts.onnx"
    export_model(tiny_module, torch.randn(2, 3, 16, 16), out, exporter="torchscript")
    return out


def test_slim_counts_and_checks(torchscript_onnx: Path, tmp_path: Path) -> None:
    res = slim_model(torchscript_onnx, tmp_path / "slim.onnx")
    assert res.nodes_after <= res.nodes_before
    assert res.validation is not None and res.validation.ok
    assert res.validation.candidate == str(tmp_path / "slim.onnx")
    assert res.size_after > 0 and res.seconds >= 0
    assert sum(res.ops_after.values()) == len(onnx.load(str(tmp_path / "slim.onnx")).graph.node)
    for op, delta in res.op_changes().items():
        assert res.ops_after.get(op, 0) - res.ops_before.get(op, 0) == delta
    assert "->" in res.summary() and "PASS" in res.summary()
    assert res.to_dict()["nodes_before"] == res.nodes_before


def test_slim_none_is_an_error_and_writes_nothing(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnxslim, "slim", lambda model, **kw: None)
    out = tmp_path / "slim.onnx"
    with pytest.raises(SlimError, match="returned None"):
        slim_model(tiny_onnx, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]


def test_slim_that_changes_results_is_refused(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = onnxslim.slim

    def buggy_slim(model: onnx.ModelProto, **kw: object) -> onnx.ModelProto:
        out = real(model, **kw)
        init = next(i for i in out.graph.initializer if numpy_helper.to_array(i).ndim == 4)
        arr = numpy_helper.to_array(init) * 1.5
        init.CopyFrom(numpy_helper.from_array(arr, init.name))
        return out

    monkeypatch.setattr(onnxslim, "slim", buggy_slim)
    out = tmp_path / "slim.onnx"
    with pytest.raises(SlimError, match="changed the model's results"):
        slim_model(tiny_onnx, out)
    assert not out.exists()


def test_slim_refuses_to_overwrite(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "slim.onnx"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        slim_model(tiny_onnx, out)
    assert out.read_bytes() == b"keep"


def test_input_shapes_losing_dynamic_batch_is_noted(tiny_onnx: Path, tmp_path: Path) -> None:
    name = onnx.load(str(tiny_onnx)).graph.input[0].name
    res = slim_model(
        tiny_onnx, tmp_path / "fixed.onnx", input_shapes=[f"{name}:4,3,16,16"], check_numerics=False
    )
    assert any("dynamic dims became fixed" in n for n in res.notes)


def test_weights_in_external_data_stay_on_disk(torchscript_onnx: Path, tmp_path: Path) -> None:
    """A model past 2 GB keeps its weights in a .data file: slim works on the graph and
    copies the weights a chunk at a time (the 600M decoder: 7.6x -> 2.6x its size in peak
    memory, notebooks/MEASUREMENTS.md); the result is the same as slimming it loaded."""
    import numpy as np
    import onnxruntime as ort

    model = onnx.load(str(torchscript_onnx))
    src = tmp_path / "src" / "big.onnx"
    src.parent.mkdir()
    onnx.save_model(model, str(src), save_as_external_data=True, location="big.onnx.data",
                    size_threshold=64)  # fmt: skip
    res = slim_model(src, tmp_path / "out" / "slim.onnx")
    out = tmp_path / "out" / "slim.onnx"
    assert res.validation is not None and res.validation.ok
    assert (tmp_path / "out" / "slim.onnx.data").stat().st_size > 0
    kept = onnx.load(str(out), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in kept.graph.initializer)
    # the same numbers as the file slimmed in memory
    whole = slim_model(torchscript_onnx, tmp_path / "whole.onnx")
    assert whole.ops_after == res.ops_after
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    name = ort.InferenceSession(str(out)).get_inputs()[0].name
    got = ort.InferenceSession(str(out)).run(None, {name: x})[0]
    want = ort.InferenceSession(str(tmp_path / "whole.onnx")).run(None, {name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
