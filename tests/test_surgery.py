"""Graph surgery: each edit keeps the model loadable and its numbers, bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from onnx_deploy.cli import main
from onnx_deploy.convert import surgery as S
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.modelinfo import graph_io


def _run(path_or_model, feeds):
    data = (
        path_or_model.SerializeToString() if hasattr(path_or_model, "graph") else str(path_or_model)
    )
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _x(batch: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 16, 16)).astype(np.float32)


def test_the_ir_version_trap_and_its_fix() -> None:
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    limit = S.ort_max_ir_version()
    if model.ir_version > limit:  # onnx 1.23 writes 14, onnxruntime 1.31 reads 13
        with pytest.raises(Exception, match=f"max supported IR version: {limit}"):
            _run(model, {"x": np.ones(2, np.float32)})
    else:  # no trap with these versions: the model runs as written
        assert _run(model, {"x": np.ones(2, np.float32)})[0].tolist() == [1, 1]
    S.fix_ir_version(model)
    assert model.ir_version <= limit
    assert _run(model, {"x": np.array([-1, 2], np.float32)})[0].tolist() == [0, 2]


def test_rename_keeps_outputs_and_refuses_clashes(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "renamed.onnx"
    model = onnx.load(tiny_onnx)
    (inp,), (outp,) = graph_io(model)
    r = S.edit_file(tiny_onnx, out, "rename", mapping={inp.name: "image", outp.name: "logits"})
    assert r.ok and r.check.max_abs == 0.0
    assert [s.name for s in r.inputs_after] == ["image"]
    assert [s.name for s in r.outputs_after] == ["logits"]
    assert r.ir_version <= S.ort_max_ir_version()
    np.testing.assert_array_equal(
        _run(out, {"image": _x()})[0], _run(tiny_onnx, {inp.name: _x()})[0]
    )
    internal = model.graph.node[0].output[0]
    with pytest.raises(S.SurgeryError, match="already exists"):
        S.rename(model, {inp.name: internal})
    with pytest.raises(S.SurgeryError, match="not a graph input or output"):
        S.rename(model, {"nope": "x2"})
    with pytest.raises(OutputExistsError):
        S.edit_file(tiny_onnx, out, "rename", mapping={inp.name: "image"})


def test_dims_fix_and_symbolic(tiny_onnx: Path, tmp_path: Path) -> None:
    fixed = S.edit_file(tiny_onnx, tmp_path / "b1.onnx", "dim", dims=["batch=1"])
    assert fixed.inputs_after[0].shape[0] == 1 and fixed.outputs_after[0].shape[0] == 1
    name = fixed.inputs_after[0].name
    back = S.edit_file(tmp_path / "b1.onnx", tmp_path / "bn.onnx", "dim", dims=[f"{name}[0]=n"])
    assert back.inputs_after[0].shape[0] == "n"
    assert _run(tmp_path / "bn.onnx", {name: _x(3)})[0].shape[0] == 3
    with pytest.raises(S.SurgeryError, match="did you mean 'batch'"):
        S.set_dims(onnx.load(tiny_onnx), ["bach=1"])
    with pytest.raises(S.SurgeryError, match="out of range"):
        S.set_dims(onnx.load(tiny_onnx), [f"{name}[9]=1"])
    with pytest.raises(S.SurgeryError, match="at least 1"):
        S.parse_dim_edit("batch=0")


def test_a_size_baked_into_the_graph_is_caught(tmp_path: Path) -> None:
    import torch

    from onnx_deploy.convert.export import export_model

    class Flat(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(1, 2, 2)  # the batch is baked in

    src = tmp_path / "flat.onnx"
    export_model(Flat().eval(), torch.randn(1, 4), src, dynamic_batch=False)
    name = graph_io(onnx.load(src))[0][0].name
    with pytest.raises(S.SurgeryError, match="baked into it"):
        S.edit_file(src, tmp_path / "dyn.onnx", "dim", dims=[f"{name}[0]=batch"])
    assert not (tmp_path / "dyn.onnx").exists()


def test_expose_and_extract(tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(tiny_onnx)
    tensors = S.list_tensors(model)
    relu = next(name for name, op, _ in tensors if op == "Relu")
    r = S.edit_file(tiny_onnx, tmp_path / "exposed.onnx", "expose", tensors=[relu])
    assert [s.name for s in r.outputs_after][-1] == relu
    assert r.outputs_after[-1].shape[1] == 8
    last = graph_io(model)[1][0].name
    sub = S.edit_file(tiny_onnx, tmp_path / "head.onnx", "extract", inputs=[relu], outputs=[last])
    assert [s.name for s in sub.inputs_after] == [relu] and sub.check.ok
    with pytest.raises(S.SurgeryError, match="no tensor named 'relu_99'"):
        S.expose(model, ["relu_99"])
    with pytest.raises(S.SurgeryError, match="already a graph output"):
        S.expose(model, [last])
    first = tensors[0][0]  # computed before the Relu: the cut is the wrong way round
    with pytest.raises(S.SurgeryError, match="depend on"):
        S.extract(model, [relu], [first])


def test_opset_conversion(tiny_onnx: Path, tmp_path: Path) -> None:
    r = S.edit_file(tiny_onnx, tmp_path / "o21.onnx", "opset", opset=21)
    assert r.opset == 21 and r.check.ok
    with pytest.raises(S.SurgeryError, match="version converter"):
        S.convert_opset(onnx.load(tiny_onnx), 7)


def test_preprocessing_takes_raw_pixels(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "pixels.onnx"
    r = S.edit_file(
        tiny_onnx, out, "preprocess", mean=S.IMAGENET_MEAN, std=S.IMAGENET_STD, resize=16
    )
    assert r.check.ok and r.inputs_after[0].dtype == "uint8"
    assert r.inputs_after[0].shape[1:] == ("height", "width", 3)
    # raw pixels of another size, through the graph vs numpy's crop + normalise
    pixels = np.random.default_rng(1).integers(0, 256, (2, 16, 20, 3), dtype=np.uint8)
    x = S.reference_preprocess(pixels, crop=(16, 16), mean=S.IMAGENET_MEAN, std=S.IMAGENET_STD)
    name = graph_io(onnx.load(tiny_onnx))[0][0].name
    np.testing.assert_allclose(
        _run(out, {"pixels": pixels})[0], _run(tiny_onnx, {name: x})[0], atol=1e-4
    )


def test_preprocessing_resizes_like_torchvision(tmp_path: Path) -> None:
    import torch
    import torchvision.transforms.v2.functional as F

    spec = TensorSpec("image", "float32", ("batch", 3, 24, 24))
    pre = S.preprocessing_graph(spec, resize=32, crop=(24, 24))
    yy, xx = np.mgrid[0:40, 0:60]
    smooth = (127 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.uint8)
    pixels = np.stack([smooth, 255 - smooth, smooth // 2], -1)[None]
    got = _run(pre, {"pixels": pixels})[0]
    t = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
    want = F.center_crop(F.resize(t, 32, antialias=True), [24, 24]).numpy() / 255
    assert got.shape == (1, 3, 24, 24)
    assert np.abs(got - want).max() < 0.02  # antialias filters differ slightly (notebook 07)


def test_preprocessing_refuses_what_is_not_an_image(tmp_path: Path) -> None:
    import torch

    from onnx_deploy.convert.export import export_model

    src = tmp_path / "mlp.onnx"
    export_model(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4), src)
    with pytest.raises(S.SurgeryError, match="not an image input"):
        S.add_preprocessing(onnx.load(src))


def test_postprocessing_softmax_topk(tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "post.onnx"
    r = S.edit_file(tiny_onnx, out, "postprocess", top_k=3, keep_logits=True)
    assert [s.name for s in r.outputs_after][1:] == ["probabilities", "scores", "labels"]
    name = r.inputs_after[0].name
    logits, probs, scores, labels = _run(out, {name: _x()})
    assert np.allclose(probs.sum(1), 1, atol=1e-6)
    assert np.allclose(scores[:, 0], probs.max(1))
    assert (labels[:, 0] == logits.argmax(1)).all() and labels.dtype == np.int64
    with pytest.raises(S.SurgeryError, match="top_k must be between 1 and 5"):
        S.add_postprocessing(onnx.load(tiny_onnx), top_k=6)


def test_merge_pre_main_post_and_mismatches(tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(tiny_onnx)
    (inp,), (outp,) = graph_io(model)
    pre = S.preprocessing_graph(inp)
    post = S.postprocessing_graph(outp, top_k=1)
    onnx.save(pre, tmp_path / "pre.onnx")
    onnx.save(post, tmp_path / "post.onnx")
    a = S.edit_file(
        tiny_onnx, tmp_path / "a.onnx", "merge", other=tmp_path / "pre.onnx", first=True
    )
    b = S.edit_file(tmp_path / "a.onnx", tmp_path / "b.onnx", "merge", other=tmp_path / "post.onnx")
    assert a.check.ok and b.check.ok
    assert [s.name for s in b.inputs_after] == ["pixels"]
    assert [s.name for s in b.outputs_after] == ["probabilities", "scores", "labels"]
    with pytest.raises(S.SurgeryError, match="do not fit"):
        S.merge(model, pre)
    with pytest.raises(S.SurgeryError, match="not an output of the first model"):
        S.merge(pre, model, {"nope": inp.name})


def test_external_data_round_trip(tmp_path: Path) -> None:
    import torch

    from onnx_deploy.convert.export import export_model

    src = tmp_path / "mlp.onnx"
    export_model(torch.nn.Linear(32, 32).eval(), torch.randn(2, 32), src)  # 4 KB of weights
    ext = tmp_path / "ext.onnx"
    S.edit_file(src, ext, "external", external=True)
    assert (tmp_path / "ext.onnx.data").exists()
    inline = tmp_path / "inline.onnx"
    r = S.edit_file(ext, inline, "external", external=False)
    assert r.check.max_abs == 0.0 and not (tmp_path / "inline.onnx.data").exists()


def test_cli_edit_and_inspect_tensors(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = graph_io(onnx.load(tiny_onnx))[0][0].name
    out = tmp_path / "r.onnx"
    assert main(["edit", "rename", str(tiny_onnx), f"{name}=image", "-o", str(out)]) == 0
    assert "after   in  image: float32[batch, 3, 16, 16]" in capsys.readouterr().out
    assert main(["edit", "rename", str(tiny_onnx), f"{name}=image", "-o", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["edit", "postprocess", str(out), "--top-k", "2", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] and payload["outputs_after"][-1]["name"] == "labels"
    assert (tmp_path / "r.postprocess.onnx").exists()
    assert main(["edit", "expose", str(tiny_onnx), "relu_9", "-o", str(tmp_path / "e.onnx")]) == 1
    err = capsys.readouterr().err
    assert "no tensor named 'relu_9'" in err and "Traceback" not in err
    assert main(["inspect", str(tiny_onnx), "--tensors"]) == 0
    assert "Relu" in capsys.readouterr().out
