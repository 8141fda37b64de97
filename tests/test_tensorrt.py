"""TensorRT's pure-Python parts (profiles, cache keys, commands, provider options, the
profile check, FP16 graphs) and what happens without TensorRT. The calls into TensorRT
itself are checked against its real API in tests/trt/."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from onnx_deploy.cli import main
from onnx_deploy.convert import tensorrt as trt_mod
from onnx_deploy.convert.export import export_model
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import ProviderError
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.specs import TensorSpec

TEXT = (TensorSpec("ids", "int64", ("batch", "seq")), TensorSpec("mask", "bool", ("batch", "seq")))


def test_profiles_cover_every_dynamic_input() -> None:
    profile, notes = trt_mod.derive_profile(TEXT, [DimRange("seq", 1, 512, 128)])
    assert profile.text() == "ids:1x1/8x128/64x512,mask:1x1/8x128/64x512"
    assert notes == ("batch not declared: profile 1:8:64",)
    assert profile.covers("ids", (64, 512)) and not profile.covers("ids", (65, 3))
    with pytest.raises(trt_mod.TensorRTError, match=r"none for ids axis 1 \(seq\), mask axis 1"):
        trt_mod.derive_profile(TEXT)
    static, _ = trt_mod.derive_profile([TensorSpec("x", "float32", (1, 3, 8, 8))])
    assert static.shapes == ()


def test_the_same_build_outside_python_uses_tensorrt_11_flags() -> None:
    profile, _ = trt_mod.derive_profile(
        TEXT, [DimRange("batch", 1, 32, 4), DimRange("seq", 8, 256, 64)]
    )
    cmd = trt_mod.trtexec_command("m.onnx", "m.plan", profile, 1 << 30, "t.cache")
    assert cmd == (
        "trtexec --onnx=m.onnx --saveEngine=m.plan --stronglyTyped --minShapes=ids:1x8,mask:1x8 "
        "--optShapes=ids:4x64,mask:4x64 --maxShapes=ids:32x256,mask:32x256 "
        "--memPoolSize=workspace:1024M --timingCacheFile=t.cache"
    )
    for removed in ("--fp16", "--int8", "--best", "--explicitBatch"):
        assert removed not in cmd
    # 10.x builds the graph's types only with --stronglyTyped (the Python path's flag); 11
    # accepts it as a no-op
    assert "--stronglyTyped" in cmd
    convert, check = trt_mod.polygraphy_commands("m.onnx", "m.plan", profile, 1 << 30)
    assert convert.startswith("polygraphy convert m.onnx --convert-to trt -o m.plan")
    assert "--trt-min-shapes ids:[1,8] mask:[1,8]" in convert
    assert "--strongly-typed" in convert and "--strongly-typed" in check
    assert (
        check.startswith("polygraphy run m.onnx --trt --onnxrt")
        and "--trt-max-shapes ids:[32,256]" in check
    )


def test_ort_tensorrt_provider_options() -> None:
    profile, _ = trt_mod.derive_profile(TEXT, [DimRange("seq", 1, 512, 128)])
    opts = trt_mod.ort_tensorrt_options(fp16=True, cache_dir="cache", profile=profile)
    assert opts["trt_fp16_enable"] == "True"
    assert opts["trt_engine_cache_path"] == opts["trt_timing_cache_path"] == "cache"
    assert opts["trt_profile_min_shapes"] == "ids:1x1,mask:1x1"
    assert opts["trt_profile_max_shapes"] == "ids:64x512,mask:64x512"
    assert all(isinstance(v, str) for v in opts.values())


def _meta(**changes: object) -> trt_mod.EngineMeta:
    base = {"tensorrt": "11.4.0", "gpu": "H100", "compute_capability": "9.0",
            "onnx_sha256": "abc", "profiles": ("x:1/8/64",), "precision": "fp16",
            "workspace": 1 << 30}  # fmt: skip
    return trt_mod.EngineMeta(**(base | changes))  # type: ignore[arg-type]


def test_engine_cache_key_and_reasons(tmp_path: Path) -> None:
    assert _meta().rebuild_reason(_meta()) == ""
    reason = _meta().rebuild_reason(_meta(tensorrt="11.5.0", compute_capability="8.9"))
    assert reason == "TensorRT version 11.4.0 -> 11.5.0; compute capability 9.0 -> 8.9"
    plan = tmp_path / "m.plan"
    assert trt_mod.cache_decision(plan, _meta(), force=False) == "no engine yet"
    plan.write_bytes(b"x")
    trt_mod.meta_path(plan).write_text(json.dumps(_meta().to_dict()))
    assert trt_mod.cache_decision(plan, _meta(), force=False) == ""
    assert "ONNX file (hash) abc -> def" in trt_mod.cache_decision(
        plan, _meta(onnx_sha256="def"), False
    )
    assert trt_mod.read_meta(plan) == _meta()


def test_graph_precision(tmp_path: Path) -> None:
    from onnx_deploy.convert.quantize import convert_fp16
    from onnx_deploy.convert.quantize import quantize_static_model

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)
    ).eval()
    fp32 = export_model(model, torch.randn(2, 3, 8, 8), tmp_path / "m.onnx").path
    assert trt_mod.graph_precision(fp32) == "fp32"
    convert_fp16(fp32, tmp_path / "h.onnx", validate=False)
    assert trt_mod.graph_precision(tmp_path / "h.onnx") == "fp16"
    calib = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    quantize_static_model(fp32, tmp_path / "q.onnx", calib, validate=False)
    assert trt_mod.graph_precision(tmp_path / "q.onnx") == "int8"


def test_inputs_outside_the_profile_are_refused_with_the_profile() -> None:
    from onnx_deploy.convert.runners.tensorrt import check_profile

    profiles = ("ids:1x1/8x128/64x512,mask:1x1/8x128/64x512",)
    check_profile({"ids": np.zeros((64, 512)), "mask": np.zeros((2, 3))}, profiles)
    with pytest.raises(InputMismatchError) as info:
        check_profile({"ids": np.zeros((65, 10)), "mask": np.zeros((65, 10))}, profiles)
    msg = str(info.value)
    assert "ids shape [65, 10] outside min [1, 1] .. max [64, 512]" in msg and profiles[0] in msg


class Energy(nn.Module):
    """Activations whose sum of squares passes FP16's largest value (65504)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.head = nn.Linear(16, 64), nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x) * 40.0
        energy = (h * h).sum(-1, keepdim=True)
        return self.head(h / energy.sqrt())


def test_fp16_overflow_is_found_and_kept_in_fp32(tmp_path: Path) -> None:
    from onnx_deploy.convert.quantize import convert_fp16
    from onnx_deploy.convert.quantize import fp16_overflow_nodes

    path = export_model(Energy().eval(), torch.randn(2, 16), tmp_path / "e.onnx").path
    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    hot = fp16_overflow_nodes(path, x)
    assert [(n.op_type, n.max_abs > 65504) for n in hot] == [("ReduceSum", True), ("Sqrt", True)]
    # the naive FP16 graph stores that sum in float16: inf (ONNX Runtime's CPU kernels
    # compute FP16 ops in FP32 and hide it in the final output; a GPU does not)
    naive = convert_fp16(path, tmp_path / "naive.onnx", validate=False)
    proto = onnx.load(naive.output_path)
    proto.graph.output.append(
        onnx.helper.make_tensor_value_info(hot[0].tensor, onnx.TensorProto.FLOAT16, None)
    )
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    with OnnxRuntimeRunner(proto.SerializeToString(), "cpu") as runner:
        assert np.isinf(runner.infer({"x": x})[hot[0].tensor]).any()
    safe = trt_mod.fp16_graph(path, tmp_path / "safe.onnx", x)
    assert safe.validation.ok and safe.details["kept_fp32"] == tuple(n.node for n in hot)
    nodes = {n.name: n for n in onnx.load(safe.output_path).graph.node}
    producer = {out: n.name for n in nodes.values() for out in n.output}
    first, second = (n.node for n in hot)
    assert producer[nodes[second].input[0]] == first, "kept nodes joined in FP32, no Cast between"
    assert trt_mod.graph_precision(safe.output_path) == "fp16"


def test_without_tensorrt_every_entry_point_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    path = export_model(Energy().eval(), torch.randn(2, 16), tmp_path / "e.onnx").path
    with pytest.raises(MissingExtraError, match="pip install tensorrt-cu13"):
        trt_mod.load_tensorrt()
    code = main(["trt", "build", path, "-o", str(tmp_path / "e.plan")])
    out, err = capsys.readouterr()
    assert code == 1 and "pip install tensorrt-cu13" in err and len(err.strip().splitlines()) == 1
    assert "trtexec --onnx=" in out and "polygraphy run" in out, "the commands come first"
    assert not (tmp_path / "e.plan").exists()
    # a runner for an engine: its specs come from the metadata, TensorRT only when it runs
    from onnx_deploy.convert.runners.tensorrt import TensorRTRunner
    from onnx_deploy.convert.runners.tensorrt import ort_tensorrt_runner

    plan = tmp_path / "e.plan"
    plan.write_bytes(b"PLAN")
    trt_mod.meta_path(plan).write_text(json.dumps(_meta(profiles=("x:1x16/8x16/64x16",)).to_dict() | {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 16]}]}))  # fmt: skip
    runner = TensorRTRunner(plan)
    assert runner.inputs == (TensorSpec("x", "float32", ("batch", 16)),)
    with pytest.raises(MissingExtraError, match="tensorrt-cu13"):
        runner.infer(np.zeros((2, 16), np.float32))
    with pytest.raises(InputMismatchError, match="outside the engine's optimization profile"):
        from onnx_deploy.convert.runners.tensorrt import check_profile

        check_profile({"x": np.zeros((65, 16))}, runner.meta.profiles)
    with pytest.raises(ProviderError, match="TensorrtExecutionProvider"):
        ort_tensorrt_runner(path, fp16=True)
    code = main(["doctor", "--no-torch", "--json"])
    assert "tensorrt-cu13" in json.loads(capsys.readouterr().out)["tensorrt"]["detail"]


def test_an_engine_generates_inputs_inside_its_profile(tmp_path: Path) -> None:
    from onnx_deploy.convert.runners.tensorrt import TensorRTRunner

    plan = tmp_path / "text.plan"
    plan.write_bytes(b"PLAN")
    meta = _meta(profiles=("ids:1x16/8x128/32x512,mask:1x16/8x128/32x512",)).to_dict()
    meta["inputs"] = [
        {"name": "ids", "dtype": "int64", "shape": ["batch", "seq"]},
        {"name": "mask", "dtype": "bool", "shape": ["batch", "seq"]},
    ]
    trt_mod.meta_path(plan).write_text(json.dumps(meta))
    runner = TensorRTRunner(plan)
    assert [d.text() for d in runner.dims()] == ["batch=1:8:32", "seq=16:128:512"]
    feeds = runner.example_inputs(batch_size=4)
    assert feeds["ids"].shape == (4, 128) and feeds["mask"].dtype == np.bool_
    plan_sizes = runner.signature().size_plan((1, 2, 8))
    assert all(16 <= p["seq"] <= 512 for p in plan_sizes), "validation stays inside the profile"
