"""Detectors: NMS and letterbox in the graph, IoU-matched validation, mAP, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper

from onnx_deploy.cli import main
from onnx_deploy.convert.surgery import SurgeryError
from onnx_deploy.convert.surgery.detection import add_letterbox
from onnx_deploy.convert.surgery.detection import add_nms
from onnx_deploy.convert.surgery.detection import detection_metadata
from onnx_deploy.convert.surgery.detection import efficient_nms
from onnx_deploy.convert.surgery.graph import fix_ir_version
from onnx_deploy.infer.compare import compare_results
from onnx_deploy.infer.detections import Detections
from onnx_deploy.infer.detections import box_iou
from onnx_deploy.infer.detections import compare_detections
from onnx_deploy.infer.detections import cxcywh_to_xyxy
from onnx_deploy.infer.detections import mean_average_precision
from onnx_deploy.infer.detections import pad_detections
from onnx_deploy.infer.detections import reference_nms
from onnx_deploy.infer.detections import split_detections

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return fix_ir_version(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _head_model(classes: int = 3, anchors: int = 200, dtype=TensorProto.FLOAT) -> onnx.ModelProto:
    """Input x [B, 4 + C, N] is the head itself, plus a 4-D feature map as training output."""
    return _model(
        [helper.make_node("Identity", ["x"], ["head"]),
         helper.make_node("Unsqueeze", ["x", "ax"], ["feature_map"]),
         helper.make_node("Constant", [], ["ax"], value=onnx.numpy_helper.from_array(np.array([3], np.int64)))],
        [helper.make_tensor_value_info("x", dtype, ["batch", 4 + classes, anchors])],
        [helper.make_tensor_value_info("head", dtype, ["batch", 4 + classes, anchors]),
         helper.make_tensor_value_info("feature_map", dtype, ["batch", 4 + classes, anchors, 1])],
    )  # fmt: skip


def _heads(batch: int, classes: int = 3, anchors: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((batch, 4 + classes, anchors), np.float32)
    x[:, :2] = rng.uniform(0, 320, (batch, 2, anchors))
    x[:, 2:4] = rng.uniform(10, 80, (batch, 2, anchors))
    x[:, 4:] = rng.uniform(0, 1, (batch, classes, anchors))
    return x


def _run(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


@pytest.mark.parametrize("max_detections", [5, 300])
@pytest.mark.parametrize("batch", [1, 3])
def test_nms_graph_equals_numpy_nms(batch: int, max_detections: int) -> None:
    model = add_nms(_head_model(), score_threshold=0.3, iou_threshold=0.5,
                    max_detections=max_detections)  # fmt: skip
    outs = {o.name: o for o in model.graph.output}
    assert list(outs) == ["num_detections", "boxes", "scores", "classes"]  # feature map dropped
    x = _heads(batch, seed=batch)
    got = _run(model, {"x": x})
    assert got["boxes"].shape == (batch, max_detections, 4)
    assert got["num_detections"].dtype == np.int32 and got["classes"].dtype == np.int32
    ref = reference_nms(cxcywh_to_xyxy(x[:, :4].transpose(0, 2, 1)), x[:, 4:].transpose(0, 2, 1),
                        score_threshold=0.3, iou_threshold=0.5, max_detections=max_detections)  # fmt: skip
    dets = split_detections(got)
    assert [len(d) for d in dets] == [len(r) for r in ref] == got["num_detections"].ravel().tolist()
    for d, r in zip(dets, ref, strict=True):  # the same boxes, in the same order, best first
        np.testing.assert_allclose(d.boxes, r.boxes, atol=1e-4)
        np.testing.assert_array_equal(d.classes, r.classes)
        assert (np.diff(d.scores) <= 0).all()
    n = got["num_detections"].ravel()
    for i in range(batch):  # zeros after num_detections
        assert not got["scores"][i, n[i] :].any() and not got["boxes"][i, n[i] :].any()
    meta = detection_metadata(model)
    assert meta["num_classes"] == 3 and meta["box_format"] == "cxcywh"


def test_nms_on_nothing_above_the_threshold_and_fp16_heads() -> None:
    model = add_nms(_head_model(dtype=TensorProto.FLOAT16), max_detections=10)
    empty = _run(model, {"x": np.zeros((2, 7, 200), np.float16)})
    assert empty["num_detections"].ravel().tolist() == [0, 0] and not empty["boxes"].any()
    got = _run(model, {"x": _heads(1).astype(np.float16)})
    assert got["num_detections"][0, 0] == 10


def test_boxes_and_scores_outputs_are_found_and_renamed() -> None:
    """A torchvision-style pair: [B, N, 4] corners and [B, N, C] scores, named boxes/scores,
    which would clash with the new outputs: renamed raw_boxes/raw_scores first."""
    m = _model(
        [helper.make_node("Identity", ["b"], ["boxes"]), helper.make_node("Identity", ["s"], ["scores"])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 50, 4]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch", 50, 2])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 50, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 50, 2])],
    )  # fmt: skip
    model = add_nms(m, score_threshold=0.5, iou_threshold=0.5, max_detections=50)
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 100, (1, 50, 2))
    b = np.concatenate([xy, xy + rng.uniform(5, 30, (1, 50, 2))], -1).astype(np.float32)
    s = rng.uniform(0, 1, (1, 50, 2)).astype(np.float32)
    got = split_detections(_run(model, {"b": b, "s": s}))
    ref = reference_nms(b, s, score_threshold=0.5, iou_threshold=0.5, max_detections=50)
    assert compare_detections(ref, got, "same-graph").ok and len(ref[0]) > 5


def test_nms_bad_inputs_are_refused(tiny_onnx: Path) -> None:
    classifier = onnx.load(str(tiny_onnx))
    with pytest.raises(SurgeryError, match="no box output"):
        add_nms(classifier)
    with pytest.raises(SurgeryError, match=r"num_classes=80 but .* holds 3 classes"):
        add_nms(_head_model(), num_classes=80)
    for bad, match in [({"score_threshold": 1.0}, "score_threshold must be in"),
                       ({"score_threshold": -0.1}, "score_threshold must be in"),
                       ({"iou_threshold": 0.0}, "iou_threshold must be in"),
                       ({"iou_threshold": 1.5}, "iou_threshold must be in"),
                       ({"max_detections": 0}, "max_detections must be a positive")]:  # fmt: skip
        with pytest.raises(SurgeryError, match=match):
            add_nms(_head_model(), **bad)
    done = add_nms(_head_model())
    with pytest.raises(SurgeryError, match="already returns detections"):
        add_nms(done)
    with pytest.raises(SurgeryError, match="not an output"):
        add_nms(_head_model(), head="logits")


def test_cli_nms_errors_say_what_to_do(tiny_onnx: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.onnx"
    assert main(["edit", "postprocess", "--nms", str(tiny_onnx), "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "no box output" in err and "Traceback" not in err and not out.exists()
    head = tmp_path / "head.onnx"
    onnx.save(_head_model(), str(head))
    for args in (["--classes", "5"], ["--iou-threshold", "2"], ["--score-threshold", "1"]):
        assert main(["edit", "postprocess", "--nms", str(head), "-o", str(out), *args]) != 0
        assert not out.exists() and "Traceback" not in capsys.readouterr().err
    assert not list(tmp_path.glob(".*tmp*"))


def _fixed_box_model(box: list[float]) -> onnx.ModelProto:
    """An "image" [1, 3, 160, 160] in, one fixed detection out (padded layout)."""
    const = lambda name, v, dt: helper.make_node(  # noqa: E731
        "Constant", [], [name], value=onnx.numpy_helper.from_array(np.asarray(v, dt))
    )
    return _model(
        [const("boxes", [[box]], np.float32), const("scores", [[0.9]], np.float32),
         const("classes", [[1]], np.int32), const("num_detections", [[1]], np.int32)],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 160, 160])],
        [helper.make_tensor_value_info("num_detections", TensorProto.INT32, [1, 1]),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 1, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1]),
         helper.make_tensor_value_info("classes", TensorProto.INT32, [1, 1])],
    )  # fmt: skip


def test_letterbox_round_trip_maps_boxes_to_the_original_image() -> None:
    """320x160 (h x w) pixels: scale 0.5 to 160x80, padded 40 left and right; a box at
    x 50..90, y 20..60 in the network is x 20..100, y 40..120 in the original."""
    model = add_letterbox(_fixed_box_model([50, 20, 90, 60]))
    assert [i.name for i in model.graph.input] == ["pixels"]
    assert [o.name for o in model.graph.output] == ["num_detections", "boxes", "scores", "classes"]
    got = _run(model, {"pixels": np.zeros((1, 320, 160, 3), np.uint8)})
    np.testing.assert_allclose(got["boxes"][0, 0], [20, 40, 100, 120], atol=1e-4)
    # outside the image: clipped to it
    clipped = _run(add_letterbox(_fixed_box_model([0, 0, 160, 160])),
                   {"pixels": np.zeros((1, 320, 160, 3), np.uint8)})  # fmt: skip
    np.testing.assert_allclose(clipped["boxes"][0, 0], [0, 0, 160, 320], atol=1e-4)
    meta = detection_metadata(model)["letterbox"]
    assert meta == {"size": [160, 160], "pad_value": 114, "scale": 1 / 255, "boxes_mapped": True,
                    "antialias": True}  # fmt: skip


def test_letterbox_pads_with_grey_and_scales() -> None:
    """The image the network sees: the pixels centred, 114 around them, times 1/255."""
    ident = _model(
        [helper.make_node("Identity", ["image"], ["out"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = add_letterbox(ident)
    pixels = RNG.integers(0, 256, (1, 8, 4, 3), dtype=np.uint8)
    out = _run(model, {"pixels": pixels})["out"]
    expected = np.full((1, 3, 8, 8), 114 / 255, np.float32)
    expected[:, :, :, 2:6] = pixels.transpose(0, 3, 1, 2) / 255
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_letterbox_on_a_non_image_is_refused() -> None:
    tokens = _model(
        [helper.make_node("Identity", ["ids"], ["y"])],
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, ["batch", 16])],
    )
    with pytest.raises(SurgeryError, match="is not an image input"):
        add_letterbox(tokens)
    dynamic = _model(
        [helper.make_node("Identity", ["image"], ["y"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["b", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 3, "h", "w"])],
    )
    with pytest.raises(SurgeryError, match="letterbox needs a fixed size"):
        add_letterbox(dynamic)
    with pytest.raises(SurgeryError, match="pad_value"):
        add_letterbox(_fixed_box_model([0, 0, 1, 1]), pad_value=300)


# --- matching and mAP ---------------------------------------------------------------------


def _dets(boxes, scores, classes) -> Detections:
    return Detections(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float),
                      np.asarray(classes))  # fmt: skip


def test_iou_matching_reports_each_kind_of_difference() -> None:
    ref = [_dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [0, 1, 0])]
    same = compare_detections(ref, ref)
    assert same.ok and same.matched == 3 and same.max_box_error == 0
    # a box moved by 1 px, another's class changed, one missing: all named
    cand = [_dets([[1, 0, 11, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 0])]
    c = compare_detections(ref, cand, "fp32")
    assert (c.matched, c.unmatched_reference, c.unmatched_candidate) == (1, 2, 1)
    assert c.max_box_error == 1.0 and not c.ok and "matched 33.3%" in c.reason
    assert "box error 1 px > 0.05" in c.reason
    empty = compare_detections([_dets([], [], [])], [_dets([], [], [])])
    assert empty.ok and "proves nothing" in empty.warning
    # boxes of no area (clipped to an edge): IoU 0, but corners within half a pixel match
    assert box_iou([[0, 5, 0, 9]], [[0, 5, 0, 9]])[0, 0] == 0
    flat = compare_detections(
        [_dets([[0, 5, 0, 9]], [0.5], [1])], [_dets([[0, 5.2, 0, 9]], [0.5], [1])]
    )
    assert flat.matched == 1
    apart = compare_detections(
        [_dets([[0, 5, 0, 9]], [0.5], [1])], [_dets([[0, 6, 0, 9]], [0.5], [1])]
    )
    assert apart.matched == 0


def test_validation_of_detections_is_by_iou_not_elementwise() -> None:
    """The same detections in another order and one extra padded slot: elementwise
    comparison would fail; IoU matching passes and says why it was used."""
    ref = pad_detections([_dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1])], 5)
    cand = pad_detections([_dets([[20, 20, 40, 40], [0, 0, 10, 10]], [0.8, 0.9], [1, 0])], 5)
    report = compare_results(ref, cand, "fp32")
    assert report.ok and report.detections is not None and report.outputs == ()
    assert "matched by IoU" in report.summary() and "compared elementwise" in report.summary()
    cand["num_detections"][0, 0] = 1
    assert not compare_results(ref, cand, "fp32").ok


def test_map_is_cocoeval_and_can_fail() -> None:
    pytest.importorskip("pycocotools")
    gt = [
        _dets([[0, 0, 10, 10], [20, 20, 40, 40]], [1, 1], [0, 0]),
        _dets([[5, 5, 25, 25]], [1], [1]),
    ]
    assert mean_average_precision(gt, gt) == pytest.approx(1.0)
    # class 0: one hit then a miss (recall stops at 1/2: 51 of 101 points); class 1 found
    pred = [_dets([[0, 0, 10, 10], [60, 60, 70, 70]], [0.9, 0.8], [0, 0]), gt[1]]
    assert mean_average_precision(pred, gt) == pytest.approx((51 / 101 + 1) / 2, abs=1e-6)
    nothing = [_dets([], [], []), _dets([], [], [])]
    assert mean_average_precision(nothing, gt) == 0.0


# --- TensorRT's EfficientNMS plugin, Triton --------------------------------------------------


def test_efficient_nms_replaces_the_subgraph() -> None:
    model = add_nms(_head_model(), score_threshold=0.2, iou_threshold=0.6, max_detections=30)
    trt = efficient_nms(model)
    ops = [n.op_type for n in trt.graph.node]
    assert "NonMaxSuppression" not in ops and ops.count("EfficientNMS_TRT") == 1
    node = next(n for n in trt.graph.node if n.op_type == "EfficientNMS_TRT")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    # the plugin's documented fields (TensorRT plugin/efficientNMSPlugin/README.md)
    assert attrs == {
        "plugin_version": b"1", "background_class": -1, "max_output_boxes": 30,
        "score_threshold": pytest.approx(0.2), "iou_threshold": pytest.approx(0.6),
        "score_activation": 0, "class_agnostic": 0, "box_coding": 0,
    }  # fmt: skip
    assert list(node.output) == ["num_detections", "boxes", "scores", "classes"]
    assert list(node.input) == ["nms/boxes", "nms/scores"]  # [B, N, 4] corners, [B, N, C]
    onnx.checker.check_model(trt, full_check=True)
    with pytest.raises(SurgeryError, match="no NMS"):
        efficient_nms(_head_model())


def test_triton_config_of_a_detector(tmp_path: Path) -> None:
    pytest.importorskip("tritonclient")
    from onnx_deploy.serve.triton import export_repository

    path = tmp_path / "det.onnx"
    onnx.save(add_nms(_head_model(), max_detections=25), str(path))
    result = export_repository(path, tmp_path / "repo")
    text = (tmp_path / "repo" / "det" / "config.pbtxt").read_text()
    assert 'name: "num_detections" data_type: TYPE_INT32 dims: [ 1 ]' in text
    assert 'name: "boxes" data_type: TYPE_FP32 dims: [ 25, 4 ]' in text
    assert 'name: "classes" data_type: TYPE_INT32 dims: [ 25 ]' in text
    assert any("first num_detections" in n for n in result.notes)


def test_metadata_is_json(tmp_path: Path) -> None:
    model = add_letterbox(_fixed_box_model([1, 2, 3, 4]), pad_value=0)
    raw = next(p.value for p in model.metadata_props if p.key == "onnx_deploy.detection")
    assert json.loads(raw)["letterbox"]["pad_value"] == 0
