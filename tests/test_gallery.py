"""A gallery of models users bring, exported, validated and benchmarked through the
public API and the CLI: several inputs, a dict of outputs, int64 tokens with a padding
mask and a dynamic sequence, any image size, and torchvision classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_deploy.cli import main
from onnx_deploy.convert.export import export_model
from onnx_deploy.convert.verify import compare_torch_onnx
from onnx_deploy.core.errors import ExportError
from onnx_deploy.core.signature import Signature
from onnx_deploy.infer.modelinfo import describe
from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

GALLERY = Path(__file__).parent / "gallery" / "models.py"
TEXT_INPUTS = ["--input", "ids:int64:batch,seq:0..1000", "--input", "mask:bool:batch,seq"]
TEXT_DIMS = ["--dim", "batch=1:64", "--dim", "seq=1:512"]


def gallery(name: str) -> torch.nn.Module:
    from onnx_deploy.sources import load_model

    return load_model(f"{GALLERY}:{name}")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_model_exports_validates_and_benchmarks_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "text.onnx"
    spec = f"{GALLERY}:text"
    code, text, err = cli(capsys, "export", spec, *TEXT_INPUTS, *TEXT_DIMS, "-o", out)
    assert code == 0, err
    assert "ids: int64[batch, seq]" in text and "mask: bool[batch, seq]" in text
    assert "dims    batch=1:64, seq=1:512" in text
    assert "PASS" in text and ", seq [1, 2, 16, 512]" in text, (
        "validation varied the sequence up to its MAX"
    )
    info = describe(out)
    assert [i.shape for i in info.inputs] == [("batch", "seq"), ("batch", "seq")]
    assert [i.dtype for i in info.inputs] == ["int64", "bool"]

    # real samples from a file: padded at the end, ids inside the vocabulary
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 1000, (6, 40)).astype(np.int64)
    mask = np.arange(40) >= rng.integers(5, 40, (6, 1))
    np.savez(tmp_path / "real.npz", ids=ids, mask=mask)
    code, text, err = cli(
        capsys, "validate", out, "--reference", spec, "--inputs", tmp_path / "real.npz", "--json"
    )
    assert code == 0, err
    report = json.loads(text)
    assert report["ok"] and report["num_samples"] == 6 and report["dim_sizes"]["seq"] == [40]

    code, text, err = cli(
        capsys, "bench", out, spec, *TEXT_INPUTS, "--dim", "seq=1:24:512",
        "--batch-sizes", "1,4", "--warmup", "1", "--iters", "3",
    )  # fmt: skip
    assert code == 0, err
    assert "ids int64[4, 24]" in text and "mask bool[4, 24]" in text
    assert "speed-up" in text and "threads" in text


def test_image_and_metadata_model_falls_back_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = f"{GALLERY}:image_meta"
    args = ["--input", "image:float32:batch,3,32,32", "--input", "meta:float32:batch,5"]
    code, text, err = cli(capsys, "export", spec, *args, "-o", tmp_path / "m.onnx")
    assert code == 0, err
    assert "(torchscript," in text and "TorchScript fallback" in text
    assert "meta.weight references nonexistent attribute" in text and "PASS" in text
    assert [i.name for i in describe(tmp_path / "m.onnx").inputs] == ["image", "meta"]
    code, text, err = cli(
        capsys, "bench", tmp_path / "m.onnx", "--batch-sizes", "2", "--warmup", "1", "--iters", "3"
    )
    assert code == 0, err

    # without the fallback: one clean message that names the step, the cause and the fix
    code, _, err = cli(
        capsys, "export", spec, *args, "-o", tmp_path / "n.onnx", "--no-fallback",
        "--report", tmp_path / "report",
    )  # fmt: skip
    assert code == 1 and not (tmp_path / "n.onnx").exists()
    assert "\x1b" not in err, "no terminal colour codes"
    assert "named `meta`" in err and "step 2/3" in err and "self.meta_net" in err
    assert "Next steps:." not in err
    assert any((tmp_path / "report").glob("*.md")), "torch's report is kept"


def test_the_renamed_branch_exports_with_dynamo(tmp_path: Path) -> None:
    sig = Signature.parse(["image:float32:batch,3,32,32", "meta:float32:batch,5"])
    model = gallery("image_meta_renamed")
    res = export_model(model, None, tmp_path / "m.onnx", signature=sig)
    assert res.exporter == "dynamo" and res.fallback_reason == ""
    assert res.symbolic_dims == {"image": ("batch",), "meta": ("batch",)}
    compare_torch_onnx(model, res.path, signature=sig).raise_for_mismatch()


def test_library_error_for_the_name_clash(tmp_path: Path) -> None:
    sig = Signature.parse(["image:float32:batch,3,32,32", "meta:float32:batch,5"])
    with pytest.raises(ExportError) as info:
        export_model(gallery("image_meta"), None, tmp_path / "m.onnx", signature=sig)
    e = info.value
    assert e.step == 2 and e.kind == "name_clash" and "\x1b" not in str(e)
    assert e.cause.startswith("RuntimeError: Node meta_weight")
    assert list(tmp_path.iterdir()) == []


def test_dict_outputs_keep_their_order_and_both_are_checked(tmp_path: Path) -> None:
    model = gallery("two_heads")
    res = export_model(model, torch.randn(2, 12), tmp_path / "two.onnx")
    assert len(res.outputs) == 2 and all(o.shape[0] == "batch" for o in res.outputs)
    report = compare_torch_onnx(model, res.path, batch_sizes=(1, 3, 16)).raise_for_mismatch()
    assert len(report.outputs) == 2 and report.warnings == []
    assert [o.shape[1] for o in report.outputs] == [5, 8]


def test_keyword_inputs_by_name_in_any_order(tmp_path: Path) -> None:
    model = gallery("text")
    rng = np.random.default_rng(0)
    example = {
        "mask": torch.from_numpy(np.arange(7) >= rng.integers(2, 7, (2, 1))),
        "ids": torch.from_numpy(rng.integers(0, 1000, (2, 7))),
    }
    sig = Signature.parse(["ids:int64:batch,seq", "mask:bool:batch,seq"], ["seq=2:64"])
    res = export_model(model, example, tmp_path / "t.onnx", signature=sig)
    assert [i.name for i in res.inputs] == ["ids", "mask"], "the signature's order"
    report = compare_torch_onnx(model, res.path, signature=sig, batch_sizes=(1, 5))
    assert report.ok and set(report.dim_sizes["seq"]) >= {2, 16}


def test_segmentation_model_takes_any_image_size(tmp_path: Path) -> None:
    model = gallery("segmenter")
    sig = Signature.parse(["image:float32:batch,3,h,w"], ["h=32:256", "w=32:256"])
    res = export_model(model, None, tmp_path / "seg.onnx", signature=sig)
    assert res.inputs[0].shape == ("batch", 3, "h", "w")
    assert all(isinstance(d, str) for d in res.outputs[0].shape[2:])
    report = compare_torch_onnx(model, res.path, signature=sig).raise_for_mismatch()
    assert report.dim_sizes["h"] == (32, 64, 128, 256)  # up to the declared MAX
    assert report.dim_sizes["w"] == (64, 128, 256, 32)
    with OnnxRuntimeRunner(res.path, "cpu") as runner:
        (out,) = runner.infer(np.zeros((1, 3, 48, 80), np.float32)).values()
    assert out.shape == (1, 4, 48, 80)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "squeezenet1_1", "resnet18"])
def test_torchvision_classifiers(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"{name}.onnx"
    code, text, err = cli(
        capsys, "export", f"torchvision:{name}", "--input-shape", "3,64,64", "-o", out
    )
    assert code == 0, err
    assert "PASS" in text and "float32[batch, 3, 64, 64]" in text


def test_a_constant_model_passes_but_is_flagged(tmp_path: Path) -> None:
    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x * 1e-9)  # the input hardly reaches the output

    model = Constant().eval()
    res = export_model(model, torch.randn(2, 4), tmp_path / "c.onnx")
    report = compare_torch_onnx(model, res.path)
    assert report.ok and report.warnings, "PASS, with a warning"
    assert "hardly vary across inputs" in report.summary()
    assert report.to_dict()["warnings"] == report.warnings


def test_cli_signature_errors(
    tmp_path: Path, tiny_source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["export", f"{tiny_source}:tiny", "--input", "x:int65:batch"])
    assert info.value.code == 2 and "int65" in capsys.readouterr().err
    code, _, err = cli(
        capsys, "export", f"{GALLERY}:text", "--input", "ids:int64:batch,seq", "--dim",
        "width=1:8", "-o", tmp_path / "t.onnx",
    )  # fmt: skip
    assert code == 1 and "names no dim" in err and not (tmp_path / "t.onnx").exists()
    code, _, err = cli(
        capsys,
        "export",
        f"{GALLERY}:text",
        "--input",
        "ids:int64:batch,seq",
        "-o",
        tmp_path / "t.onnx",
    )
    assert code == 1 and "forward(ids, mask)" in err, "a missing input names forward's parameters"


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_export_from_an_example_file_with_size_one_dims(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names and dtypes come from the file; a batch of 1 and a sequence of 1 are widened
    so neither is specialised, and both come out symbolic."""
    ids = np.array([[7]], np.int64)
    mask = np.array([[False]])
    example = tmp_path / f"one.{fmt}"
    if fmt == "npz":
        np.savez(example, ids=ids, mask=mask)
    else:
        torch.save({"ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask)}, example)
    out = tmp_path / "t.onnx"
    code, text, err = cli(
        capsys, "export", f"{GALLERY}:text", "--example", example,
        "--input", "ids:int64:batch,seq:0..1000", "--input", "mask:bool:batch,seq", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert "dim batch repeated to 2" in text and "dim seq repeated to 2" in text
    assert [i.shape for i in describe(out).inputs] == [("batch", "seq")] * 2
    assert "PASS" in text


def test_an_example_file_that_contradicts_the_declaration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.savez(tmp_path / "bad.npz", ids=np.zeros((2, 5), np.int32), mask=np.zeros((2, 5), bool))
    code, _, err = cli(
        capsys, "export", f"{GALLERY}:text", "--example", tmp_path / "bad.npz",
        "--input", "ids:int64:batch,seq", "-o", tmp_path / "t.onnx",
    )  # fmt: skip
    assert code == 1 and "declared int64, the example data is int32" in err


class _FixedTable(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos = torch.nn.Parameter(torch.zeros(1, 7, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos  # only a sequence of exactly 7 fits


def test_a_dim_the_code_fixes_is_reported_with_its_name(tmp_path: Path) -> None:
    # exported at the one size the code takes: the check after export names the dim
    sig = Signature.parse(["x:float32:batch,seq,4"], ["seq=2:7:128"])
    with pytest.raises(ExportError, match=r"fixed them: x axis 1 \(seq\) = 7") as info:
        export_model(_FixedTable().eval(), None, tmp_path / "f.onnx", signature=sig)
    assert info.value.kind == "dynamic_dim"
    # exported at a size the code cannot take: PyTorch itself fails on the example, and the
    # error says so (not the exporter), with the shape and what to do
    sig = Signature.parse(["x:float32:batch,seq,4"], ["seq=2:64:128"])
    with pytest.raises(
        ExportError, match=r"PyTorch itself failed .*\(x float32\[2, 64, 4\]\)"
    ) as info:
        export_model(_FixedTable().eval(), None, tmp_path / "f.onnx", signature=sig)
    assert info.value.kind == "model_failed" and "--dim" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_bench_takes_one_unnamed_array_for_a_file_and_a_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .npy of samples fits any one-input model: an ONNX file, or a spec (whose sample
    shape it gives); eight samples are repeated to fill a batch of 16."""
    np.save(
        tmp_path / "x.npy", np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32)
    )
    spec = f"{GALLERY}:two_heads"
    export_model(gallery("two_heads"), torch.randn(2, 12), tmp_path / "two.onnx")
    for target in (tmp_path / "two.onnx", spec):
        code, text, err = cli(
            capsys, "bench", target, "--inputs", tmp_path / "x.npy", "--batch-sizes", "16",
            "--warmup", "1", "--iters", "2",
        )  # fmt: skip
        assert code == 0, err
        assert "real samples: x float32[16, 12]" in text
