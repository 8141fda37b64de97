"""The units that grow: the pass, runtime and model-source registries; the model's contract
that travels with the file; the oldest ONNX Runtime that loads a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper

from onnx_deploy.core.contract import NO_CONTRACT
from onnx_deploy.core.contract import ModelContract
from onnx_deploy.core.contract import read_contract
from onnx_deploy.core.contract import write_contract
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec

# --- passes -------------------------------------------------------------------------------


def test_the_chain_table_comes_from_the_passes_declarations() -> None:
    from onnx_deploy.passes import by_command
    from onnx_deploy.passes import chain_file
    from onnx_deploy.passes import chains
    from onnx_deploy.passes import get_pass
    from onnx_deploy.passes import passes

    table = chains()
    for chain in table:
        for before, after in zip(("", *chain), chain, strict=False):
            assert before in get_pass(after).follows, chain  # each step follows its declaration
    assert ("slim", "fuse", "int8-dynamic") in table and ("slim", "fuse", "int8-static") in table
    assert all(c[0] == "slim" for c in table)  # slimming first, for every source
    assert set(by_command("quantize")) == {
        "static",
        "dynamic",
        "fp16",
        "int4",
        "int8-weight",
        "tensorrt",
    }
    assert chain_file("v", ("slim", "fuse", "int8-dynamic")).name == "model.slim.fused.dynint8.onnx"
    assert chain_file("v", ("slim", "tensorrt-engine")).suffix == ".plan"
    for p in passes().values():  # every pass declares its options with defaults
        p.default_options()
    with pytest.raises(ValueError, match="unknown pass 'int3'"):
        get_pass("int3")


def test_a_pass_that_does_not_apply_says_why(tiny_onnx: Path) -> None:
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import facts
    from onnx_deploy.passes import get_pass

    f = facts(tiny_onnx)
    assert not f.matmul_heavy and "Conv" in f.ops
    assert "not MatMul-heavy" in get_pass("int8-dynamic").applies(f, Context())
    assert "not a transformer" in get_pass("fuse").applies(f, Context())
    assert "calibration" in get_pass("int8-static").missing(Context())
    assert "--target cuda" in get_pass("tensorrt-engine").missing(Context())


# --- runtimes ------------------------------------------------------------------------------


def test_runtime_names_modes_and_what_each_accepts(tmp_path: Path) -> None:
    from onnx_deploy.runtimes import names
    from onnx_deploy.runtimes import parse_runtimes
    from onnx_deploy.runtimes import resolve

    assert names()[0] == "onnxruntime" and "openvino-bf16" in names() and "tensorrt" in names()
    runtime, mode = resolve("openvino-bf16")
    assert runtime.name == "openvino" and mode.precision == "bf16" and mode.cpu == ("BF16",)
    assert parse_runtimes("onnxruntime, openvino") == ("onnxruntime", "openvino")
    with pytest.raises(ValueError, match="unknown runtime"):
        parse_runtimes("tflite")
    # a graph with a contrib op runs on ONNX Runtime only
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    node = helper.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("com.microsoft", 1)],
    )
    model.ir_version = 10
    path = tmp_path / "contrib.onnx"
    onnx.save(model, path)
    assert resolve("onnxruntime")[0].accepts(path) == ""
    assert "cannot run ONNX Runtime's contrib ops (FastGelu)" in resolve("openvino")[0].accepts(
        path
    )
    assert "runs .plan files" in resolve("tensorrt")[0].accepts(path)
    assert "NVIDIA GPU" in resolve("tensorrt")[0].available("cpu") or "cuda" in resolve("tensorrt")[
        0
    ].available("cpu")


# --- sources -------------------------------------------------------------------------------


def test_every_kind_of_spec_has_one_source() -> None:
    from onnx_deploy.sources import ModelSource
    from onnx_deploy.sources import is_spec
    from onnx_deploy.sources import source_for
    from onnx_deploy.sources import sources
    from onnx_deploy.sources import spec_name

    assert set(sources()) == {"torchvision", "hf", "file", "project"}
    assert source_for("torchvision:resnet18").name == "torchvision"
    assert source_for("models/m.py:build").name == "file"
    assert spec_name("hf:models/distilbert/") == "distilbert"
    assert is_spec("project:digits_cnn") and not is_spec("model.onnx")
    assert ModelSource("x.onnx").is_onnx and ModelSource("x.onnx").task_data() is None
    with pytest.raises(ModelSpecError, match="source 'tflite' unknown; use"):
        source_for("tflite:model")
    with pytest.raises(ModelSpecError, match="not understood"):
        source_for("resnet18")
    data = ModelSource("project:digits_cnn").task_data()
    assert data is not None and len(data.labels) == len(data.validation) == 450


# --- the contract -------------------------------------------------------------------------


def _contract() -> ModelContract:
    return ModelContract(
        source="hf:x", family="classifier", task="classification", judge="top1",
        weights="trained",
        inputs=(InputSpec("input_ids", "int64", ("batch", "seq"), 0, 100),
                InputSpec("attention_mask", "int64", ("batch", "seq"), kind="mask")),
        dims=(DimRange("batch", 1, 64), DimRange("seq", 1, 64, opt=16)),
        roles={"input_ids": "token_ids"}, defaults={"token_type_ids": 0.0},
    )  # fmt: skip


def test_the_contract_round_trips_through_the_file_and_a_runner_reads_it(tmp_path: Path) -> None:
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("sum", TensorProto.INT64, ["batch", "seq"])
    graph = helper.make_graph([helper.make_node("Add", ["input_ids", "attention_mask"], ["sum"])],
                              "g", [ids, mask], [out])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    plain = tmp_path / "plain.onnx"
    onnx.save(model, plain)
    with OnnxRuntimeRunner(plain, "cpu") as runner:
        assert runner.contract is None  # guessed from names: values 0-9, a mask by its name
        assert runner.example_inputs(2, dim_values={"seq": 8})["input_ids"].max() < 10
    write_contract(model, _contract())
    stamped = tmp_path / "stamped.onnx"
    onnx.save(model, stamped)
    assert read_contract(onnx.load(stamped)) == _contract()
    with OnnxRuntimeRunner(stamped, "cpu") as runner:
        assert runner.contract == _contract()
        feeds = runner.example_inputs(3)
        assert feeds["input_ids"].shape == (3, 16)  # seq at the contract's example size
        assert feeds["attention_mask"][0].all()  # a padding mask: the first row unpadded
        assert runner.signature().dim("seq").max == 64
    write_contract(model, None)
    assert read_contract(model) is None
    broken = helper.make_model(graph)
    entry = broken.metadata_props.add()
    entry.key, entry.value = "onnx_deploy.contract", "{not json"
    assert read_contract(broken) is None  # a damaged contract is no contract
    assert "guessed from their names" in NO_CONTRACT


def test_the_contract_travels_from_export_through_every_pass(tmp_path: Path) -> None:
    """A file slimmed, quantized, fused keeps what its source knew."""
    transformers = pytest.importorskip("transformers")
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import run_pass
    from onnx_deploy.workflows.pipeline import export_spec

    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=37,
                                  max_position_embeddings=64)  # fmt: skip
    transformers.BertForSequenceClassification(cfg).save_pretrained(tmp_path / "bert")
    exported = export_spec(f"hf:{tmp_path / 'bert'}", tmp_path / "m.onnx")
    contract = read_contract(onnx.load(exported.export.path, load_external_data=False))
    assert contract.family == "classifier" and contract.judge == "top1"
    assert contract.weights == "trained"  # save_pretrained wrote a weights file: trusted as given
    assert contract.defaults == {"token_type_ids": 0.0}
    assert {d.name: d.max for d in contract.dims}["seq"] == 64
    ctx = Context(force=True)
    for name in ("slim", "fp16", "int8-dynamic", "fuse"):
        art = run_pass(name, exported.export.path, tmp_path / f"{name}.onnx", ctx)
        assert read_contract(onnx.load(art.path, load_external_data=False)) == contract, name


# --- the oldest ONNX Runtime --------------------------------------------------------------


def _tiny(ir: int, opset: int, op: str = "Relu", domain: str = "") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    imports = [helper.make_opsetid("", opset)] + (
        [helper.make_opsetid(domain, 1)] if domain else []
    )
    model = helper.make_model(
        helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g", [x], [y]),
        opset_imports=imports,
    )
    model.ir_version = ir
    return model


def test_the_oldest_onnxruntime_is_read_off_the_measured_releases() -> None:
    from onnx_deploy.infer.ortcompat import oldest_onnxruntime
    from onnx_deploy.infer.ortcompat import releases

    table = releases()
    assert table["releases"][0]["version"].startswith("1.16")
    assert table["method"] and table["measured"]
    # the dynamo exporter's IR 10 needs 1.18; IR 9 at opset 17 loads on the oldest measured
    need = oldest_onnxruntime(_tiny(10, 20))
    assert need.version == "1.18" and need.because == ("IR version 10",)
    assert oldest_onnxruntime(_tiny(9, 17)).version == "1.16"
    assert "ai.onnx opset 23" in oldest_onnxruntime(_tiny(9, 23)).because
    missing = oldest_onnxruntime(_tiny(9, 17, "NoSuchOp", "com.example"))
    assert missing.version is None and "com.example.NoSuchOp-1" in missing.missing
    # the installed release loads what the table says it loads
    import onnxruntime as ort

    here = next(r for r in table["releases"] if r["version"].startswith(ort.__version__[:4]))
    from onnx_deploy.infer.sessions import create_session

    create_session(_tiny(here["max_ir"], 13).SerializeToString(), "cpu")
    with pytest.raises(Exception, match="IR version"):
        create_session(_tiny(here["max_ir"] + 1, 13).SerializeToString(), "cpu")


def test_the_releases_table_is_what_refresh_writes() -> None:
    from onnx_deploy.infer.ortcompat import RELEASES_FILE
    from onnx_deploy.infer.ortcompat import merge

    stored = json.loads(RELEASES_FILE.read_text())
    probes = [
        {"version": "1.2.0", "max_ir": 9, "max_opset": 19, "kernels": {":Relu": [[14, 1000000]]}},
        {"version": "1.3.0", "max_ir": 10, "max_opset": 21,
         "kernels": {":Relu": [[14, 1000000]], "com.microsoft:X": [[1, 1000000]]}},
    ]  # fmt: skip
    table = merge(probes, "2026-12-06", "x86_64")
    assert table["kernels"][":Relu"] == [[14, 1000000, "1.2.0"]]
    assert table["kernels"]["com.microsoft:X"] == [[1, 1000000, "1.3.0"]]
    assert set(stored) == set(table)
    assert np.all([len(v[0]) == 3 for v in stored["kernels"].values()])
