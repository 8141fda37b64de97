"""Serve an ONNX model through a real Triton Inference Server, locally, with PyTriton.

``nvidia-pytriton`` bundles Triton (2.51) with its Python backend; the model runs on an
ONNX Runtime session inside a Python callable that Triton's dynamic batcher feeds. KServe
v2 HTTP and gRPC and Triton's metrics listen on 127.0.0.1. Triton itself rejects requests
that do not fit the model's config (unknown or missing inputs, wrong dtype or shape, a
batch over ``max_batch_size``, malformed JSON) with a 400 and a message; what passes
Triton is checked again against the model's specs before it reaches onnxruntime.

Two facts verified on the project's machines (field notes, "Serving"):

- PyTriton's Python-backend stub must find the interpreter's own ``libpython``:
  ``serve`` puts ``sysconfig``'s ``LIBDIR`` first on ``LD_LIBRARY_PATH``.
- PyTriton 0.7 requires numpy < 2, and means it: with numpy 2.4 the server answered every
  request with an empty output ("output tensor shape does not match size of output").
  The rest of this project pins numpy 2, so serving runs in its own environment
  (``make serve-env`` makes ``.venv-serve``); ``onnx-deploy serve`` finds it
  (``serve_python``) and runs the server there. No torch is needed at serve time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import OnnxDeployError
from onnx_deploy.core.errors import ServeError
from onnx_deploy.core.files import CHECKOUT
from onnx_deploy.core.files import write_json
from onnx_deploy.core.results import Result

SERVE_ENV = ".venv-serve"
SERVE_HINT = (
    "serving needs nvidia-pytriton (Linux wheels only), which requires numpy < 2: make its own environment "
    "with `make serve-env` (in a checkout), or `python -m venv .venv-serve && "
    '.venv-serve/bin/pip install "onnx-deploy[serve]"`; onnx-deploy serve then finds '
    "./.venv-serve, or pass --python PATH or set ONNX_DEPLOY_SERVE_PYTHON"
)
LOOPBACK = "127.0.0.1"


# --- where the server runs ---------------------------------------------------------------


def can_serve_here() -> str:
    """'' when this interpreter can run PyTriton; else why not."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return "numpy is missing"
    if int(np.__version__.split(".")[0]) >= 2:
        return f"numpy {np.__version__} is installed and PyTriton 0.7 needs numpy < 2"
    try:
        import pytriton  # noqa: F401
    except ImportError:
        return "nvidia-pytriton is not installed"
    return ""


def serve_python(explicit: str | os.PathLike[str] | None = None) -> str:
    """The interpreter to run the server with: ``explicit``, ``$ONNX_DEPLOY_SERVE_PYTHON``,
    this one when it can serve, else ``.venv-serve`` in the working folder or the checkout
    this package was installed from. Raises ``MissingExtraError`` saying how to make one."""
    candidates = [explicit, os.environ.get("ONNX_DEPLOY_SERVE_PYTHON")]
    for c in candidates:
        if c:
            if not Path(c).exists():
                raise MissingExtraError(f"{c}: no such interpreter. {SERVE_HINT}")
            return str(c)
    if not can_serve_here():
        return sys.executable
    for root in (Path.cwd(), CHECKOUT):
        python = root / SERVE_ENV / "bin" / "python"
        if python.exists():
            return str(python)
    raise MissingExtraError(f"{can_serve_here()}. {SERVE_HINT}")


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(port: int, host: str = LOOPBACK) -> None:
    """Raise ``ServeError`` when ``port`` is taken on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise ServeError(
                f"port {port} on {host} is taken (another server?); pick another port, or 0 "
                "for a free one"
            ) from None


# --- the server (runs in the serving environment) ----------------------------------------


@dataclass(frozen=True)
class Endpoints(Result):
    model: str
    http: str
    grpc: str
    metrics: str
    max_batch_size: int
    queue_delay_us: int | None


def _pytriton_tensor(spec: Any, batched: bool) -> Any:
    import numpy as np
    from pytriton.model_config import Tensor

    dims = spec.shape[1:] if batched else spec.shape
    shape = tuple(d if isinstance(d, int) else -1 for d in dims)
    return Tensor(name=spec.name, dtype=np.dtype(spec.numpy_dtype), shape=shape)


def make_infer(session: Any, specs: Sequence[Any]) -> Callable[..., dict[str, Any]]:
    """The callable Triton runs: inputs checked against the model's specs (a clear 400
    when they do not fit), then one onnxruntime run on the whole batch Triton formed."""
    from pytriton.decorators import batch
    from pytriton.exceptions import PyTritonBadParameterError

    from onnx_deploy.core.feeds import check_inputs

    names = [o.name for o in session.get_outputs()]

    @batch
    def infer(**inputs: Any) -> dict[str, Any]:
        try:
            check_inputs(specs, inputs)
        except OnnxDeployError as e:
            raise PyTritonBadParameterError(str(e)) from None
        return dict(zip(names, session.run(names, inputs), strict=True))

    return infer


def run_server(
    model: str | os.PathLike[str],
    *,
    name: str | None = None,
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    max_batch_size: int = 64,
    queue_delay_us: int | None = 100,
    preferred_batch_sizes: Sequence[int] = (),
    threads: int | None = None,
    ready_file: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Serve ``model`` until interrupted (SIGINT or SIGTERM). Ports 0 take free ones.
    ``queue_delay_us=None``: no dynamic batching (one request per execution)."""
    if why := can_serve_here():
        raise MissingExtraError(f"{why}. {SERVE_HINT}")
    from onnx_deploy.infer.modelinfo import describe
    from onnx_deploy.infer.providers import quiet_logs
    from onnx_deploy.infer.sessions import create_session
    from onnx_deploy.serve.triton import batching

    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [libdir, *os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)]
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in dict.fromkeys(paths) if p)
    ports = []
    for port in (http_port, grpc_port, metrics_port):
        if port:
            check_port(port)
        ports.append(port or free_port())
    info = describe(model)
    name = name or Path(model).name.split(".")[0]
    b = batching(info.inputs, info.outputs, max_batch_size)
    if b.note:
        log(f"  note    {b.note}")
    quiet_logs()
    session = create_session(model, "cpu", threads=threads)
    from pytriton.model_config import DynamicBatcher
    from pytriton.model_config import ModelConfig
    from pytriton.triton import Triton
    from pytriton.triton import TritonConfig

    batched = b.max_batch_size > 0
    batcher = DynamicBatcher(
        max_queue_delay_microseconds=queue_delay_us or 0,
        preferred_batch_size=list(preferred_batch_sizes) or None,
    )
    config = TritonConfig(
        http_address=LOOPBACK, http_port=ports[0], grpc_address=LOOPBACK, grpc_port=ports[1],
        metrics_address=LOOPBACK, metrics_port=ports[2], log_verbose=0, exit_timeout_secs=15,
    )  # fmt: skip
    endpoints = Endpoints(
        name, f"http://{LOOPBACK}:{ports[0]}", f"{LOOPBACK}:{ports[1]}",
        f"http://{LOOPBACK}:{ports[2]}/metrics", b.max_batch_size,
        queue_delay_us if batched else None,
    )  # fmt: skip
    stop = {"now": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    with Triton(config=config) as triton:
        triton.bind(
            model_name=name,
            infer_func=make_infer(session, info.inputs),
            inputs=[_pytriton_tensor(s, batched) for s in info.inputs],
            outputs=[_pytriton_tensor(s, batched) for s in info.outputs],
            config=ModelConfig(
                batching=batched,
                max_batch_size=max(b.max_batch_size, 1),
                batcher=batcher if queue_delay_us is not None else None,  # type: ignore[arg-type]
            ),
            strict=True,
        )
        if queue_delay_us is None and batched:
            log("  note    dynamic batching off: Triton runs one request per execution")
        triton.run()
        log(
            f"serving   {name} ({Path(model).name}) on {endpoints.http} (KServe v2 HTTP), "
            f"grpc {endpoints.grpc}, metrics {endpoints.metrics}; Ctrl-C stops it"
        )
        if ready_file:
            write_json(ready_file, endpoints.to_dict(), force=True)  # whole, or not there
        # Ctrl-C and SIGTERM stop it, even when started in the background (where a shell
        # leaves SIGINT ignored and Python would never raise KeyboardInterrupt)
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        try:
            while not stop["now"] and triton.is_alive():
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        signal.signal(
            signal.SIGINT, signal.SIG_IGN
        )  # one stop: a second Ctrl-C must not cut it short
        log("stopping  Triton")
    log("stopped")


def server_args(model: str | os.PathLike[str], **options: Any) -> list[str]:
    """``onnx-deploy serve`` arguments for ``run_server``'s keyword ``options``: what a
    child process in the serving environment is started with."""
    out = [str(model)]
    for key, value in options.items():
        if key == "queue_delay_us" and value is None:
            out.append("--no-batching")
        elif key == "preferred_batch_sizes":
            if value:
                out += ["--preferred", ",".join(map(str, value))]
        elif value is not None:
            out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def run_supervised(cmd: Sequence[str]) -> int:
    """Run ``cmd`` in its own session and pass on exactly one stop signal (Ctrl-C or SIGTERM
    to this process), so that Triton shuts down once, cleanly; its exit code."""
    child = subprocess.Popen(list(cmd), start_new_session=True)

    def forward(signum: int, frame: object) -> None:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)  # also when a shell started us with SIGINT ignored
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            forward(signal.SIGINT, None)


def serve(model: str | os.PathLike[str], *, python: str | None = None, **options: Any) -> int:
    """``onnx-deploy serve``: ``run_server`` here when this environment can serve, else in
    the serving environment (``serve_python``) as a child this process supervises. Returns
    the exit code; ``options`` are ``run_server``'s."""
    if python or can_serve_here():
        interpreter = serve_python(python)
        if interpreter != sys.executable:  # the serving environment runs it, this one waits
            return run_supervised(
                [interpreter, "-m", "onnx_deploy", "serve", *server_args(model, **options)]
            )
    run_server(model, **options)
    return 0


# --- starting and stopping a server from another process -----------------------------------


@dataclass
class ServerProcess:
    """A server started with ``start_server``: its endpoints, and ``stop()``."""

    process: subprocess.Popen[bytes]
    endpoints: Endpoints
    log_path: Path

    def stop(self, timeout: float = 30) -> int:
        """SIGINT (as Ctrl-C), then SIGKILL after ``timeout`` seconds; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(
    model: str | os.PathLike[str],
    *,
    python: str | None = None,
    timeout: float = 120,
    extra_args: Sequence[str] = (),
    log_dir: str | os.PathLike[str] | None = None,
) -> ServerProcess:
    """Start ``onnx-deploy serve MODEL`` on free loopback ports in the serving
    environment, wait until Triton is ready, and return its endpoints. Use as a context
    manager, or call ``stop()``."""
    python = serve_python(python)
    folder = Path(log_dir or tempfile.mkdtemp(prefix="onnx-deploy-serve-"))
    folder.mkdir(parents=True, exist_ok=True)
    ready = folder / f"ready-{os.getpid()}-{time.monotonic_ns()}.json"
    log_path = ready.with_suffix(".log")
    cmd = [
        python, "-m", "onnx_deploy", "serve", str(model), "--http-port", "0", "--grpc-port", "0",
        "--metrics-port", "0", "--ready-file", str(ready), *extra_args,
    ]  # fmt: skip
    with open(log_path, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            text = log_path.read_text(errors="replace")
            lines = [ln for ln in text.splitlines() if "error" in ln.lower()] or text.splitlines()
            raise ServeError(
                f"the server exited ({process.returncode}) before it was ready: "
                f"{(lines or ['no output'])[-1][:300]} (log: {log_path})"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise ServeError(f"the server was not ready after {timeout:.0f} s (log: {log_path})")
        time.sleep(0.2)
    endpoints = Endpoints(**json.loads(ready.read_text()))
    return ServerProcess(process, endpoints, log_path)
