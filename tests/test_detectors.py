"""Real detectors through the CLI alone: the project's trained one-stage detector and a
torchvision SSDlite, exported, given NMS and letterbox, validated by IoU; mAP on labelled
images; the page draws Python's boxes; TensorRT's plugin build on the recording fake."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnx_deploy.cli import main
from onnx_deploy.infer.detections import compare_detections
from onnx_deploy.infer.detections import mean_average_precision
from onnx_deploy.infer.detections import split_detections

pytest.importorskip("torchvision")


def _session_outputs(path: Path, feeds: dict) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


@pytest.fixture(scope="module")
def shapes_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The project detector through the CLI: export, NMS, letterbox."""
    d = tmp_path_factory.mktemp("shapes")
    raw, nms, final = d / "raw.onnx", d / "nms.onnx", d / "final.onnx"
    assert main(["export", "project:shapes_detector", "-o", str(raw)]) == 0
    assert main(["edit", "postprocess", "--nms", str(raw), "-o", str(nms), "--classes", "3"]) == 0
    assert main(["edit", "preprocess", "--letterbox", str(nms), "-o", str(final)]) == 0
    return {"raw": raw, "nms": nms, "final": final}


def test_the_raw_export_is_not_deployable_and_the_edits_make_it(shapes_files, capsys) -> None:
    raw = onnx.load(str(shapes_files["raw"]))
    assert len(raw.graph.output) == 3  # the head and two feature maps, generated names
    final = onnx.load(str(shapes_files["final"]))
    assert [i.name for i in final.graph.input] == ["pixels"]
    assert [o.name for o in final.graph.output] == ["num_detections", "boxes", "scores", "classes"]
    ops = {n.op_type for n in final.graph.node}
    assert {"NonMaxSuppression", "Resize", "Pad"} <= ops


def test_the_final_graph_finds_the_labelled_shapes(shapes_files) -> None:
    """Pixels of any size in, boxes in those pixels out: a scene 160 high and 100 wide
    (letterboxed) and the same scene at twice the size (resized) find the labelled boxes."""
    pytest.importorskip("pycocotools")
    from onnx_deploy.teach.shapes import draw_scene

    rng = np.random.default_rng(5)
    images, truth = [], []
    for _ in range(12):
        img, t = draw_scene(rng, 160, 100)
        images.append(img)
        truth.append(t)
    found = [split_detections(_session_outputs(shapes_files["final"], {"pixels": im[None]}))[0]
             for im in images]  # fmt: skip
    assert mean_average_precision(found, truth) > 0.8
    big = [np.repeat(np.repeat(im, 2, 0), 2, 1) for im in images]
    found2 = [split_detections(_session_outputs(shapes_files["final"], {"pixels": im[None]}))[0]
              for im in big]  # fmt: skip
    doubled = [type(t)(t.boxes * 2, t.scores, t.classes) for t in truth]
    assert mean_average_precision(found2, doubled) > 0.8


def test_validate_uses_iou_matching_and_says_why(shapes_files, tmp_path, capsys) -> None:
    import shutil

    copy = tmp_path / "copy.onnx"
    shutil.copyfile(shapes_files["nms"], copy)
    data = tmp_path / "images.npz"
    from onnx_deploy.teach.shapes import make_shapes

    np.savez(data, x=make_shapes(16, 3).chw())
    code = main(["validate", str(copy), "--reference", str(shapes_files["nms"]),
                 "--inputs", str(data)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "matched by IoU" in out and "compared elementwise" in out
    assert "100.0%" in out


def test_the_served_graph_validates_against_pytorch(shapes_files, tmp_path, capsys) -> None:
    """validate's PyTorch side of a served detector: the same letterbox in torch, the model,
    torchvision's batched_nms; scenes narrower than the network (padding, no resize)."""
    from onnx_deploy.teach.shapes import draw_scene

    rng = np.random.default_rng(0)
    data = tmp_path / "narrow.npz"
    np.savez(data, pixels=np.stack([draw_scene(rng, 160, 100)[0] for _ in range(8)]))
    code = main(["validate", str(shapes_files["final"]), "--reference", "project:shapes_detector",
                 "--inputs", str(data)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "matched by IoU" in out and "unmatched 0 reference / 0 candidate" in out


def test_optimize_reports_map_for_each_precision(shapes_files, tmp_path) -> None:
    pytest.importorskip("pycocotools")
    from onnx_deploy.teach.shapes import make_shapes
    from onnx_deploy.workflows.optimize import OptimizeConfig
    from onnx_deploy.workflows.optimize import optimize

    test, cal = make_shapes(48, 1), make_shapes(32, 2)
    config = OptimizeConfig(
        calibration={"pixels": cal.images}, validation={"pixels": test.images},
        labels=list(test.targets), plots=False, iters=3, rounds=3, budget_s=0, batch_sizes=(1,),
    )  # fmt: skip
    card = optimize(shapes_files["final"], tmp_path / "opt", config)
    fp32, fp16, int8 = (card.candidate(n) for n in ("FP32", "FP16", "INT8 static"))
    for v in (fp32, fp16, int8):
        assert v.status == "ok" and 0.5 < v.accuracy <= 1.0, (v.name, v.reason, v.accuracy)
    assert fp16.accuracy == pytest.approx(fp32.accuracy, abs=0.02)
    assert "mAP@0.5" in card.data and card.chosen in {c.name for c in card.candidates}


def test_ssdlite_through_the_cli(tmp_path, capsys) -> None:
    """torchvision's SSDlite: the head + anchor decoding exports with dynamo (the whole
    model does not); NMS and letterbox added as ONNX; the NMS edit checks itself against
    numpy NMS by IoU matching."""
    raw, nms, final = tmp_path / "ssd.onnx", tmp_path / "ssd.nms.onnx", tmp_path / "ssd.final.onnx"
    assert main(["export", "torchvision:ssdlite320_mobilenet_v3_large", "-o", str(raw)]) == 0
    out = capsys.readouterr().out
    assert "candidate_boxes" in out and "class_scores" in out and "PASS" in out
    assert main(["edit", "postprocess", "--nms", str(raw), "-o", str(nms),
                 "--score-threshold", "0.02", "--max-detections", "50"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "91 classes" in out and "matched by IoU" in out
    assert main(["edit", "preprocess", "--letterbox", str(nms), "-o", str(final)]) == 0
    pixels = np.random.default_rng(0).integers(0, 256, (1, 240, 320, 3), dtype=np.uint8)
    got = _session_outputs(final, {"pixels": pixels})
    assert got["boxes"].shape == (1, 50, 4)
    n = int(got["num_detections"][0, 0])
    assert n > 0 and got["boxes"][0, :n, 2].max() <= 320 and got["boxes"][0, :n, 3].max() <= 240


def test_ssdlite_head_and_nms_equal_torchvisions_own_detections() -> None:
    """The exportable part (normalisation, backbone, head, anchor decoding) plus
    torchvision's batched_nms gives torchvision's own SSDlite post-processing: the same
    boxes, scores and labels (class index = torchvision's label)."""
    import torch
    import torchvision

    from onnx_deploy.convert.detectors import AnchorDetector
    from onnx_deploy.infer.detections import Detections
    from onnx_deploy.sources.torchvision import recalibrate_batchnorm

    torch.manual_seed(0)
    full = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, score_thresh=0.0, topk_candidates=100000,
        detections_per_img=50,
    ).eval()  # fmt: skip
    part = AnchorDetector(full, (320, 320))
    recalibrate_batchnorm(part, (3, 320, 320))  # varied scores (random ones tie at 1/91)
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        want, got = full(list(x))[0], part(x)
    boxes, scores = got["candidate_boxes"][0], got["class_scores"][0]
    anchor, cls = torch.nonzero(scores > 0, as_tuple=True)
    keep = torchvision.ops.batched_nms(boxes[anchor], scores[anchor, cls], cls, full.nms_thresh)
    keep = keep[:50]
    mine = Detections(boxes[anchor][keep].double().numpy(), scores[anchor, cls][keep].double().numpy(),
                      cls[keep].numpy())  # fmt: skip
    theirs = Detections(want["boxes"].double().numpy(), want["scores"].double().numpy(),
                        want["labels"].numpy())  # fmt: skip
    report = compare_detections([theirs], [mine], "same-graph")
    assert report.ok and report.matched == 50, report.line()


def test_the_page_draws_pythons_boxes(shapes_files, tmp_path) -> None:
    from onnx_deploy.targets.web import missing_tools

    if missing := missing_tools():
        pytest.skip("; ".join(missing))
    from onnx_deploy.targets.web import run_in_browser
    from onnx_deploy.targets.web import write_web_app
    from onnx_deploy.teach.shapes import CLASSES
    from onnx_deploy.teach.shapes import draw_scene

    app = write_web_app(shapes_files["final"], tmp_path / "web", labels=list(CLASSES))
    assert app.image["any_size"] and (app.image["height"], app.image["width"]) == (160, 160)
    img, _ = draw_scene(np.random.default_rng(11), 160, 120)
    run = run_in_browser(app.folder, image=img, screenshot=tmp_path / "page.png")
    assert (run.pixels.reshape(img.shape) == img).all(), "the page fed the image's own pixels"
    py = split_detections(_session_outputs(shapes_files["final"], {"pixels": img[None]}))[0]
    drawn = np.array([[b["x1"], b["y1"], b["x2"], b["y2"]] for b in run.boxes]).reshape(-1, 4)
    assert len(py) > 0 and len(run.boxes) == len(py)
    np.testing.assert_allclose(drawn, py.boxes, atol=1e-3)
    assert [b["cls"] for b in run.boxes] == py.classes.tolist()
    assert run.predictions == (f"{len(py)} detection{'s' if len(py) != 1 else ''}",)


def test_fp16_detections_match_fp32_by_iou(shapes_files, tmp_path) -> None:
    from onnx_deploy.passes import run_pass
    from onnx_deploy.teach.shapes import make_shapes

    fp16 = tmp_path / "fp16.onnx"
    run_pass("fp16", shapes_files["final"], fp16)  # validated by IoU before it is written
    images = make_shapes(8, 4).images
    ref = split_detections(_session_outputs(shapes_files["final"], {"pixels": images}))
    got = split_detections(_session_outputs(fp16, {"pixels": images}))
    report = compare_detections(ref, got, "fp16")
    assert report.ok and report.matched > 10, report.line()
