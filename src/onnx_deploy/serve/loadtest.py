"""Load-test a Triton endpoint from another process, and check it refuses bad requests.

``load_test`` sends requests with ``tritonclient`` (gRPC by default) from N threads at
once, for each concurrency level, bounded by a request count and a time limit, and
reports throughput, p50/p90/p99 latency, errors, and the mean batch size Triton formed
(from its metrics: inferences / executions, before and after each level). ``bad_requests``
sends requests that must fail (malformed JSON, a wrong shape, a wrong dtype, a batch over
``max_batch_size``, a missing input, an unknown input) and checks that each gets an error
response and that a good request still succeeds after each one. Traffic goes to the URL
given (the CLI refuses anything but loopback unless asked).
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from onnx_deploy.core.defaults import DEFAULT_DIM_SIZE
from onnx_deploy.core.errors import LoadTestError
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.results import Result
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import from_numpy
from onnx_deploy.core.specs import from_triton
from onnx_deploy.core.specs import to_triton
from onnx_deploy.core.tables import format_table
from onnx_deploy.core.timing import LatencyStats
from onnx_deploy.core.timing import stats_fields

CONCURRENCY = (1, 4, 16, 32)


def _clients() -> tuple[Any, Any]:
    try:
        import tritonclient.grpc as grpc
        import tritonclient.http as http
    except ImportError as e:
        raise MissingExtraError(
            f'load tests need tritonclient ({e}); pip install "onnx-deploy[triton]"'
        ) from e
    return grpc, http


@dataclass(frozen=True)
class ServedModel:
    """What the endpoint says about the model: inputs (name, Triton type, dims without the
    batch) and outputs, and ``max_batch_size``."""

    name: str
    inputs: tuple[tuple[str, str, tuple[int, ...]], ...]
    outputs: tuple[str, ...]
    max_batch_size: int

    def batch(self, size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Random valid inputs for ``size`` samples from the signature the endpoint
        describes (``Signature.examples``): -1 dims take 16."""
        specs = [
            TensorSpec(
                name,
                from_triton(datatype),
                (
                    *(("batch",) if self.max_batch_size > 0 else ()),
                    *(d if d > 0 else f"{name}_dim{a}" for a, d in enumerate(dims)),
                ),
            )
            for name, datatype, dims in self.inputs
        ]
        sig = Signature.from_specs(specs)
        sizes = {d.name: DEFAULT_DIM_SIZE for d in sig.dims}
        if self.max_batch_size > 0:
            sizes["batch"] = size
        return sig.examples(sizes, seed)


def model_info(url: str, model: str | None = None) -> ServedModel:
    """Ask a KServe v2 HTTP endpoint about ``model`` (default: its only model)."""
    _, http = _clients()
    client = http.InferenceServerClient(_hostport(url))
    try:
        if not client.is_server_ready():
            raise LoadTestError(f"{url}: the server is not ready")
        if model is None:
            try:
                models = [m["name"] for m in client.get_model_repository_index()]
            except Exception as e:  # PyTriton restricts the repository API
                raise LoadTestError(
                    f"{url} does not list its models ({first_line(e)}): name "
                    "the model with --model (onnx-deploy serve prints it)"
                ) from e
            if len(models) != 1:
                raise LoadTestError(f"{url} serves {models}: name one with --model")
            model = models[0]
        meta = client.get_model_metadata(model)
        config = client.get_model_config(model)
    except LoadTestError:
        raise
    except Exception as e:
        raise LoadTestError(f"cannot reach {url}: {first_line(e)}") from e
    finally:
        client.close()  # an open keep-alive connection delays the server's shutdown
    mbs = int(config.get("max_batch_size", 0))
    inputs = tuple(
        (i["name"], i["datatype"], tuple(int(d) for d in (i["shape"][1:] if mbs > 0 else i["shape"])))
        for i in meta["inputs"]
    )  # fmt: skip
    return ServedModel(model, inputs, tuple(o["name"] for o in meta["outputs"]), mbs)


def _hostport(url: str) -> str:
    return re.sub(r"^\w+://", "", url).rstrip("/")


def is_loopback(url: str) -> bool:
    host = _hostport(url).rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]", "::1")


# --- metrics ---------------------------------------------------------------------------


def scrape(metrics_url: str, model: str) -> dict[str, float]:
    """Triton's counters for ``model`` (inference count, executions, successes, failures)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    wanted = {
        "nv_inference_count": "inferences", "nv_inference_exec_count": "executions",
        "nv_inference_request_success": "success", "nv_inference_request_failure": "failure",
    }  # fmt: skip
    out = dict.fromkeys(wanted.values(), 0.0)
    for line in text.splitlines():
        m = re.match(r"^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)$", line)
        if m and m.group(1) in wanted and f'model="{model}"' in m.group(2):
            out[wanted[m.group(1)]] += float(m.group(3))
    return out


# --- load ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level(LatencyStats, Result):
    """One concurrency level: ``requests`` sent, ``errors`` among them, and the latency
    statistics (``LatencyStats``) of the requests that succeeded."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float  # samples per second
    mean_batch: float | None  # inferences per execution, from Triton's metrics
    error_messages: tuple[str, ...] = ()

    def cells(self) -> tuple[str, ...]:
        """This level's row of ``LoadTestResult.summary``'s table."""
        batch = "-" if self.mean_batch is None else f"{self.mean_batch:.1f}"
        return (
            str(self.concurrency), str(self.requests), str(self.errors), f"{self.throughput:.1f}",
            f"{self.median_ms:.2f}", f"{self.p90_ms:.2f}", f"{self.p99_ms:.2f}", batch,
        )  # fmt: skip


@dataclass(frozen=True)
class BadRequest(Result):
    """One request that must fail: how it failed, and whether a good one worked after."""

    case: str
    rejected: bool
    message: str
    server_up: bool


@dataclass(frozen=True)
class LoadTestResult(Result):
    COMPUTED = ("ok", "good_errors")

    url: str
    model: str
    batch_size: int
    protocol: str
    levels: tuple[Level, ...]
    bad: tuple[BadRequest, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def good_errors(self) -> int:
        return sum(level.errors for level in self.levels)

    @property
    def ok(self) -> bool:
        return self.good_errors == 0 and all(b.rejected and b.server_up for b in self.bad)

    def level(self, concurrency: int) -> Level:
        return next(lv for lv in self.levels if lv.concurrency == concurrency)

    def summary(self) -> str:
        table = format_table(
            ("concurrency", "requests", "errors", "samples/s", "p50 ms", "p90 ms", "p99 ms",
             "mean batch"),
            [lv.cells() for lv in self.levels], widths=(11, 9, 7, 11, 8, 8, 8, 10), align=">" * 8,
        )  # fmt: skip
        lines = [
            f"loadtest  {self.model} at {self.url} ({self.protocol}, batch {self.batch_size} "
            "per request)",
            table,
        ]
        for lv in self.levels:
            lines += [f"  error   c={lv.concurrency}: {m}" for m in lv.error_messages]
        for b in self.bad:
            mark = "rejected" if b.rejected else "ACCEPTED"
            up = "server up" if b.server_up else "SERVER DOWN"
            lines.append(f"  bad     {b.case:<22} {mark}, {up}: {b.message[:110]}")
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def _grpc_url(url: str, grpc_url: str | None) -> str:
    """The gRPC endpoint: given, else the HTTP one's host with its port + 1."""
    if grpc_url:
        return grpc_url
    host, _, port = _hostport(url).rpartition(":")
    return f"{host}:{int(port) + 1}"


def run_level(
    info: ServedModel,
    url: str,
    concurrency: int,
    *,
    protocol: str = "grpc",
    requests: int = 200,
    max_seconds: float = 20.0,
    batch_size: int = 1,
    metrics_url: str | None = None,
) -> Level:
    """``requests`` requests from ``concurrency`` threads (each its own client), or until
    ``max_seconds`` pass."""
    grpc, http = _clients()
    lib = grpc if protocol == "grpc" else http
    feeds = info.batch(batch_size)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = {"left": requests}
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        client = lib.InferenceServerClient(url)
        inputs = []
        for name, dtype, _ in info.inputs:
            inp = lib.InferInput(name, list(feeds[name].shape), dtype)
            inp.set_data_from_numpy(feeds[name])
            inputs.append(inp)
        outputs = [lib.InferRequestedOutput(o) for o in info.outputs]
        while time.perf_counter() < deadline:
            with lock:
                if counter["left"] <= 0:
                    break
                counter["left"] -= 1
            t0 = time.perf_counter()
            try:
                result = client.infer(info.name, inputs, outputs=outputs)
                result.as_numpy(info.outputs[0])
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(dt)
            except Exception as e:
                with lock:
                    errors.append(first_line(e))
        if hasattr(client, "close"):
            client.close()

    before = scrape(metrics_url, info.name) if metrics_url else None
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    mean_batch = None
    if metrics_url and before is not None:
        after = scrape(metrics_url, info.name)
        execs = after["executions"] - before["executions"]
        if execs > 0:
            mean_batch = (after["inferences"] - before["inferences"]) / execs
    return Level(
        **stats_fields(latencies), concurrency=concurrency,  # type: ignore[arg-type]
        requests=len(latencies) + len(errors), errors=len(errors), seconds=seconds,
        throughput=batch_size * len(latencies) / seconds if seconds > 0 else 0.0,
        mean_batch=mean_batch, error_messages=tuple(dict.fromkeys(errors))[:3],
    )  # fmt: skip


def bad_requests(info: ServedModel, http_url: str) -> list[BadRequest]:
    """Requests that must fail, each followed by a good one that must succeed."""
    _, http = _clients()
    client = http.InferenceServerClient(_hostport(http_url))
    name, dtype, _dims = info.inputs[0]
    good = info.batch(1)

    def infer(feeds: dict[str, np.ndarray], types: dict[str, str] | None = None) -> None:
        inputs = []
        for k, v in feeds.items():
            inp = http.InferInput(k, list(v.shape), (types or {}).get(k) or _ttype(v.dtype))
            inp.set_data_from_numpy(v)
            inputs.append(inp)
        client.infer(
            info.name, inputs, outputs=[http.InferRequestedOutput(o) for o in info.outputs]
        )

    def good_ok() -> bool:
        try:
            infer(good)
            return True
        except Exception:
            return False

    wrong_shape = {**good, name: np.zeros((*good[name].shape, 2), good[name].dtype)}
    wrong_dtype = {**good, name: good[name].astype(np.float64 if dtype != "FP64" else np.float32)}
    cases: list[tuple[str, Any]] = [
        ("malformed JSON", lambda: _post(http_url, info.name, b'{"inputs": [ {"name": ')),
        ("wrong shape", lambda: infer(wrong_shape)),
        ("wrong dtype", lambda: infer(wrong_dtype)),
        ("missing input", lambda: infer({k: v for k, v in good.items() if k != name} or {})),
        ("unknown input", lambda: infer({**good, "not_an_input": good[name]})),
    ]
    if info.max_batch_size > 0:
        big = info.batch(info.max_batch_size + 1)
        cases.append((f"batch {info.max_batch_size + 1} > max", lambda: infer(big)))
    out = []
    try:
        for case, send in cases:
            try:
                send()
                rejected, message = False, "accepted"
            except Exception as e:
                rejected, message = True, first_line(e)
            out.append(BadRequest(case, rejected, message, good_ok()))
    finally:
        client.close()
    return out


def _ttype(dtype: np.dtype) -> str:
    name = to_triton(from_numpy(dtype))
    if name is None:
        raise LoadTestError(f"no Triton type for {dtype}")
    return "BYTES" if name == "STRING" else name


def _post(http_url: str, model: str, body: bytes) -> None:
    url = f"http://{_hostport(http_url)}/v2/models/{model}/infer"
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except urllib.error.HTTPError as e:
        raise LoadTestError(f"[{e.code}] {e.read().decode(errors='replace')[:200]}") from None


def load_test(
    url: str,
    *,
    model: str | None = None,
    grpc_url: str | None = None,
    metrics_url: str | None = None,
    concurrency: Sequence[int] = CONCURRENCY,
    requests: int = 200,
    max_seconds: float = 20.0,
    batch_size: int = 1,
    protocol: str = "grpc",
    check_bad_requests: bool = True,
    allow_remote: bool = False,
) -> LoadTestResult:
    """Every concurrency level in turn against a running server, then the bad requests.
    ``url`` is the HTTP endpoint (model metadata, bad requests); ``grpc_url`` the gRPC one
    (default: the same host, the HTTP port + 1, as Triton's 8000/8001). Load stays on this
    machine unless ``allow_remote``."""
    if protocol not in ("grpc", "http"):
        raise LoadTestError(f"protocol must be grpc or http, got {protocol!r}")
    if not is_loopback(url) and not allow_remote:
        raise LoadTestError(
            f"{url} is not this machine; load tests stay on loopback unless allow_remote "
            "(CLI: --allow-remote)"
        )
    info = model_info(url, model)
    if info.max_batch_size and batch_size > info.max_batch_size:
        raise LoadTestError(
            f"batch {batch_size} is over the model's max_batch_size {info.max_batch_size}"
        )
    target = _grpc_url(url, grpc_url) if protocol == "grpc" else _hostport(url)
    levels = [
        run_level(
            info,
            target,
            c,
            protocol=protocol,
            requests=requests,
            max_seconds=max_seconds,
            batch_size=batch_size,
            metrics_url=metrics_url,
        )
        for c in concurrency
    ]
    bad = bad_requests(info, url) if check_bad_requests else []
    notes = [] if metrics_url else ["no --metrics-url: the batch sizes Triton formed are unknown"]
    return LoadTestResult(
        url, info.name, batch_size, protocol, tuple(levels), tuple(bad), tuple(notes)
    )
