"""onnxruntime-node (native, CPU) behind the runner interface, so ``compare`` and
``benchmark`` take it like any other backend.

The runner starts one Node.js process per session (``data/web/ort_node_server.cjs``),
which loads the model with onnxruntime-node and answers one JSON line per request, tensors
as base64 bytes; ``close()`` ends it. Node, and the npm package pinned in the repository's
``package.json`` (``npm ci --ignore-scripts``), must be installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import WebError
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.files import CHECKOUT
from onnx_deploy.core.files import PACKAGE_DATA
from onnx_deploy.infer.runners.base import Runner

ASSETS = PACKAGE_DATA / "web"
NPM_HINT = (
    "install the pinned npm packages from the repository's package.json: `npm ci "
    "--ignore-scripts` (or set ONNX_DEPLOY_NODE_MODULES to a node_modules folder holding "
    "onnxruntime-web, onnxruntime-node and playwright-core)"
)


def node_modules() -> Path:
    """The node_modules folder with the pinned packages: ``$ONNX_DEPLOY_NODE_MODULES``,
    ``./node_modules``, or the checkout this package was installed from."""
    env = os.environ.get("ONNX_DEPLOY_NODE_MODULES")
    candidates = [Path(env)] if env else []
    candidates += [
        Path.cwd() / "node_modules",
        CHECKOUT / "node_modules",
    ]
    for c in candidates:
        if (c / "onnxruntime-web").is_dir():
            return c
    raise MissingExtraError(f"no node_modules with onnxruntime-web found: {NPM_HINT}")


def npm_version(package: str) -> str:
    return str(json.loads((node_modules() / package / "package.json").read_text())["version"])


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise MissingExtraError("Node.js is not installed: apt-get install nodejs (Node 18+)")
    return node


class NodeRunner(Runner):
    """Run an ONNX file with onnxruntime-node in a Node.js child process."""

    backend = "onnxruntime-node"

    def __init__(self, model: str | os.PathLike[str], name: str | None = None) -> None:
        from onnx_deploy.infer.modelinfo import describe

        self.model = Path(model)
        self._info = describe(self.model)
        self._inputs, self._outputs = self._info.inputs, self._info.outputs
        super().__init__(name or f"{self.model.name} [node]", "cpu")
        self._process: subprocess.Popen[str] | None = None
        self.version = ""

    def _activate(self) -> None:
        env = {**os.environ, "NODE_PATH": str(node_modules())}
        self._process = subprocess.Popen(
            [node_executable(), str(ASSETS / "ort_node_server.cjs"), str(self.model)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env,
        )  # fmt: skip
        hello = self._read()
        if not hello.get("ready"):
            self._deactivate()
            raise WebError(f"onnxruntime-node could not load {self.model}: {hello.get('error')}")
        self.version = str(hello.get("version", ""))

    def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            err = self._process.stderr.read() if self._process.stderr else ""
            raise WebError(f"the Node.js process ended: {err.strip()[-400:] or 'no output'}")
        return dict(json.loads(line))

    def _deactivate(self) -> None:
        if self._process is not None:
            if self._process.stdin:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        assert self._process is not None and self._process.stdin is not None
        request = {
            name: {
                "dtype": str(a.dtype) if a.dtype != np.bool_ else "bool",
                "dims": list(a.shape),
                "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode(),
            }
            for name, a in feeds.items()
        }
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply = self._read()
        if "error" in reply:
            from onnx_deploy.core.errors import InputMismatchError

            raise InputMismatchError(f"onnxruntime-node: {reply['error']}")
        out = {}
        for name, t in reply["outputs"].items():
            dtype = np.bool_ if t["dtype"] == "bool" else np.dtype(t["dtype"])
            out[name] = np.frombuffer(base64.b64decode(t["data"]), dtype=dtype).reshape(t["dims"])
        return out

    def environment(self) -> dict[str, Any]:
        return {"onnxruntime-node": self.version}
