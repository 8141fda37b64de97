"""Triton model repositories: configs parsed with Triton's own schema, the layout Triton
expects, batching from the signature, and no silent overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from onnx_deploy.cli import main
from onnx_deploy.convert.export import export_model
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.serve.triton import TritonError
from onnx_deploy.serve.triton import check_layout
from onnx_deploy.serve.triton import config_text
from onnx_deploy.serve.triton import export_repository
from onnx_deploy.serve.triton import model_config_pb2
from onnx_deploy.serve.triton import parse_config

PB2 = model_config_pb2()  # Triton's own protobuf schema, from tritonclient


def test_image_model_config(tiny_onnx: Path, tmp_path: Path) -> None:
    r = export_repository(tiny_onnx, tmp_path / "repo", preferred_batch_sizes=(4, 8, 128))
    cfg = parse_config(Path(r.config_path).read_text())  # Triton's ModelConfig message
    assert cfg.name == "tiny" and cfg.platform == "onnxruntime_onnx"
    assert cfg.max_batch_size == 64
    assert list(cfg.input[0].dims) == [3, 16, 16]  # the batch dim is left out
    assert cfg.input[0].data_type == PB2.DataType.Value("TYPE_FP32")
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]  # 128 > max_batch_size
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 100
    assert cfg.instance_group[0].kind == PB2.ModelInstanceGroup.Kind.Value("KIND_CPU")
    assert cfg.model_warmup[0].inputs[cfg.input[0].name].random_data
    assert r.files == ("tiny/1/model.onnx", "tiny/config.pbtxt")
    assert check_layout(tmp_path / "repo" / "tiny") == []


def test_text_model_dynamic_dims_and_int_types(tmp_path: Path) -> None:
    class Text(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(100, 8)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.emb(ids).mean(1)

    src = tmp_path / "text.onnx"
    export_model(
        Text().eval(), None, src, signature=Signature.parse(["ids:int64:batch,seq:0..100"])
    )
    r = export_repository(src, tmp_path / "repo", name="text")
    cfg = parse_config(r.config)
    assert list(cfg.input[0].dims) == [-1]  # seq: dynamic
    assert cfg.input[0].data_type == PB2.DataType.Value("TYPE_INT64")
    warm = cfg.model_warmup[0].inputs["ids"]
    assert warm.zero_data and list(warm.dims) == [16]  # token ids: zeros, never random


def test_fixed_batch_gets_max_batch_size_0(tiny_onnx: Path, tmp_path: Path) -> None:
    from onnx_deploy.convert.surgery import edit_file

    fixed = edit_file(tiny_onnx, tmp_path / "b1.onnx", "dim", dims=["batch=1"]).output_path
    r = export_repository(fixed, tmp_path / "repo", name="b1")
    cfg = parse_config(r.config)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [1, 3, 16, 16]
    assert not cfg.HasField("dynamic_batching")
    assert any("max_batch_size 0" in n for n in r.notes)


def test_gpu_tensorrt_accelerator_and_external_data(tmp_path: Path) -> None:
    from onnx_deploy.convert.surgery import edit_file

    src = tmp_path / "mlp.onnx"
    export_model(torch.nn.Linear(32, 32).eval(), torch.randn(2, 32), src)
    ext = edit_file(src, tmp_path / "ext.onnx", "external", external=True).output_path
    r = export_repository(ext, tmp_path / "repo", name="mlp", kind="gpu", tensorrt_fp16=True)
    cfg = parse_config(r.config)
    acc = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert acc.name == "tensorrt" and acc.parameters["precision_mode"] == "FP16"
    assert "mlp/1/model.onnx/model.onnx" in r.files and "mlp/1/model.onnx/ext.onnx.data" in r.files
    assert check_layout(tmp_path / "repo" / "mlp") == []
    with pytest.raises(TritonError, match="GPU instances"):
        export_repository(src, tmp_path / "repo2", tensorrt_fp16=True)


def test_tensorrt_plan_uses_its_metadata(tmp_path: Path) -> None:
    from onnx_deploy.convert.tensorrt import EngineMeta
    from onnx_deploy.convert.tensorrt import meta_path

    plan = tmp_path / "m.plan"
    plan.write_bytes(b"engine bytes")
    with pytest.raises(TritonError, match="no metadata"):
        export_repository(plan, tmp_path / "repo")
    meta = EngineMeta(
        "11.4.0", "NVIDIA H200", "9.0", "abc", ("x:1x3x8x8,8x3x8x8,64x3x8x8",), "fp16", 1 << 30,
        (TensorSpec("x", "float16", ("batch", 3, 8, 8)),),
        (TensorSpec("y", "float16", ("batch", 10)),),
    )  # fmt: skip
    meta_path(plan).write_text(json.dumps(meta.to_dict()))
    r = export_repository(plan, tmp_path / "repo")
    cfg = parse_config(r.config)
    assert cfg.platform == "tensorrt_plan" and r.files[0] == "m/1/model.plan"
    assert cfg.instance_group[0].kind == PB2.ModelInstanceGroup.Kind.Value("KIND_GPU")
    assert cfg.input[0].data_type == PB2.DataType.Value("TYPE_FP16")
    assert any("NVIDIA H200" in n for n in r.notes)


def test_the_schema_catches_a_bad_config() -> None:
    spec = TensorSpec("x", "float32", ("batch", 4))
    text, _ = config_text("m", [spec], [spec])
    parse_config(text)
    with pytest.raises(TritonError, match="ModelConfig schema"):
        parse_config(text.replace("max_batch_size: 64", "max_batch_size: sixty-four"))
    with pytest.raises(TritonError, match="ModelConfig schema"):
        parse_config(text + "\ndynamic_batching { max_queue_delay: 5 }")
    with pytest.raises(TritonError, match="no data type"):
        config_text("m", [TensorSpec("x", "complex64", ("batch", 4))], [spec])


def test_no_silent_overwrite_and_atomic(tiny_onnx: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    export_repository(tiny_onnx, repo)
    before = (repo / "tiny" / "config.pbtxt").read_text()
    with pytest.raises(OutputExistsError, match="--force"):
        export_repository(tiny_onnx, repo, max_batch_size=8)
    assert (repo / "tiny" / "config.pbtxt").read_text() == before
    export_repository(tiny_onnx, repo, max_batch_size=8, force=True)
    assert "max_batch_size: 8" in (repo / "tiny" / "config.pbtxt").read_text()
    assert [p.name for p in repo.iterdir()] == ["tiny"]  # no temporary folder left


def test_cli_triton_export(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    assert main(["triton", "export", str(tiny_onnx), "--repo", str(repo), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["max_batch_size"] == 64 and payload["platform"] == "onnxruntime_onnx"
    assert main(["triton", "export", str(tiny_onnx), "--repo", str(repo)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["triton", "export", str(tmp_path / "nope.onnx"), "--repo", str(repo)]) == 1
    assert "no such file" in capsys.readouterr().err
