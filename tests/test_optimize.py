"""The report card: the choice rule on known numbers, and real cards from the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from onnx_deploy.cli import main
from onnx_deploy.workflows.optimize import OptimizeError
from onnx_deploy.workflows.optimize import Timing
from onnx_deploy.workflows.optimize import Variant
from onnx_deploy.workflows.optimize import choose
from onnx_deploy.workflows.optimize import matmul_heavy
from onnx_deploy.workflows.optimize import optimize
from onnx_deploy.workflows.optimize import tensorrt_variants


def _v(name: str, precision: str, ms: dict[int, float], passed: bool = True, **kw) -> Variant:
    timings = tuple(Timing(b, m, m * 1.1, m * 1.2, 1000 * b / m) for b, m in ms.items())
    return Variant(name, precision, "onnxruntime", path=f"{name}.onnx", passed=passed,
                   timings=timings, **kw)  # fmt: skip


def test_the_fastest_passing_variant_wins_with_a_margin() -> None:
    variants = [
        _v("FP32", "fp32", {1: 24.0, 8: 150.0}),
        _v("FP16", "fp16", {1: 26.0, 8: 149.0}),
        _v("INT8 static", "int8", {1: 10.0, 8: 46.0}),  # VNNI: 2.4x and 3.3x
    ]
    chosen, out = choose(variants, (1, 8), 1.2)
    assert chosen == "INT8 static"
    verdicts = {v.name: v.verdict for v in out}
    assert verdicts["FP32"] == "slower than INT8 static"
    assert verdicts["FP16"].startswith("slower than FP32 (0.92x at batch 1)")


def test_a_small_gain_keeps_fp32() -> None:
    # a variant that passes but gains less than the margin: FP32 stays
    variants = [
        _v("FP32", "fp32", {1: 20.0, 8: 150.0}),
        _v("INT8 static", "int8", {1: 18.0, 8: 160.0}),
        _v("FP16", "fp16", {1: 15.0, 8: 140.0}),  # 1.33x at batch 1, 1.07x at batch 8
    ]
    chosen, out = choose(variants, (1, 8), 1.2)
    assert chosen == "FP32"
    verdicts = {v.name: v.verdict for v in out}
    assert verdicts["INT8 static"] == "slower than FP32 (0.94x at batch 8)"
    assert verdicts["FP16"].startswith("only 1.07x FP32 at batch 8: under the 1.20x")


def test_a_fast_variant_that_fails_is_not_chosen() -> None:
    variants = [
        _v("FP32", "fp32", {1: 20.0}),
        _v("INT8 static", "int8", {1: 5.0}, passed=False, fails=("cosine 0.96 < 0.98",)),
        Variant("INT8 dynamic", "int8", "onnxruntime", status="skipped", reason="not MatMul-heavy"),
    ]
    chosen, out = choose(variants, (1,), 1.2)
    assert chosen == "FP32"
    assert out[1].verdict == "fails: cosine 0.96 < 0.98"
    assert out[2].verdict == "skipped: not MatMul-heavy"


def test_tensorrt_variants_say_why_they_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    built = [Variant("FP32", "fp32", "onnxruntime", path="m.onnx"),
             Variant("FP16", "fp16", "onnxruntime", path="m.fp16.onnx")]  # fmt: skip
    cpu = tensorrt_variants(built, Path("."), "cpu", (1, 8))
    assert [v.name for v in cpu] == ["TensorRT FP32", "TensorRT FP16"]
    assert all(v.status == "skipped" and "--target cuda" in v.reason for v in cpu)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on a host without TensorRT
    gpu = tensorrt_variants(built, Path("."), "cuda", (1, 8))
    assert len(gpu) == 2 and all("TensorRT is not installed" in v.reason for v in gpu)


def test_matmul_heavy(tiny_onnx: Path, tmp_path: Path) -> None:
    import torch

    from onnx_deploy.convert.export import export_model

    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    export_model(mlp.eval(), torch.randn(2, 8), tmp_path / "mlp.onnx")
    assert matmul_heavy(tmp_path / "mlp.onnx")[0]
    assert not matmul_heavy(tiny_onnx)[0]


def test_the_default_report_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "card"
    args = ["optimize", "--out-dir", str(out), "--iters", "5", "--rounds", "2", "--json"]
    assert main(args) == 0
    card = json.loads(capsys.readouterr().out)
    names = [v["name"] for v in card["variants"]]
    assert names[:4] == ["FP32", "FP16", "INT8 static", "INT8 dynamic"]
    fp32 = card["variants"][0]
    assert fp32["accuracy"] > 0.97  # the trained digits CNN on its real test split
    chosen = next(v for v in card["variants"] if v["name"] == card["chosen"])
    assert chosen["passed"] and chosen["verdict"] == "chosen"
    int8 = card["variants"][2]
    assert int8["status"] == "ok" and int8["accuracy"] is not None
    for key in ("model", "markdown", "json", "tradeoff_plot", "batch_plot"):
        assert Path(card["files"][key]).exists(), key
    report = Path(card["files"]["markdown"]).read_text()
    assert "| variant | accuracy | agreement |" in report and "## Environment" in report
    assert main(args) == 1  # the report exists: not overwritten without --force
    assert "already exists" in capsys.readouterr().err


def test_a_card_for_a_file_from_the_command_line(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny"
    code = main(["optimize", str(tiny_onnx), "--out-dir", str(out), "--batch-sizes", "1,4",
                 "--iters", "5", "--rounds", "2", "--no-plots"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "# Report card: " in printed and "**Ship " in printed
    assert "random calibration and validation inputs" in printed
    assert (out / "model.onnx").exists() and not (out / "latency_by_batch.png").exists()


def test_target_cuda_without_a_gpu_is_a_clear_error(tiny_onnx: Path, tmp_path: Path) -> None:
    from onnx_deploy.infer.sessions import working_providers

    if "CUDAExecutionProvider" in working_providers():
        pytest.skip("a GPU is here")
    with pytest.raises(OptimizeError, match="--target cpu"):
        optimize(tiny_onnx, tmp_path / "x", target="cuda")


def test_files_of_the_user_in_the_folder_are_kept(tiny_onnx: Path, tmp_path: Path) -> None:
    from onnx_deploy.core.errors import OutputExistsError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "model.onnx").write_text("the user's own model")
    with pytest.raises(OutputExistsError, match=r"model\.onnx already exists"):
        optimize(tiny_onnx, out, iters=2, rounds=1)
    assert (out / "model.onnx").read_text() == "the user's own model"
    assert not (out / "variants").exists()
