"""A real Triton (PyTriton) on loopback: good requests answered like onnxruntime, bad ones
refused with a message while the server stays up, load at several concurrencies, and a
clean start and stop. The server runs in the serving environment (`make serve-env`)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from onnx_deploy.cli import main
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.serve.loadtest import load_test
from onnx_deploy.serve.loadtest import model_info
from onnx_deploy.serve.serving import ServeError
from onnx_deploy.serve.serving import serve_python
from onnx_deploy.serve.serving import start_server


def _serve_python() -> str:
    try:
        return serve_python()
    except MissingExtraError as e:
        pytest.skip(f"no serving environment: {e}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_session: Path):
    python = _serve_python()
    with start_server(
        tiny_onnx_session, python=python, log_dir=tmp_path_factory.mktemp("serve")
    ) as srv:
        yield srv
    assert srv.process.returncode == 0, srv.log()[-2000:]
    log = srv.log()
    assert "stopped" in log and "exited with failure" not in log, log[-2000:]


def test_good_requests_match_onnxruntime(server, tiny_onnx_session: Path) -> None:
    import tritonclient.grpc as grpc

    info = model_info(server.endpoints.http, server.endpoints.model)
    assert info.max_batch_size == 64 and info.inputs[0][2] == (3, 16, 16)
    x = np.random.default_rng(0).standard_normal((5, 3, 16, 16)).astype(np.float32)
    client = grpc.InferenceServerClient(server.endpoints.grpc)
    inp = grpc.InferInput(info.inputs[0][0], list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got = client.infer(info.name, [inp]).as_numpy(info.outputs[0])
    client.close()
    local = ort.InferenceSession(str(tiny_onnx_session), providers=["CPUExecutionProvider"])
    want = local.run(None, {info.inputs[0][0]: x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_load_and_bad_requests(server) -> None:
    e = server.endpoints
    result = load_test(
        e.http, model=e.model, grpc_url=e.grpc, metrics_url=e.metrics, concurrency=(1, 8),
        requests=40, max_seconds=20,
    )  # fmt: skip
    assert result.good_errors == 0, result.summary()
    assert [lv.requests for lv in result.levels] == [40, 40]
    assert result.levels[0].mean_batch == pytest.approx(1.0)
    assert all(lv.p99_ms >= lv.median_ms > 0 for lv in result.levels)
    cases = {b.case: b for b in result.bad}
    assert set(cases) >= {"malformed JSON", "wrong shape", "wrong dtype", "missing input",
                          "unknown input", "batch 65 > max"}  # fmt: skip
    for b in result.bad:
        assert b.rejected and b.server_up, b
    assert "expects 'FP32'" in cases["wrong dtype"].message
    assert "batch-size must be <= 64" in cases["batch 65 > max"].message
    assert "[400]" in cases["wrong shape"].message
    assert result.ok


def test_loadtest_cli(server, capsys: pytest.CaptureFixture[str]) -> None:
    e = server.endpoints
    args = ["loadtest", e.http, "--model", e.model, "--grpc-url", e.grpc, "--metrics-url",
            e.metrics, "--concurrency", "2", "--requests", "10", "--no-bad-requests"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "samples/s" in out and "mean batch" in out
    assert main(["loadtest", "http://10.1.2.3:8000"]) == 1
    assert "not this machine" in capsys.readouterr().err


def test_a_taken_port_is_reported(tiny_onnx: Path, tmp_path: Path) -> None:
    python = _serve_python()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run(
            [python, "-m", "onnx_deploy", "serve", str(tiny_onnx), "--http-port", str(port),
             "--grpc-port", "0", "--metrics-port", "0"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in out.stderr and "Traceback" not in out.stderr


def test_a_model_that_does_not_load_is_reported(tmp_path: Path) -> None:
    python = _serve_python()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ServeError, match="exited"):
        start_server(bad, python=python, log_dir=tmp_path, timeout=60)


def test_serving_needs_no_torch() -> None:
    python = _serve_python()
    code = "import onnx_deploy.serve.serving, onnx_deploy.cli.serve, sys; print('torch' in sys.modules)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_a_missing_interpreter_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError, match="make serve-env"):
        serve_python(tmp_path / "nope" / "python")


def test_server_args_say_to_the_child_what_run_server_was_asked() -> None:
    """``serve`` in the serving environment: the child's command line parses back to the
    same options (the supervisor never re-types them)."""
    from onnx_deploy.cli import build_parser
    from onnx_deploy.serve.serving import server_args

    options = {
        "name": "m", "http_port": 0, "grpc_port": 8101, "metrics_port": 0, "max_batch_size": 16,
        "queue_delay_us": None, "preferred_batch_sizes": (4, 8), "threads": 2,
        "ready_file": "r.json",
    }  # fmt: skip
    args = build_parser().parse_args(["serve", *server_args("m.onnx", **options)])
    assert args.model == "m.onnx" and args.no_batching and args.preferred == (4, 8)
    assert (args.name, args.http_port, args.grpc_port, args.max_batch_size, args.threads) == (
        "m", 0, 8101, 16, 2,
    )  # fmt: skip
    assert args.ready_file == "r.json"
    delayed = build_parser().parse_args(["serve", *server_args("m.onnx", queue_delay_us=250)])
    assert delayed.queue_delay_us == 250 and not delayed.no_batching
