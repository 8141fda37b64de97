"""TensorRT's documented ONNX rules, checked without TensorRT: each rule refuses a graph that
breaks it, the graphs the project says TensorRT builds pass (or are named where they do not),
and `trt build` refuses with the node's name before it imports TensorRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper

from onnx_deploy.cli import main
from onnx_deploy.convert import tensorrt as trt_mod
from onnx_deploy.convert.tensorrt_rules import check_tensorrt

F = TensorProto.FLOAT


def _graph(node: onnx.NodeProto, inits=(), opset: int = 18, out_type=F) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", F, [1, 3, 8, 8])],
        [helper.make_tensor_value_info(node.output[0], out_type, None)], initializer=list(inits),
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _i64(name: str, values) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.array(values, np.int64), name)


SIZES = _i64("sizes", [1, 3, 4, 4])


@pytest.mark.parametrize(
    ("model", "rule"),
    [
        (_graph(helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="r",
                                 mode="linear", antialias=1), [SIZES]), "antialias=1"),
        (_graph(helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="r",
                                 mode="cubic"), [SIZES]), "mode 'cubic'"),
        (_graph(helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="r",
                                 coordinate_transformation_mode="tf_crop_and_resize"), [SIZES]),
         "coordinate_transformation_mode"),
        (_graph(helper.make_node("TopK", ["x", "k"], ["y", "i"], name="t", sorted=0),
                [_i64("k", [2])]), "sorted=0"),
        (_graph(helper.make_node("TopK", ["x", "k"], ["y", "i"], name="t"),
                [_i64("k", [4000])]), "K=4000"),
        (_graph(helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2],
                                 dilations=[2, 2])), "dilations"),
        (_graph(helper.make_node("Unique", ["x"], ["y"], name="u")), "not supported"),
        (_graph(helper.make_node("Relu", ["x"], ["y"], name="a"), opset=21), "opset 21"),
        (_graph(helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="m")), "axes"),
        (_graph(helper.make_node("MatMulNBits", ["x"], ["y"], name="q",
                                 domain="com.microsoft")), "domain 'com.microsoft'"),
        (_graph(helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.UINT8),
                out_type=TensorProto.UINT8), None),  # UINT8 at the network's output: allowed
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
def test_each_documented_rule_refuses_a_graph_that_breaks_it(model, rule) -> None:
    report = check_tensorrt(model)
    if rule is None:
        assert report.ok, report.summary()
        return
    assert not report.ok and rule in report.summary(), report.summary()
    assert all(f.node for f in report.findings), "every finding names its node"


def test_a_uint8_tensor_inside_the_network_is_refused() -> None:
    nodes = [
        helper.make_node("Cast", ["x"], ["u"], name="to_u8", to=TensorProto.UINT8),
        helper.make_node("Cast", ["u"], ["y"], name="back", to=F),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2])],
                              [helper.make_tensor_value_info("y", F, [2])])  # fmt: skip
    report = check_tensorrt(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert [f.node for f in report.findings] == ["to_u8"] and "UINT8" in report.summary()


def test_a_subgraph_sees_the_constants_around_it() -> None:
    """An If branch reducing over axes the outer graph holds as an initializer is fine; the
    same branch reducing over a runtime tensor is not."""

    def model(axes_source: str) -> onnx.ModelProto:
        branch = helper.make_graph(
            [helper.make_node("ReduceMean", ["x", axes_source], ["y"], name="mean")], "b", [],
            [helper.make_tensor_value_info("y", F, None)],
        )  # fmt: skip
        node = helper.make_node(
            "If", ["c"], ["y"], name="if", then_branch=branch, else_branch=branch
        )
        graph = helper.make_graph(
            [node], "g",
            [helper.make_tensor_value_info("x", F, [1, 3, 8, 8]),
             helper.make_tensor_value_info("c", TensorProto.BOOL, []),
             helper.make_tensor_value_info("runtime_axes", TensorProto.INT64, [1])],
            [helper.make_tensor_value_info("y", F, None)], initializer=[_i64("axes", [1])],
        )  # fmt: skip
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])

    assert check_tensorrt(model("axes")).ok, check_tensorrt(model("axes")).summary()
    bad = check_tensorrt(model("runtime_axes"))
    assert [f.node for f in bad.findings] == ["mean", "mean"] and "axes" in bad.summary()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The served detector of notebook 12 and the detection skill, made by the CLI, with the
    antialiased letterbox and the TensorRT-safe one."""
    d = tmp_path_factory.mktemp("served")
    assert main(["export", "project:shapes_detector", "-o", str(d / "shapes.onnx")]) == 0
    assert main(["edit", "postprocess", "--nms", str(d / "shapes.onnx"), "--classes", "3",
                 "-o", str(d / "nms.onnx")]) == 0  # fmt: skip
    assert main(["edit", "preprocess", "--letterbox", str(d / "nms.onnx"),
                 "-o", str(d / "served.onnx")]) == 0  # fmt: skip
    assert main(["edit", "preprocess", "--letterbox", "--no-antialias", str(d / "nms.onnx"),
                 "-o", str(d / "served.trt.onnx")]) == 0  # fmt: skip
    return {p.stem: p for p in d.glob("*.onnx")}


def test_the_served_detectors_antialiased_resize_is_flagged_and_the_fixed_one_passes(
    served: dict[str, Path],
) -> None:
    bad = check_tensorrt(served["served"])
    assert [(f.node, f.op_type) for f in bad.findings] == [("lb/resized", "Resize")]
    assert "antialias" in bad.findings[0].rule
    good = check_tensorrt(served["served.trt"])
    assert good.ok and "passes the static check for TensorRT 10.1" in good.summary()
    resize = next(n for n in onnx.load(served["served.trt"]).graph.node if n.op_type == "Resize")
    assert helper.get_attribute_value(resize.attribute[-1]) == 0 or all(
        a.i == 0 for a in resize.attribute if a.name == "antialias"
    ), "--no-antialias is honoured"
    # and its EfficientNMS copy (`trt build --nms-plugin`): the plugin is TensorRT's own
    from onnx_deploy.convert.surgery.detection import efficient_nms

    assert check_tensorrt(efficient_nms(onnx.load(served["served.trt"]))).ok


def test_the_tensorrt_safe_letterbox_still_matches_pytorch_on_resized_images(
    served: dict[str, Path], tmp_path: Path
) -> None:
    """The PyTorch side follows the graph's letterbox (antialiased or not), so a resized
    image is held to the same form: scenes at 2x, resized down by the graph."""
    from onnx_deploy import ModelSource
    from onnx_deploy import validate_model
    from onnx_deploy.teach.shapes import draw_scene

    scenes = [draw_scene(np.random.default_rng(40 + i), 160, 100)[0] for i in range(4)]
    big = np.stack([np.repeat(np.repeat(s, 2, axis=0), 2, axis=1) for s in scenes])
    np.savez(tmp_path / "big.npz", pixels=big)
    data = str(tmp_path / "big.npz")
    report = validate_model(ModelSource(str(served["served.trt"]), data=data),
                            "project:shapes_detector")  # fmt: skip
    assert report.ok and report.detections.matched > 4, report.summary()


def test_trt_build_refuses_with_the_node_before_importing_tensorrt(
    served: dict[str, Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    def no_import() -> None:
        raise AssertionError("TensorRT was imported before the static check refused")

    monkeypatch.setattr(trt_mod, "load_tensorrt", no_import)
    code = main(["trt", "build", str(served["served"]), "-o", str(tmp_path / "s.plan")])
    err = capsys.readouterr().err
    assert code == 1 and "node 'lb/resized' (Resize): antialias=1" in err
    assert "--no-antialias" in err and not (tmp_path / "s.plan").exists()
    assert main(["trt", "check", str(served["served"])]) == 1
    assert main(["trt", "check", str(served["served.trt"])]) == 0


def test_the_graphs_tensorrt_builds_pass_and_the_ones_it_does_not_are_named(
    tiny_onnx: Path, tmp_path: Path
) -> None:
    """The project's TensorRT QDQ graph (symmetric int8, float bias) and FP16 graph pass;
    onnxruntime's default QDQ (uint8 activations, int32 bias) and a 4-bit MatMulNBits graph
    are refused, which is why `quantize --method tensorrt` exists."""
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization import quantize_static

    from onnx_deploy.convert.quantize import quantize_for_tensorrt

    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    name = onnx.load(tiny_onnx).graph.input[0].name
    quantize_for_tensorrt(tiny_onnx, tmp_path / "trt.onnx", {name: x})
    assert check_tensorrt(tmp_path / "trt.onnx").ok
    trt_mod.fp16_graph(tiny_onnx, tmp_path / "fp16.onnx", {name: x})
    assert check_tensorrt(tmp_path / "fp16.onnx").ok

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter([{name: x[i : i + 1]} for i in range(4)])

        def get_next(self):
            return next(self.rows, None)

    quantize_static(
        str(tiny_onnx), str(tmp_path / "ort.onnx"), Reader(), quant_format=QuantFormat.QDQ
    )
    report = check_tensorrt(tmp_path / "ort.onnx")
    assert not report.ok and any(f.op_type == "DequantizeLinear" for f in report.findings)


def test_transformer_graphs_are_checked_by_the_same_rules(tmp_path: Path) -> None:
    """An encoder exported from a save_pretrained folder passes; GPT-2's decoder with its
    cache is named: it computes position ids with CumSum over the int64 attention mask, and
    the 10.1 matrix gives CumSum float types only."""
    pytest.importorskip("transformers")
    from onnx_deploy.teach.families import save_family

    for name in ("bert", "gpt2"):
        spec = save_family(name, tmp_path / name)
        assert main(["export", spec, "-o", str(tmp_path / f"{name}.onnx"), "--no-validate"]) == 0
    assert check_tensorrt(tmp_path / "bert.onnx").ok
    gpt2 = check_tensorrt(tmp_path / "gpt2.onnx")
    assert [(f.op_type, "INT64" in f.rule) for f in gpt2.findings] == [("CumSum", True)]
