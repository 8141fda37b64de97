"""Beyond Python: onnxruntime-node, a real browser (Chromium + onnxruntime-web) and the ORT
format, each compared with Python onnxruntime. CI installs Node's packages (`npm ci
--ignore-scripts`) and Debian's chromium; elsewhere these tests skip saying what is missing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_deploy.cli import main
from onnx_deploy.convert.export import export_model
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.teach.digits import load_digits_model
from onnx_deploy.teach.digits import load_digits_split

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _need(*what: str) -> None:
    from onnx_deploy.targets.web import missing_tools

    missing = [m for m in missing_tools() if any(w in m.lower() for w in what)]
    if missing:
        pytest.skip("; ".join(missing))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    data = load_digits_split()
    path = tmp_path_factory.mktemp("digits") / "digits.onnx"
    export_model(load_digits_model(), torch.from_numpy(data.x_test[:2]), path)
    return path, data


def _python(model: Path, feeds: dict) -> dict:
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model, "cpu") as r:
        return r.infer(feeds)


def test_node_runner_is_a_runner(digits) -> None:
    _need("node")
    from onnx_deploy.infer.compare import compare
    from onnx_deploy.infer.runners.node import NodeRunner
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    model, data = digits
    report = compare(OnnxRuntimeRunner(model, "cpu"), NodeRunner(model), [data.x_test[:16]])
    assert report.ok and report.outputs[0].top1_agreement == 1.0


def test_node_runner_with_int64_and_bool_inputs(tmp_path: Path) -> None:
    _need("node")
    from onnx_deploy.core.signature import Signature
    from onnx_deploy.infer.runners.node import NodeRunner

    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(50, 4)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (self.emb(ids) * mask.unsqueeze(-1)).sum(1)

    sig = Signature.parse(["ids:int64:batch,seq:0..50", "mask:bool:batch,seq"])
    path = tmp_path / "text.onnx"
    export_model(Text().eval(), None, path, signature=sig)
    feeds = sig.examples({"batch": 3, "seq": 7})
    with NodeRunner(path) as node:
        got = node.infer(feeds)
    want = _python(path, feeds)
    np.testing.assert_allclose(next(iter(got.values())), next(iter(want.values())), atol=1e-6)


def test_the_page_in_chromium_matches_python(digits, tmp_path: Path) -> None:
    _need("node", "chromium")
    from onnx_deploy.targets.web import run_in_browser
    from onnx_deploy.targets.web import write_web_app

    model, data = digits
    app = write_web_app(model, tmp_path / "web")
    assert (
        json.loads((tmp_path / "web" / "versions.json").read_text())["onnxruntime-web"]
        == app.ort_web
    )
    assert app.image == {"input": "x", "layout": "NCHW", "height": 8, "width": 8, "channels": 1,
                         "dtype": "float32", "scale": 1 / 255}  # fmt: skip
    x = data.x_test[:8]
    shot = tmp_path / "shot.png"
    run = run_in_browser(app.folder, feeds={"x": x}, screenshot=shot)
    want = _python(model, {"x": x})["linear"]
    np.testing.assert_allclose(run.outputs["linear"], want, atol=1e-4, rtol=1e-3)
    assert (run.outputs["linear"].argmax(1) == want.argmax(1)).all()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a real test digit drawn on the canvas: the page returns the pixels it fed
    digit = np.round(data.x_test[0, 0] * 255).astype(np.uint8)
    drawn = run_in_browser(app.folder, draw=digit)
    fed = drawn.pixels.reshape(1, 1, 8, 8).astype(np.float32) / 255
    want = _python(model, {"x": fed})["linear"]
    np.testing.assert_allclose(drawn.outputs["linear"], want, atol=1e-4, rtol=1e-3)
    assert drawn.outputs["linear"].argmax() == data.y_test[0]
    assert drawn.predictions == (f"{data.y_test[0]}  (p = {_softmax_max(want):.3f})",), (
        "one answer, the logits' argmax"
    )


def _softmax_max(logits: np.ndarray) -> float:
    e = np.exp(logits - logits.max())
    return float((e / e.sum()).max())


def test_the_page_shows_one_answer_for_a_top_k_model(digits, tmp_path: Path) -> None:
    """A served model (probabilities, scores, labels): the page's one prediction is the
    top label with its score, not a second answer made from the scores output."""
    _need("node", "chromium")
    from onnx_deploy.convert.surgery import edit_file
    from onnx_deploy.targets.web import run_in_browser
    from onnx_deploy.targets.web import write_web_app

    model, data = digits
    with_pre = edit_file(model, tmp_path / "pixels.onnx", "preprocess").output_path
    served = edit_file(with_pre, tmp_path / "served.onnx", "postprocess", top_k=3).output_path
    app = write_web_app(served, tmp_path / "web")
    digit = np.round(data.x_test[0, 0] * 255).astype(np.uint8)
    run = run_in_browser(app.folder, draw=digit)
    label, score = int(run.outputs["labels"][0, 0]), float(run.outputs["scores"][0, 0])
    assert run.predictions == (f"{label} (p = {score:.3f})",) and label == data.y_test[0]


def test_page_answer_from_names_and_postprocessing() -> None:
    from onnx_deploy.core.specs import TensorSpec
    from onnx_deploy.targets.web import page_answer

    served = (TensorSpec("probabilities", "float32", ("batch", 10)),
              TensorSpec("scores", "float32", ("batch", 3)),
              TensorSpec("labels", "int64", ("batch", 3)))  # fmt: skip
    assert page_answer(served) == {"kind": "top-k", "labels": "labels", "scores": "scores"}
    assert page_answer(served[:1]) == {"kind": "probabilities", "output": "probabilities"}
    assert page_answer((TensorSpec("linear", "float32", ("batch", 10)),)) == {
        "kind": "logits",
        "output": "linear",
    }
    assert page_answer((TensorSpec("boxes", "float32", ("batch", 100, 4)),)) is None


def test_pixels_in_the_graph_and_the_cli(digits, tmp_path: Path, capsys) -> None:
    _need("node", "chromium")
    from onnx_deploy.convert.surgery import edit_file

    model, _ = digits
    pixels_model = edit_file(model, tmp_path / "pixels.onnx", "preprocess").output_path
    out = tmp_path / "targets"
    assert main(["targets", str(pixels_model), "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["target"] for c in result["checks"]] == ["node", "browser", "ort"]
    assert all(c["status"] == "ok" and c["same_top1"] for c in result["checks"]), result
    signature = json.loads((out / "web" / "signature.json").read_text())
    assert signature["image"]["dtype"] == "uint8" and signature["image"]["layout"] == "NHWC"
    assert main(["web", str(pixels_model), "--out", str(out / "web")]) == 1
    assert "already exists" in capsys.readouterr().err


def test_web_serve_answers_on_loopback(digits, tmp_path: Path) -> None:
    _need("onnxruntime-web")
    model, _ = digits
    cmd = [sys.executable, "-m", "onnx_deploy", "web", str(model), "--out", str(tmp_path / "w"),
           "--serve", "--port", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = ""
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("serving"):
                url = line.split()[1]
                break
        assert url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "ort/ort.wasm.min.js" in page
        with urllib.request.urlopen(url + "ort/ort-wasm-simd-threaded.wasm", timeout=10) as wasm:
            assert wasm.headers["Content-Type"] == "application/wasm"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_ort_format(digits, tmp_path: Path) -> None:
    from onnx_deploy.targets.edge import to_ort_format

    model, data = digits
    r = to_ort_format(model, tmp_path / "ort", inputs={"x": data.x_test[:16]}, load_repeats=2)
    assert r.ok and r.same_top1 and r.max_abs < 1e-4
    assert r.ort_path.endswith("digits.with_runtime_opt.ort") and Path(r.config_path).exists()
    assert {"Conv", "Gemm"} <= set(r.operators)
    with pytest.raises(OutputExistsError):
        to_ort_format(model, tmp_path / "ort")


def test_external_data_is_refused_by_the_page(tmp_path: Path) -> None:
    _need("onnxruntime-web")
    from onnx_deploy.convert.surgery import edit_file
    from onnx_deploy.targets.web import WebError
    from onnx_deploy.targets.web import write_web_app

    src = tmp_path / "mlp.onnx"
    export_model(torch.nn.Linear(32, 32).eval(), torch.randn(2, 32), src)
    ext = edit_file(src, tmp_path / "ext.onnx", "external", external=True).output_path
    with pytest.raises(WebError, match="external data"):
        write_web_app(ext, tmp_path / "web")
