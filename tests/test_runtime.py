from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.errors import ProviderError
from onnx_deploy.infer.predictor import Predictor
from onnx_deploy.infer.providers import PROBE_MODEL
from onnx_deploy.infer.providers import default_providers
from onnx_deploy.infer.providers import resolve_provider
from onnx_deploy.infer.providers import working_providers
from onnx_deploy.infer.sessions import create_session

HAS_GPU = shutil.which("nvidia-smi") is not None


def test_probe_model_is_a_relu() -> None:
    import onnx
    from onnx import TensorProto
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        ir_version=8,
        producer_name="onnx-deploy",
    )
    assert model.SerializeToString() == PROBE_MODEL
    onnx.checker.check_model(onnx.load_from_string(PROBE_MODEL))


def test_working_providers_are_a_subset_and_include_cpu() -> None:
    import onnxruntime as ort

    works = working_providers()
    assert "CPUExecutionProvider" in works
    assert set(works) <= set(ort.get_available_providers())


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU fallback; this machine has a GPU")
def test_cuda_is_listed_but_not_working_without_gpu() -> None:
    import onnxruntime as ort

    assert "CUDAExecutionProvider" in ort.get_available_providers(), "onnxruntime-gpu lists CUDA"
    assert "CUDAExecutionProvider" not in working_providers()
    assert default_providers("auto") == ["CPUExecutionProvider"]


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without a GPU")
def test_silent_cuda_fallback_is_loud(tiny_onnx: Path) -> None:
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        create_session(tiny_onnx, device="cuda")
    with pytest.warns(RuntimeWarning, match="fall back"):
        sess = create_session(tiny_onnx, device="cuda", on_fallback="warn")
    assert sess.get_providers() == ["CPUExecutionProvider"]


def test_resolve_provider() -> None:
    assert resolve_provider("cuda") == "CUDAExecutionProvider"
    assert resolve_provider("CPUExecutionProvider") == "CPUExecutionProvider"
    with pytest.raises(ProviderError, match="unknown provider"):
        resolve_provider("tpu")


def test_session_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such file"):
        create_session(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ModelFileError, match="cannot load"):
        create_session(junk)


def test_session_options(tiny_onnx: Path) -> None:
    sess = create_session(tiny_onnx, device="cpu", threads=1, graph_optimization="basic")
    assert sess.get_session_options().intra_op_num_threads == 1
    with pytest.raises(ValueError, match="graph_optimization"):
        create_session(tiny_onnx, graph_optimization="turbo")


def test_predictor_runs_and_reports_provider(tiny_onnx: Path) -> None:
    pred = Predictor(tiny_onnx, device="cpu")
    assert pred.providers == ["CPUExecutionProvider"]
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    y = pred(x)
    assert y.shape == (4, 5)
    assert set(pred.run(x)) == set(pred.output_names)
    assert np.array_equal(pred(**{pred.inputs[0].name: x}), y)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda x: x.astype(np.float64), r"dtype float64.*astype\(np.float32\)"),
        (lambda x: x[0], r"missing batch axis"),
        (lambda x: x[:, :2], r"axis 1 is 2, the model needs 3"),
        (lambda x: x.tolist(), r"expected a numpy array"),
    ],
    ids=["dtype", "rank", "fixed-dim", "not-array"],
)
def test_predictor_says_what_is_wrong(tiny_onnx: Path, make, match: str) -> None:
    pred = Predictor(tiny_onnx, device="cpu")
    x = np.zeros((2, 3, 16, 16), np.float32)
    with pytest.raises(InputMismatchError, match=match):
        pred(make(x))


def test_predictor_wrong_name_and_count(tiny_onnx: Path) -> None:
    pred = Predictor(tiny_onnx, device="cpu")
    x = np.zeros((2, 3, 16, 16), np.float32)
    with pytest.raises(InputMismatchError, match=r"unknown \['images'\]"):
        pred({"images": x})
    with pytest.raises(InputMismatchError, match="takes 1 input"):
        pred(x, x)


def test_predictor_takes_torch_tensors(tiny_onnx: Path) -> None:
    import torch

    pred = Predictor(tiny_onnx, device="cpu")
    x = torch.randn(2, 3, 16, 16)
    np.testing.assert_array_equal(pred(x), pred(x.numpy()))  # converted, same answer
    with pytest.raises(InputMismatchError, match="dtype float64"):
        pred(x.double())  # converted, then checked like any array


def test_predictor_splits_large_batches(tiny_onnx: Path) -> None:
    x = np.random.default_rng(1).standard_normal((10, 3, 16, 16)).astype(np.float32)
    whole = Predictor(tiny_onnx, device="cpu")(x)
    split = Predictor(tiny_onnx, device="cpu", max_batch_size=3)
    calls = []
    real_run = split.session.run
    split.session.run = lambda names, feeds: calls.append(feeds) or real_run(names, feeds)  # type: ignore[method-assign]
    np.testing.assert_allclose(split(x), whole, rtol=1e-5, atol=1e-6)
    assert [f[split.inputs[0].name].shape[0] for f in calls] == [3, 3, 3, 1]


def test_fixed_batch_model_is_split_or_refused(tiny_module, tmp_path: Path) -> None:
    import torch

    from onnx_deploy.convert.export import export_model

    path = tmp_path / "fixed.onnx"
    export_model(tiny_module, torch.randn(2, 3, 16, 16), path, dynamic_batch=False)
    pred = Predictor(path, device="cpu")
    assert pred.inputs[0].shape[0] == 2
    assert pred(np.zeros((6, 3, 16, 16), np.float32)).shape == (6, 5)
    with pytest.raises(InputMismatchError, match="fixed batch size of 2"):
        pred(np.zeros((5, 3, 16, 16), np.float32))


def test_inference_side_does_not_need_torch(tiny_onnx_session: Path) -> None:
    """runtime and bench must work in an image without torch (or onnx)."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        sys.modules["onnx"] = None
        import numpy as np
        from onnx_deploy.infer.predictor import Predictor
        from onnx_deploy.infer.bench import benchmark_onnx
        p = Predictor({str(tiny_onnx_session)!r}, device="cpu")
        assert p(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 5)
        r = benchmark_onnx(p, batch_size=2, warmup=1, iters=3)
        assert r.count == 3
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
