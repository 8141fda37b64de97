"""OpenVINO behind the Runner seam: the same file, an explicit precision, a clear message
when it is not installed, and the report card choosing it where it is faster."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.cli import main
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import ModelFileError
from onnx_deploy.core.extras import available
from onnx_deploy.runtimes import check_runtimes
from onnx_deploy.runtimes import parse_runtimes

needs_openvino = pytest.mark.skipif(
    not available("openvino"),
    reason="OpenVINO is not installed (pip install 'onnx-deploy[openvino]')",
)


def test_runtime_names_are_checked() -> None:
    assert parse_runtimes("onnxruntime, openvino") == ("onnxruntime", "openvino")
    assert parse_runtimes(["openvino", "openvino"]) == ("openvino",)
    with pytest.raises(ValueError, match="unknown runtime"):
        parse_runtimes("onnxruntime,tflite")


def test_without_openvino_the_message_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    monkeypatch.setattr("onnx_deploy.runtimes.available", lambda m: m != "openvino")
    with pytest.raises(MissingExtraError, match=r"onnx-deploy\[openvino\]"):
        check_runtimes(("onnxruntime", "openvino"))
    check_runtimes(("onnxruntime",))  # nothing asked of OpenVINO: fine
    from onnx_deploy.infer.runners.openvino import OpenVinoRunner

    with pytest.raises(MissingExtraError, match="the OpenVINO runner needs openvino"):
        OpenVinoRunner("model.onnx")


def test_cli_bench_without_openvino_is_a_clear_error(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("onnx_deploy.runtimes.available", lambda m: m != "openvino")
    assert main(["bench", str(tiny_onnx), "--runtimes", "onnxruntime,openvino"]) == 1
    err = capsys.readouterr().err
    assert "needs OpenVINO" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:
        main(["bench", str(tiny_onnx), "--runtimes", "tflite"])
    assert usage.value.code == 2 and "unknown runtime" in capsys.readouterr().err


def _c(name: str, precision: str, runtime: str, rounds: list[float], base: list[float]):
    from onnx_deploy.core.timing import paired_speedup
    from onnx_deploy.infer.bench import summarize
    from onnx_deploy.workflows.optimize import Candidate

    t = summarize(name, runtime, "cpu", 1, 1, 0.0, rounds, {}, dict(enumerate(rounds)))
    return Candidate(name, (), runtime, precision, "m.onnx", passed=True, timings=(t,),
                     speedup=paired_speedup(dict(enumerate(base)), t.rounds_ms))  # fmt: skip


def test_the_card_chooses_openvino_where_it_is_faster() -> None:
    from onnx_deploy.workflows.optimize import Goal
    from onnx_deploy.workflows.optimize import OptimizeConfig
    from onnx_deploy.workflows.optimize.choose import choose

    base = [10.0, 10.3, 9.9, 10.1, 10.2]
    cands = [
        _c("FP32", "fp32", "onnxruntime", base, base),
        _c("INT8 static", "int8", "onnxruntime", [x / 1.4 for x in base], base),
        _c("OpenVINO FP32 slim", "fp32", "openvino", [x / 1.03 for x in base], base),
        _c("OpenVINO BF16", "bf16", "openvino-bf16", [x / 4.1 for x in base], base),
    ]
    out, decision = choose(cands, OptimizeConfig(goal=Goal(), batch_sizes=(1,)))
    assert decision.chosen == "OpenVINO BF16"
    verdicts = {c.name: c.verdict for c in out}
    assert verdicts["INT8 static"].startswith("slower than OpenVINO BF16 at batch 1")
    assert verdicts["OpenVINO FP32 slim"].startswith("slower than OpenVINO BF16 at batch 1")


@needs_openvino
def test_openvino_runs_the_file_in_fp32_unless_told(tiny_onnx: Path) -> None:
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.infer.runners.openvino import OpenVinoRunner
    from onnx_deploy.infer.runners.openvino import cpu_capabilities

    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16), dtype=np.float32)
    with OpenVinoRunner(tiny_onnx) as ov, OnnxRuntimeRunner(tiny_onnx, "cpu") as ort:
        assert ov.backend == "openvino" and ov.inputs == ort.inputs
        assert ov.environment()["inference_precision"] == "f32"
        assert str(ov._compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
        got, want = ov.infer(x), ort.infer(x)
        assert list(got) == list(want)
        np.testing.assert_allclose(got[ov.output_names[0]], want[ort.output_names[0]], atol=1e-5)
        assert "bf16" not in ov.runtime_precisions()
        call = ov.timed_call(x)
        call()
    if "BF16" in cpu_capabilities():
        with OpenVinoRunner(tiny_onnx, "bf16") as bf16:
            assert bf16.backend == "openvino-bf16"
            assert "bf16" in bf16.runtime_precisions()


@needs_openvino
def test_openvino_refuses_a_precision_the_cpu_lacks(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onnx_deploy.infer.runners import openvino

    monkeypatch.setattr(openvino, "cpu_capabilities", lambda: ("FP32", "INT8"))
    with pytest.raises(ModelFileError, match="cannot run bf16 on this CPU"):
        openvino.OpenVinoRunner(tiny_onnx, "bf16")
    with pytest.raises(ValueError, match="precision must be one of"):
        openvino.OpenVinoRunner(tiny_onnx, "int4")


@needs_openvino
def test_openvino_on_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    from onnx_deploy.infer.runners.openvino import OpenVinoRunner

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        OpenVinoRunner(bad)


@needs_openvino
def test_compare_and_bench_take_the_openvino_runner(
    tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx_deploy.infer.compare import compare
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.infer.runners.openvino import OpenVinoRunner

    report = compare(OnnxRuntimeRunner(tiny_onnx, "cpu"), OpenVinoRunner(tiny_onnx))
    assert report.ok
    argv = ["bench", str(tiny_onnx), "--runtimes", "onnxruntime,openvino", "--batch-sizes", "2",
            "--iters", "3", "--warmup", "1", "--rounds", "3", "--no-peak"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[openvino/cpu]" in out and "[onnxruntime/cpu]" in out and "GFLOP/s" in out


@needs_openvino
def test_a_report_card_with_openvino(tiny_onnx: Path, tmp_path: Path) -> None:
    from onnx_deploy.infer.runners.openvino import cpu_capabilities
    from onnx_deploy.workflows.optimize import Goal
    from onnx_deploy.workflows.optimize import OptimizeConfig
    from onnx_deploy.workflows.optimize import optimize

    config = OptimizeConfig(
        goal=Goal(min_agreement=0.0), runtimes=("onnxruntime", "openvino", "openvino-bf16"),
        batch_sizes=(2,), warmup=1, iters=3, rounds=3, budget_s=0, plots=False,
    )  # fmt: skip
    card = optimize(tiny_onnx, tmp_path / "card", config)
    by_name = {c.name: c for c in card.candidates}
    ov = by_name["OpenVINO FP32 slim"]
    assert ov.runtime == "openvino" and ov.status == "ok" and ov.passed, ov
    assert "INFERENCE_PRECISION_HINT f32" in ov.details
    assert by_name["OpenVINO INT8 static"].status == "ok"
    bf16 = by_name["OpenVINO BF16 (FP32 slim)"]
    if "BF16" in cpu_capabilities():
        assert bf16.status == "ok" and bf16.precision == "bf16" and bf16.timings
    else:
        assert bf16.status == "skipped" and "BF16" in bf16.reason
    assert card.chosen in by_name and "OpenVINO" in card.summary()


@needs_openvino
def test_bench_on_openvino_alone(tiny_source: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    # a spec: PyTorch eager beside OpenVINO on the file it was exported to, no ONNX Runtime
    from onnx_deploy.sources import ModelSource
    from onnx_deploy.workflows.pipeline import benchmark_targets

    spec = ModelSource(f"{tiny_source}:tiny", input_shape=(3, 16, 16))
    results = benchmark_targets(
        [spec], tmp_path, batch_sizes=(2,), warmup=1, iters=3, device="cpu",
        runtimes=("openvino",), peak=False,
    )  # fmt: skip
    assert [r.backend for r in results] == ["torch", "openvino"]
    # two files on OpenVINO alone, interleaved: one run, each keeps its name
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx.read_bytes())
    results = benchmark_targets(
        [str(tiny_onnx), str(other)], tmp_path, batch_sizes=(2,), warmup=1, iters=3,
        rounds=2, device="cpu", runtimes=("openvino",), peak=False,
    )  # fmt: skip
    assert [(r.name, r.backend) for r in results] == [
        (tiny_onnx.name, "openvino"),
        ("other.onnx", "openvino"),
    ]


@needs_openvino
def test_bench_leaves_out_bf16_where_the_cpu_has_none(
    tiny_onnx: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The skill's `bench --runtimes onnxruntime,openvino,openvino-bf16` runs on an AVX2
    CPU too: bf16 is left out with the reason, the others are timed."""
    from onnx_deploy.runtimes import usable_runtimes

    monkeypatch.setattr(
        "onnx_deploy.infer.runners.openvino.cpu_capabilities", lambda: ("FP32", "INT8")
    )
    kept, notes = usable_runtimes(("onnxruntime", "openvino", "openvino-bf16"), tiny_onnx)
    assert kept == ["onnxruntime", "openvino"]
    assert notes == [
        f"openvino-bf16 left out for {tiny_onnx.name}: this CPU has no BF16 for OpenVINO"
    ]
    argv = [
        "bench",
        str(tiny_onnx),
        "--runtimes",
        "onnxruntime,openvino-bf16",
        "--batch-sizes",
        "1",
    ]
    assert main([*argv, "--iters", "3", "--warmup", "1"]) == 0
    out, _err = capsys.readouterr()
    assert "left out" in out and "no BF16" in out
    assert main([*argv[:3], "openvino-bf16", *argv[4:]]) == 1
    assert "none of --runtimes openvino-bf16 can run" in capsys.readouterr().err
