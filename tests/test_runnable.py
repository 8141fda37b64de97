"""Commands that write something to run check first that onnxruntime loads the model, and
write nothing when it cannot; ``inspect`` warns. TensorRT's QDQ graph follows its rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper
from onnx import numpy_helper

from onnx_deploy.cli import main

BAD = ("ir99", "custom_op", "missing_data")


def _matmul(ir_version: int = 10) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "m", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir_version
    return model


def bad_model(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.onnx"
    if kind == "ir99":
        onnx.save(_matmul(ir_version=99), path)
    elif kind == "custom_op":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
        node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
        model = helper.make_model(
            helper.make_graph([node], "c", [x], [y]),
            opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)],
        )
        model.ir_version = 10
        onnx.save(model, path)
    else:
        onnx.save(
            _matmul(), path, save_as_external_data=True, location=f"{kind}.onnx.data",
            size_threshold=0,
        )  # fmt: skip
        (folder / f"{kind}.onnx.data").unlink()
    return path


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize(
    "command",
    [
        ["triton", "export", "{model}", "--repo", "{out}"],
        ["web", "{model}", "--out", "{out}"],
        ["optimize", "{model}", "--out-dir", "{out}", "--no-plots"],
    ],
    ids=lambda c: c[0] if isinstance(c, list) else c,
)
def test_writers_refuse_a_model_onnxruntime_cannot_load(
    kind: str, command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = bad_model(kind, tmp_path)
    before = _listing(tmp_path)
    out = tmp_path / "out"
    code = main([a.format(model=model, out=out) for a in command])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Nothing was written" in err or "missing" in err, err
    assert "Traceback" not in err
    assert _listing(tmp_path) == before, "nothing written, nothing removed"


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("ir99", "Unsupported model IR version: 99"),
        ("custom_op", "com.example:Frobnicate"),
        ("missing_data", "missing_data.onnx.data"),
    ],
)
def test_inspect_warns_about_what_onnxruntime_cannot_load(
    kind: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = bad_model(kind, tmp_path)
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and says in warnings[0], out


def test_inspect_is_quiet_on_a_good_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "good.onnx"
    onnx.save(_matmul(), path)
    assert main(["inspect", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out


# -- TensorRT's explicit quantization ------------------------------------------------


def _digits_onnx(folder: Path) -> tuple[Path, np.ndarray]:
    import torch

    from onnx_deploy.convert.export import export_model
    from onnx_deploy.teach.digits import load_digits_model
    from onnx_deploy.teach.digits import load_digits_split

    data = load_digits_split()
    path = export_model(load_digits_model(), torch.zeros(2, 1, 8, 8), folder / "d.onnx").path
    return Path(path), data.x_train


def test_tensorrt_qdq_graph_follows_tensorrts_rules(tmp_path: Path) -> None:
    from onnx_deploy.convert.quantize import quantize_for_tensorrt
    from onnx_deploy.convert.quantize import quantize_static_model
    from onnx_deploy.convert.quantize import tensorrt_qdq_problems

    fp32, calib = _digits_onnx(tmp_path)
    result = quantize_for_tensorrt(fp32, tmp_path / "trt.onnx", calib, calibration_size=64)
    assert result.validation is not None and result.validation.ok
    model = onnx.load(result.output_path)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and tensorrt_qdq_problems(model) == []
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in qdq:  # each rule checked here too, not only by the function under test
        zero = inits[n.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), n.name
        assert (inits[n.input[1]] > 0).all()
        if n.input[0] in inits:  # a weight: never int32 (a quantized bias)
            assert inits[n.input[0]].dtype == np.int8
        else:  # an activation: one scale
            assert inits[n.input[1]].size == 1
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(c.input[2] in inits and inits[c.input[2]].dtype == np.float32 for c in convs), (
        "float bias straight into each Conv"
    )
    # the x86 file (uint8 activations, int32 bias) is what TensorRT refuses
    x86 = quantize_static_model(
        fp32, tmp_path / "x86.onnx", calib, calibration_size=64, target_isa="x86-vnni",
        validate=False,
    )  # fmt: skip
    problems = tensorrt_qdq_problems(x86.output_path)
    assert any("UINT8" in p for p in problems) and any("quantized bias" in p for p in problems)


def test_tensorrt_rules_catch_a_wrong_weight_axis_and_per_channel_activations() -> None:
    from onnx_deploy.convert.quantize import tensorrt_qdq_problems

    w = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.int8), "w_q")
    ws = numpy_helper.from_array(np.full(4, 0.1, np.float32), "w_s")  # 4 scales on axis 1
    wz = numpy_helper.from_array(np.zeros(4, np.int8), "w_z")
    xs = numpy_helper.from_array(np.full(4, 0.1, np.float32), "x_s")  # per-channel activation
    xz = numpy_helper.from_array(np.zeros(4, np.int8), "x_z")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], axis=1),
        helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"], axis=1),
        helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"], axis=1),
        helper.make_node("Conv", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])],
        [w, ws, wz, xs, xz],
    )  # fmt: skip
    problems = tensorrt_qdq_problems(helper.make_model(graph))
    assert any("per-channel axis 1, Conv wants its output channels (axis 0)" in p for p in problems)
    assert sum("per-channel scales on an activation" in p for p in problems) == 2


def test_cli_quantize_for_tensorrt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fp32, calib = _digits_onnx(tmp_path)
    np.save(tmp_path / "calib.npy", calib[:64])
    code = main(["quantize", str(fp32), "--method", "tensorrt", "--calibration",
                 str(tmp_path / "calib.npy")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "target tensorrt" in out and "activations int8" in out
    assert (tmp_path / "d.trt-int8.onnx").is_file()


def test_a_tensorrt_graph_made_on_a_cpu_without_vnni_warns_of_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU's saturation warning is about its own integer kernels; the TensorRT graph is
    validated with Q/DQ as written, so it holds on a CPU without VNNI too."""
    import warnings

    from onnx_deploy.convert import quantize as q
    from onnx_deploy.core.cpu import PROFILES
    from onnx_deploy.core.errors import QuantizationWarning

    fp32, calib = _digits_onnx(tmp_path)
    monkeypatch.setattr(q, "int8_profile", lambda isa=None: PROFILES[isa or "x86-no-vnni"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)
        result = q.quantize_for_tensorrt(fp32, tmp_path / "trt.onnx", calib, calibration_size=64)
    assert result.validation is not None and result.validation.ok
    with pytest.warns(QuantizationWarning, match="saturate"):  # the CPU file still warns
        q.quantize_static_model(
            fp32, tmp_path / "cpu.onnx", calib, calibration_size=64, reduce_range=False,
            validate=False,
        )  # fmt: skip
