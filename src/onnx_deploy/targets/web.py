"""The same ONNX file in a web page (onnxruntime-web) and in Node.js (onnxruntime-node).

``write_web_app`` writes a static folder (no build step, no network at run time): the
model, ``index.html`` and ``app.js``, ``signature.json`` (inputs and outputs, and how an
image input is fed), and onnxruntime-web's WebAssembly files copied from the installed npm
package with their version recorded. An image model gets a drawing canvas; preprocessing
lives in the graph (uint8 pixels in, notebook 07) or, when the graph has none, in the page
(``pixels * scale``). ``run_in_browser`` opens the page in Debian's headless Chromium with
playwright-core and returns what the page computed, and the pixels it fed, so the result
can be compared with Python onnxruntime. The npm packages are pinned in the repository's
``package.json`` and lockfile; ``npm ci --ignore-scripts`` installs them (onnxruntime-node's
install script would download GPU binaries from a host that is not reachable; its CPU
binary is in the package).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import WebError
from onnx_deploy.core.files import EXTERNAL_DATA_SUFFIX
from onnx_deploy.core.files import check_output_path
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import staged_folder
from onnx_deploy.core.results import Result
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.runners.node import ASSETS
from onnx_deploy.infer.runners.node import NPM_HINT
from onnx_deploy.infer.runners.node import node_executable
from onnx_deploy.infer.runners.node import node_modules
from onnx_deploy.infer.runners.node import npm_version

ORT_WEB_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
CHROMIUM = "/usr/bin/chromium"


def chromium_executable() -> str:
    path = os.environ.get("ONNX_DEPLOY_CHROMIUM", CHROMIUM)
    if not Path(path).exists():
        raise MissingExtraError(
            f"no Chromium at {path}: apt-get install chromium (Debian), or set "
            "ONNX_DEPLOY_CHROMIUM to a Chromium or Chrome binary"
        )
    return path


def missing_tools() -> list[str]:
    """What the browser and Node checks need and this machine lacks (empty: all there)."""
    out = []
    for check in (node_executable, node_modules, chromium_executable):
        try:
            check()
        except MissingExtraError as e:
            out.append(str(e))
    return out


# --- the page ------------------------------------------------------------------------------


def detector_image(
    inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], size: tuple[int, int]
) -> dict[str, Any] | None:
    """How the page feeds a detector: uint8 NHWC RGB pixels of any size (the graph
    letterboxes them), shown at ``size``; None unless the outputs are padded detections."""
    from onnx_deploy.infer.detections import detection_layout

    if len(inputs) != 1 or detection_layout([o.name for o in outputs]) != "padded":
        return None
    s = inputs[0]
    if s.dtype != "uint8" or len(s.shape) != 4 or s.shape[3] != 3:
        return None
    h = s.shape[1] if isinstance(s.shape[1], int) else size[0]
    w = s.shape[2] if isinstance(s.shape[2], int) else size[1]
    return {
        "input": s.name, "layout": "NHWC", "height": h, "width": w, "channels": 3,
        "dtype": "uint8", "scale": 1 / 255, "any_size": not isinstance(s.shape[1], int),
    }  # fmt: skip


def image_input(inputs: tuple[TensorSpec, ...]) -> dict[str, Any] | None:
    """How the page feeds an image: the input, its layout, size, channels, dtype and scale;
    None when the model has no single image-like input."""
    if len(inputs) != 1:
        return None
    s = inputs[0]
    if len(s.shape) != 4:
        return None
    dims = s.shape[1:]
    if s.dtype == "uint8" and isinstance(dims[2], int) and dims[2] in (1, 3):
        h, w, c, layout = dims[0], dims[1], dims[2], "NHWC"
    elif isinstance(dims[0], int) and dims[0] in (1, 3):
        c, h, w, layout = dims[0], dims[1], dims[2], "NCHW"
    else:
        return None
    if not (isinstance(h, int) and isinstance(w, int)) or s.dtype not in ("uint8", "float32"):
        return None
    return {
        "input": s.name, "layout": layout, "height": h, "width": w, "channels": c,
        "dtype": s.dtype, "scale": 1 / 255,
    }  # fmt: skip


@dataclass(frozen=True)
class WebApp(Result):
    folder: str
    model: str
    files: tuple[str, ...]
    ort_web: str
    image: dict[str, Any] | None
    size: int

    def summary(self) -> str:
        what = (
            "an image in, the boxes drawn on it"
            if self.image and self.image.get("any_size")
            else f"draw on a canvas ({self.image['width']}x{self.image['height']}, "
            f"{'pixels in the graph' if self.image['dtype'] == 'uint8' else 'scaled in the page'})"
            if self.image
            else "random inputs from the signature"
        )
        return (
            f"web       {self.folder}/index.html  (onnxruntime-web {self.ort_web}, "
            f"{human_size(self.size)} in all; {what})\n"
            f"  serve   onnx-deploy web {self.model} --out {self.folder} --serve  (or any static "
            "server; the files need http://, not file://)"
        )


def page_answer(outputs: Sequence[TensorSpec]) -> dict[str, str] | None:
    """Which output(s) the page shows as *the* prediction, from the names and the
    postprocessing ``onnx-deploy edit postprocess`` adds: ``labels`` with its ``scores``
    (top-k), else ``probabilities``, else the first float output with a class axis (logits,
    softmaxed by the page); ``None``: the page lists the outputs and predicts nothing."""
    from onnx_deploy.infer.detections import detection_layout

    by_name = {o.name: o for o in outputs}
    if detection_layout(list(by_name)) == "padded":
        return {"kind": "detections"}
    labels, scores = by_name.get("labels"), by_name.get("scores")
    if labels is not None and labels.dtype.startswith("int"):
        answer = {"kind": "top-k", "labels": labels.name}
        if scores is not None and scores.dtype.startswith("float"):
            answer["scores"] = scores.name
        return answer
    probs = by_name.get("probabilities")
    if probs is not None and probs.dtype.startswith("float"):
        return {"kind": "probabilities", "output": probs.name}
    for o in outputs:
        if o.dtype.startswith("float") and len(o.shape) == 2:
            return {"kind": "logits", "output": o.name}
    return None


def write_web_app(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    labels: list[str] | None = None,
    force: bool = False,
) -> WebApp:
    """The static page for ``model`` in ``out_dir`` (refused if ``out_dir/index.html``
    exists, unless ``force``)."""
    from onnx_deploy.infer.modelinfo import describe
    from onnx_deploy.infer.modelinfo import load_onnx
    from onnx_deploy.infer.modelinfo import require_runtime_loads

    info = describe(model)
    load_onnx(model)  # a clear error for a broken file, before anything is written
    require_runtime_loads(model, "no web page")
    out = Path(out_dir)
    check_output_path(out / "index.html", force=force)
    modules = node_modules()
    dist = modules / "onnxruntime-web" / "dist"
    missing = [f for f in ORT_WEB_FILES if not (dist / f).exists()]
    if missing:
        raise WebError(f"onnxruntime-web in {modules} lacks {missing}: {NPM_HINT}")
    if Path(str(model) + EXTERNAL_DATA_SUFFIX).exists():
        raise WebError(
            f"{model} keeps its weights in an external data file; the page loads one file: "
            "bring them inline first (onnx-deploy edit external MODEL --to inline)"
        )
    version = npm_version("onnxruntime-web")
    image = detector_image(info.inputs, info.outputs, _letterbox_size(model))
    image = image or image_input(info.inputs)
    # everything else first, the page last; other files in the folder stay
    with staged_folder(out, force=True, merge=True, last=("index.html",)) as staging:
        (staging / "ort").mkdir()
        for f in ORT_WEB_FILES:
            shutil.copyfile(dist / f, staging / "ort" / f)
        for notice in ("LICENSE", "LICENSE.txt", "README.md"):  # ship its license with it
            if (modules / "onnxruntime-web" / notice).exists():
                shutil.copyfile(modules / "onnxruntime-web" / notice, staging / "ort" / notice)
        shutil.copyfile(model, staging / "model.onnx")
        name = title or Path(model).name
        html = (ASSETS / "index.html").read_text().replace("__TITLE__", name)
        (staging / "index.html").write_text(html)
        shutil.copyfile(ASSETS / "app.js", staging / "app.js")
        preprocessing = (
            "Letterbox, NMS and the mapping back to the image's pixels are in the graph: the "
            "page sends raw RGB pixels and draws the boxes it gets."
            if image and image.get("any_size")
            else "Preprocessing is in the graph: the page sends raw uint8 pixels."
            if image and image["dtype"] == "uint8"
            else "The page scales pixels by 1/255; any other preprocessing must be in the graph."
            if image
            else ""
        )
        signature = {
            "model": "model.onnx",
            "inputs": [asdict(s) for s in info.inputs],
            "outputs": [asdict(s) for s in info.outputs],
            "image": image,
            "labels": labels,
            "outputsAreProbabilities": [o.name for o in info.outputs][:1] == ["probabilities"],
            "answer": page_answer(info.outputs),
            "preprocessing": preprocessing,
        }
        (staging / "signature.json").write_text(json.dumps(signature, indent=2))
        (staging / "versions.json").write_text(
            json.dumps({"onnxruntime-web": version, "files": list(ORT_WEB_FILES)}, indent=2)
        )
    files = tuple(sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()))
    size = sum(
        file_size(out / f) if f.endswith(".onnx") else (out / f).stat().st_size for f in files
    )
    return WebApp(str(out), str(model), files, version, image, size)


def _letterbox_size(model: str | os.PathLike[str]) -> tuple[int, int]:
    """The network size ``add_letterbox`` recorded (the page's canvas), else 320x320."""
    from onnx_deploy.convert.surgery.detection import detection_metadata
    from onnx_deploy.infer.modelinfo import load_onnx

    meta = detection_metadata(load_onnx(model, load_external_data=False)) or {}
    size = meta.get("letterbox", {}).get("size")
    return (int(size[0]), int(size[1])) if size else (320, 320)


# --- serving the folder and driving a browser ------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 - the base class declares it a plain dict
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".onnx": "application/octet-stream",
    }  # fmt: skip

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_server(folder: str | os.PathLike[str], port: int = 0) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 in a thread; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        raise WebError(f"port {port} on 127.0.0.1 is taken; pick another (0: a free one)") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _tensor_json(a: np.ndarray) -> dict[str, Any]:
    return {"dtype": str(a.dtype), "dims": list(a.shape), "data": a.ravel().tolist()}


@dataclass(frozen=True)
class BrowserRun:
    """What the page computed: outputs by name, the pixels it fed (canvas runs), the
    onnxruntime-web version and the browser's console."""

    outputs: dict[str, np.ndarray]
    pixels: np.ndarray | None
    version: str
    log: tuple[str, ...]
    screenshot: str | None
    predictions: tuple[str, ...] = ()  # the page's answer(s) as shown: one per model
    boxes: tuple[dict[str, float], ...] = ()  # a detector's boxes as the page drew them


def run_in_browser(
    app_dir: str | os.PathLike[str],
    *,
    feeds: Mapping[str, np.ndarray] | None = None,
    draw: np.ndarray | None = None,
    image: np.ndarray | None = None,
    screenshot: str | os.PathLike[str] | None = None,
    timeout: float = 180,
) -> BrowserRun:
    """Open the page in headless Chromium and run it: on ``feeds`` (injected as they are),
    by drawing ``draw`` (a height x width uint8 image) on the canvas, or, for a detector,
    on ``image`` (height x width x 3 uint8 RGB), whose boxes the page draws (``boxes``)."""
    if sum(x is not None for x in (feeds, draw, image)) != 1:
        raise WebError("give one of feeds, draw or image")
    if image is not None and (np.ndim(image) != 3 or np.shape(image)[2] != 3):
        raise WebError(f"image must be height x width x 3 (RGB), got shape {np.shape(image)}")
    node, chromium, modules = node_executable(), chromium_executable(), node_modules()
    with tempfile.TemporaryDirectory() as tmp, static_server(app_dir) as url:
        request = Path(tmp) / "request.json"
        result = Path(tmp) / "result.json"
        if image is not None:
            rgb = np.asarray(image, np.uint8)
            payload: dict[str, Any] = {
                "image": {"data": rgb.ravel().tolist(), "height": rgb.shape[0],
                          "width": rgb.shape[1]}
            }  # fmt: skip
        elif draw is not None:
            payload = {"draw": np.asarray(draw, np.uint8).ravel().tolist()}
        else:
            payload = {"feeds": {k: _tensor_json(np.asarray(v)) for k, v in (feeds or {}).items()}}
        request.write_text(json.dumps(payload))
        cmd = [node, str(ASSETS / "browser_run.cjs"), url, str(request), str(result),
               str(screenshot or ""), chromium]  # fmt: skip
        env = {**os.environ, "NODE_PATH": str(modules)}
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WebError(f"the browser did not finish within {timeout:.0f} s") from None
        if not result.exists():
            raise WebError(f"the browser driver failed: {(proc.stderr or proc.stdout)[-400:]}")
        data = json.loads(result.read_text())
    if "error" in data:
        raise WebError(f"in the browser: {data['error']} (console: {data.get('log', [])[-3:]})")
    outs = data["outputs"]
    pixels, boxes = None, ()
    if draw is not None or image is not None:
        pixels = np.asarray(outs["pixels"], np.uint8)
        boxes = tuple(outs.get("boxes") or ())
        outs = outs["outputs"]
    arrays = {
        k: np.asarray(v["data"], dtype=_np_dtype(v["dtype"])).reshape(v["dims"])
        for k, v in outs.items()
    }
    return BrowserRun(arrays, pixels, str(data.get("version")), tuple(data.get("log", [])),
                      str(screenshot) if screenshot else None,
                      tuple(data.get("predictions", [])), boxes)  # fmt: skip


def _np_dtype(ort_type: str) -> Any:
    return {"bool": np.bool_}.get(ort_type, np.dtype(ort_type))
