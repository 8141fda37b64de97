"""The TensorRT code against TensorRT's real Python API, 11.4 and 10.16 (see conftest.py).

1. Conformance: every ``trt.`` name, every method called on a TensorRT object (builder,
   network, parser, config, profile, runtime, engine, context, timing cache, parser
   error) and every keyword passed is read from the source with ``ast`` and looked up in
   the real bindings' API dump; a name the API lacks fails the test. Names only 10.x has
   (``LEGACY_10X``) must be missing from 11 and reached only on the 10.x branch.
2. Protocol: ``build_engine`` runs against a recording fake generated from the same dump
   (``fake_trt.py``), which refuses unknown members and keywords as the real module
   would; the test checks the order and arguments of the calls, on 11 and on 10.x.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from onnx_deploy.convert import tensorrt as trt_mod
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.signature import DimRange

from .fake_trt import FakeTensorRT
from .fake_trt import fits

SRC = Path(trt_mod.__file__).resolve().parent
# Variables (or self._ attributes) holding TensorRT objects in the code, by class.
OBJECTS = {
    "builder": "Builder", "network": "INetworkDefinition", "parser": "OnnxParser",
    "config": "IBuilderConfig", "profile": "IOptimizationProfile", "runtime": "Runtime",
    "engine": "ICudaEngine", "context": "IExecutionContext", "cache": "ITimingCache",
    "error": "ParserError",
}  # fmt: skip
RETURNS = {("IBuilderConfig", "get_timing_cache"): "ITimingCache"}
SCANNED = [(SRC / "tensorrt.py", "_build"), (SRC / "tensorrt.py", "network_flags"),
           (SRC / "tensorrt.py", "legacy_flags"), (SRC / "runners" / "tensorrt.py", "TensorRTRunner")]  # fmt: skip


def _receiver(node: ast.expr) -> str | None:
    """The TensorRT class of ``builder`` / ``self._context`` / ``config.get_timing_cache()``."""
    if isinstance(node, ast.Name):
        return OBJECTS.get(node.id)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    ):
        return OBJECTS.get(node.attr.lstrip("_"))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = _receiver(node.func.value)
        return RETURNS.get((owner, node.func.attr)) if owner else None
    return None


def _trt_chain(node: ast.Attribute) -> str | None:
    parts = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    if isinstance(cur, ast.Name) and cur.id == "trt":
        return ".".join(reversed(parts))
    return None


def used_api() -> tuple[set[str], list[tuple[str, str, int, tuple[str, ...], str]]]:
    """``trt.`` chains, and calls ``(class, method, n positional, keywords, where)``."""
    chains: set[str] = set()
    members: set[str] = set()
    calls = []
    for path, name in SCANNED:
        tree = ast.parse(path.read_text())
        scope = next(
            n for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name
        )  # fmt: skip
        for node in ast.walk(scope):
            if isinstance(node, ast.Attribute):
                chain = _trt_chain(node)
                if chain:
                    chains.add(f"trt.{chain}")
                owner = _receiver(node.value)
                if owner:
                    members.add(f"{owner}.{node.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = _receiver(node.func.value)
                where = f"{path.name}:{node.lineno}"
                if owner:
                    kws = tuple(k.arg for k in node.keywords if k.arg)
                    calls.append((owner, node.func.attr, len(node.args), kws, where))
                chain = _trt_chain(node.func)
                if chain and "." not in chain:  # trt.Builder(logger), trt.Runtime(logger)
                    kws = tuple(k.arg for k in node.keywords if k.arg)
                    calls.append(("", chain, len(node.args), kws, where))
    # drop chain prefixes (trt.Logger is a prefix of trt.Logger.WARNING)
    full = {c for c in chains if not any(o != c and o.startswith(c + ".") for o in chains)}
    return {c.removeprefix("trt.") for c in full} | members, calls


def _exists(api: dict[str, Any], dotted: str) -> bool:
    cls, _, member = dotted.rpartition(".")
    return member in api.get(cls, {}) if cls else member in api[""]


def test_every_name_the_code_uses_exists(real_api: dict[str, Any]) -> None:
    api, version = real_api["api"], real_api["version"]
    major = int(version.split(".")[0])
    chains, _ = used_api()
    assert {"Builder", "OnnxParser", "MemoryPoolType.WORKSPACE", "IBuilderConfig.set_memory_pool_limit",
            "IExecutionContext.execute_async_v3", "IExecutionContext.set_input_shape"} <= chains  # fmt: skip
    missing = sorted(c for c in chains if not _exists(api, c))
    assert missing == [], f"TensorRT {version} has no {missing}"
    declared = {f"{c}.{m}" if c else m for c, members in trt_mod.TRT_API.items() for m in members}
    assert chains <= declared | {"BuilderFlag"}, f"not in TRT_API: {sorted(chains - declared)}"
    for name in sorted(declared):
        if major >= 11 and name in trt_mod.LEGACY_10X:
            assert not _exists(api, name), f"{name} is in TensorRT 11 after all: not legacy"
        else:
            assert _exists(api, name), f"TRT_API lists {name}, which TensorRT {version} lacks"


def test_every_call_fits_a_real_signature(real_api: dict[str, Any]) -> None:
    api, version = real_api["api"], real_api["version"]
    _, calls = used_api()
    assert len(calls) >= 15
    for cls, method, positional, keywords, where in calls:
        overloads = api[cls][method] if cls else api[""][method]
        if not overloads:  # a property read through a call would fail: not callable
            pytest.fail(f"{where}: {cls}.{method} is not callable in TensorRT {version}")
        assert any(fits(o, positional, keywords) for o in overloads), (
            f"{where}: {cls}.{method}({positional} args, {keywords}) fits none of {overloads}"
        )


ONNX_CACHE: dict[str, Path] = {}


@pytest.fixture
def text_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-input model with dynamic batch and sequence, exported once."""
    if "text" not in ONNX_CACHE:
        from onnx_deploy.convert.export import export_model
        from onnx_deploy.core.signature import Signature

        class Two(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = torch.nn.Embedding(50, 8)

            def forward(self, ids: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
                return self.emb(ids).mean(1) * scale

        sig = Signature.parse(["ids:int64:batch,seq:0..50", "scale:float32:batch,1"])
        out = tmp_path_factory.mktemp("trt") / "two.onnx"
        export_model(Two().eval(), None, out, signature=sig)
        ONNX_CACHE["text"] = out
    return ONNX_CACHE["text"]


def _build(dump: dict[str, Any], onnx: Path, path: Path, **kw: Any) -> tuple[Any, FakeTensorRT]:
    fake = FakeTensorRT(dump, **{k: kw.pop(k) for k in ("parse_ok", "plan") if k in kw})
    result = trt_mod.build_engine(
        onnx, path, dims=[DimRange("seq", 1, 256, 32)], trt=fake, gpu=("Fake GPU", "9.0"), **kw
    )
    return result, fake


def test_build_sequence(real_api: dict[str, Any], text_onnx: Path, tmp_path: Path) -> None:
    major = int(real_api["version"].split(".")[0])
    cache = tmp_path / "timing.cache"
    result, fake = _build(real_api, text_onnx, tmp_path / "two.plan", timing_cache=cache)
    names = fake.names()
    assert names == [
        "Logger", "init_libnvinfer_plugins", "Builder", "Builder.create_network", "OnnxParser",
        "OnnxParser.parse_from_file", "Builder.create_builder_config", "IBuilderConfig.set_memory_pool_limit",
        "Builder.create_optimization_profile", "IOptimizationProfile.set_shape",
        "IOptimizationProfile.set_shape", "IBuilderConfig.add_optimization_profile",
        "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
        "Builder.build_serialized_network", "IBuilderConfig.get_timing_cache", "ITimingCache.serialize",
    ]  # fmt: skip
    calls = {f"{c}.{m}" if c else m: (a, k) for c, m, a, k in fake.calls}
    flags = calls["Builder.create_network"][0][0]
    strongly_typed = real_api["enums"]["NetworkDefinitionCreationFlag"]["STRONGLY_TYPED"]
    if major >= 11:
        assert flags == 0, "11: strong typing is always on (the flag is ignored)"
    else:  # the real bit: STRONGLY_TYPED is 1 in 10.16 (EXPLICIT_BATCH is 0)
        assert strongly_typed == 1 and flags == 1 << strongly_typed, (
            "10.x: a strongly typed network, as the graph's precision decides"
        )
    assert calls["OnnxParser.parse_from_file"][0] == (str(text_onnx),), (
        "the path, for external data"
    )
    pool = calls["IBuilderConfig.set_memory_pool_limit"][1]
    assert repr(pool["pool"]) == "MemoryPoolType.WORKSPACE" and pool["pool_size"] == 4 << 30
    shapes = [k for c, m, a, k in fake.calls if m == "set_shape"]
    assert shapes == [
        {"input": "ids", "min": (1, 1), "opt": (8, 32), "max": (64, 256)},
        {"input": "scale", "min": (1, 1), "opt": (8, 1), "max": (64, 1)},
    ]
    assert calls["IBuilderConfig.create_timing_cache"][1] == {"serialized_timing_cache": b""}
    assert calls["IBuilderConfig.set_timing_cache"][1]["ignore_mismatch"] is False
    assert cache.read_bytes() == b"TIMINGS" and (tmp_path / "two.plan").read_bytes() == b"PLAN"
    assert not result.reused and result.precision_built == "fp32"
    assert "--fp16" not in result.trtexec and "--minShapes=ids:1x1,scale:1x1" in result.trtexec

    # the same inputs again: reused, TensorRT not called; a changed ONNX file: rebuilt, saying why
    again, fake2 = _build(real_api, text_onnx, tmp_path / "two.plan", timing_cache=cache)
    assert again.reused and fake2.calls == []
    import onnx

    changed = tmp_path / "changed.onnx"
    proto = onnx.load(str(text_onnx))
    proto.doc_string = "retrained"
    onnx.save(proto, str(changed))
    third, fake3 = _build(real_api, changed, tmp_path / "two.plan")
    assert not third.reused and "ONNX file (hash)" in third.reason
    assert "Builder.build_serialized_network" in fake3.names()


def test_precision_branch(real_api: dict[str, Any], text_onnx: Path, tmp_path: Path) -> None:
    major = int(real_api["version"].split(".")[0])
    if major >= 11:
        with pytest.raises(trt_mod.TensorRTError, match="no precision builder flags"):
            _build(real_api, text_onnx, tmp_path / "a.plan", precision="fp16")
        return
    result, fake = _build(real_api, text_onnx, tmp_path / "a.plan", precision="fp16")
    flags = [a[0] for c, m, a, _ in fake.calls if m == "set_flag"]
    assert [repr(f) for f in flags] == ["BuilderFlag.FP16"]
    network_flags = next(a[0] for c, m, a, _ in fake.calls if m == "create_network")
    assert network_flags == 0, "the legacy flags need a weakly typed network"
    assert result.precision_built.startswith("fp16 (builder flags, TensorRT 10")


def test_parser_errors_name_the_node(
    real_api_11: dict[str, Any], text_onnx: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        trt_mod.TensorRTError, match=r"node node_Conv_3 \(Conv\): unsupported attribute"
    ):
        _build(real_api_11, text_onnx, tmp_path / "a.plan", parse_ok=False)
    assert not (tmp_path / "a.plan").exists()


def test_a_failed_build_writes_nothing(
    real_api_11: dict[str, Any], text_onnx: Path, tmp_path: Path
) -> None:
    with pytest.raises(trt_mod.TensorRTError, match="returned None"):
        _build(real_api_11, text_onnx, tmp_path / "a.plan", plan=None)
    assert list(tmp_path.iterdir()) == []


def test_a_foreign_file_is_not_overwritten(
    real_api_11: dict[str, Any], text_onnx: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "mine.plan"
    plan.write_bytes(b"someone else's engine")
    with pytest.raises(OutputExistsError, match=r"no mine\.plan\.json"):
        _build(real_api_11, text_onnx, plan)
    assert plan.read_bytes() == b"someone else's engine"
    result, _ = _build(real_api_11, text_onnx, plan, force=True)
    assert not result.reused and plan.read_bytes() == b"PLAN"


def test_run_sequence(real_api: dict[str, Any], text_onnx: Path, tmp_path: Path) -> None:
    """The runner on a recording fake (host tensors stand in for CUDA ones): for each batch,
    set_input_shape for every input, then every tensor's address, then execute_async_v3
    on the runner's own stream; outputs allocated at the shape the context reports."""
    from onnx_deploy.convert.runners.tensorrt import TensorRTRunner

    _, _ = _build(real_api, text_onnx, tmp_path / "two.plan")
    fake = FakeTensorRT(real_api)
    runner = TensorRTRunner(tmp_path / "two.plan", trt=fake, tensor_device="cpu")
    (out_name,) = runner.output_names
    fake.output_shapes[out_name] = (3, 8)
    feeds = runner.example_inputs(batch_size=3)
    with runner:
        outputs = runner.infer(feeds)
    assert outputs[out_name].shape == (3, 8)
    names = fake.names()
    assert names[:4] == [
        "Logger",
        "Runtime",
        "Runtime.deserialize_cuda_engine",
        "ICudaEngine.create_execution_context",
    ]
    run = [(m, a, k) for c, m, a, k in fake.calls if c == "IExecutionContext"]
    order = [m for m, _, _ in run]
    assert order == ["set_input_shape", "set_input_shape", "get_tensor_shape", "set_tensor_address",
                     "set_tensor_address", "set_tensor_address", "execute_async_v3"]  # fmt: skip
    assert [a for m, a, _ in run if m == "set_input_shape"] == [("ids", (3, 32)), ("scale", (3, 1))]
    addresses = [k["name"] for m, _, k in run if m == "set_tensor_address"]
    assert addresses == ["ids", "scale", out_name] and all(
        isinstance(k["memory"], int) and k["memory"] for m, _, k in run if m == "set_tensor_address"
    )
    assert run[-1][2] == {"stream_handle": 0}
    with pytest.raises(InputMismatchError, match="outside the engine's optimization profile"):
        runner.infer({"ids": np.zeros((65, 32), np.int64), "scale": np.zeros((65, 1), np.float32)})


def test_cli_run_bench_compare_on_the_fake(
    real_api_11: dict[str, Any],
    text_onnx: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI's trt run, bench and compare, with the runner on the recording fake: real
    samples sized to each batch, and a comparison that fails (the fake computes nothing)."""
    from onnx_deploy.cli import main
    from onnx_deploy.convert.runners import tensorrt as trt_runners

    _build(real_api_11, text_onnx, tmp_path / "two.plan")
    fake = FakeTensorRT(real_api_11)
    out_name = trt_runners.TensorRTRunner(tmp_path / "two.plan").output_names[0]
    fake.output_shapes[out_name] = lambda shapes: (shapes["ids"][0], 8)

    class OnFake(trt_runners.TensorRTRunner):
        def __init__(self, plan: Any, name: str | None = None) -> None:
            super().__init__(plan, name, trt=fake, tensor_device="cpu")

    from onnx_deploy.workflows import engine

    monkeypatch.setattr(engine, "TensorRTRunner", OnFake)  # what the CLI's library calls use
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "s.npz", ids=rng.integers(0, 50, (3, 20)), scale=rng.random((3, 1), np.float32)
    )
    plan, data = str(tmp_path / "two.plan"), str(tmp_path / "s.npz")
    assert main(["trt", "run", plan, "--inputs", data, "--batch-size", "2"]) == 0
    assert f"output    {out_name}: float32[2, 8]" in capsys.readouterr().out
    assert fake.input_shapes == {"ids": (2, 20), "scale": (2, 1)}
    assert main(["trt", "bench", plan, "--inputs", data, "--batch-sizes", "5", "--warmup", "1",
                 "--iters", "2"]) == 0  # fmt: skip
    assert fake.input_shapes["ids"] == (5, 20), "three samples repeated to a batch of five"
    assert main(["trt", "compare", plan, str(text_onnx), "--batch-sizes", "1,4"]) == 1
    assert "differ beyond the tolerance" in capsys.readouterr().err


def test_report_card_builds_an_engine_from_each_graph(
    real_api_11: dict[str, Any], tmp_path: Path
) -> None:
    """The TensorRT engine pass: one engine per FP32/FP16/QDQ graph, the precision coming
    from the graph (TensorRT 11), each parsed from its own file; the chains that end in it
    come from the pass registry."""
    from onnx_deploy.convert.export import export_model
    from onnx_deploy.convert.quantize import convert_fp16
    from onnx_deploy.convert.quantize import quantize_for_tensorrt
    from onnx_deploy.passes import Artifact
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import chain_title
    from onnx_deploy.passes import chains
    from onnx_deploy.passes import get_pass

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    fp32 = str(export_model(model, torch.randn(2, 3, 8, 8), tmp_path / "m.onnx").path)
    fp16 = convert_fp16(fp32, tmp_path / "m.fp16.onnx", validate=False).output_path
    calib = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    int8 = quantize_for_tensorrt(fp32, tmp_path / "m.int8.onnx", calib, validate=False).output_path
    engine = get_pass("tensorrt-engine")
    fake = FakeTensorRT(real_api_11)
    ctx = Context(
        target="cuda", batch_sizes=(1, 8), hooks={"tensorrt": fake, "gpu": ("Fake GPU", "9.0")}
    )
    assert engine.missing(ctx) == ""  # the GPU and TensorRT the hooks stand in for
    assert "--target cuda" in engine.missing(Context())
    made = [
        engine.run(Artifact(str(src), precision), tmp_path / f"{Path(src).stem}.plan", ctx, None)
        for src, precision in ((fp32, "fp32"), (fp16, "fp16"), (int8, "int8"))
    ]
    assert all(a.path.endswith(".plan") and a.runtimes == ("tensorrt",) for a in made)
    assert [a.precision for a in made] == ["fp32", "fp16", "int8"]
    parsed = [a[0] for _, m, a, _ in fake.calls if m == "parse_from_file"]
    assert parsed == [fp32, str(fp16), str(int8)]
    shapes = [k for _, m, _, k in fake.calls if m == "set_shape"]
    assert shapes[0]["min"][0] == 1 and shapes[0]["max"][0] == 8
    ends = [chain_title(c) for c in chains() if c[-1] == "tensorrt-engine"]
    assert ends == ["TensorRT FP32", "TensorRT FP16", "TensorRT INT8"]


def test_the_fake_refuses_what_the_real_bindings_refuse(real_api: dict[str, Any]) -> None:
    fake = FakeTensorRT(real_api)
    builder = fake.Builder(fake.Logger(fake.Logger.WARNING))
    with pytest.raises(TypeError, match="fits none"):  # network and config are required
        builder.build_serialized_network(builder.create_network(0))
    with pytest.raises(TypeError, match="fits none"):
        builder.create_network(flags=0, unknown=1)
    with pytest.raises(TypeError, match="no signature"):  # no Python constructor
        fake.ICudaEngine()
    with pytest.raises(AttributeError):
        _ = fake.NoSuchThing
    assert int(fake.Logger.WARNING) == real_api["enums"]["Logger.Severity"]["WARNING"]
    assert type(builder.create_network(0)).__name__ == "FakeObject"
    assert builder.create_network(0)._cls == "INetworkDefinition", "the real return type"


def test_tensorrt_builds_the_plugin_graph(real_api: dict[str, Any], tmp_path: Path) -> None:
    """``trt build --nms-plugin``: the EfficientNMS graph beside the engine, plugins
    initialised before parsing, on TensorRT's real API (the recording fake)."""
    from onnx_deploy.convert.surgery.detection import add_nms

    from .fake_trt import FakeTensorRT

    head = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["head"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 7, 100])],
        [onnx.helper.make_tensor_value_info("head", onnx.TensorProto.FLOAT, ["batch", 7, 100])],
    )  # fmt: skip
    model = onnx.helper.make_model(head, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 10
    nms = tmp_path / "det.onnx"
    onnx.save(add_nms(model), str(nms))
    fake = FakeTensorRT(real_api)
    plan = tmp_path / "det.plan"
    result = trt_mod.build_engine(nms, plan, trt=fake, gpu=("Fake GPU", "9.0"), nms_plugin=True)
    names = fake.names()
    assert names.index("init_libnvinfer_plugins") < names.index("OnnxParser.parse_from_file")
    swapped = tmp_path / "det.efficientnms.onnx"
    parsed = next(a for c, m, a, k in fake.calls if m == "parse_from_file")
    assert parsed == (str(swapped),) and plan.read_bytes() == b"PLAN"
    assert any(n.op_type == "EfficientNMS_TRT" for n in onnx.load(str(swapped)).graph.node)
    assert "efficientnms.onnx" in result.trtexec
