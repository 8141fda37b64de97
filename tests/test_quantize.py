from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from onnx_deploy.cli import main
from onnx_deploy.convert.export import export_model
from onnx_deploy.convert.quantize import QuantizationWarning
from onnx_deploy.convert.quantize import QuantizeError
from onnx_deploy.convert.quantize import calibration_reader
from onnx_deploy.convert.quantize import choose_types
from onnx_deploy.convert.quantize import convert_fp16
from onnx_deploy.convert.quantize import default_types
from onnx_deploy.convert.quantize import is_quantized
from onnx_deploy.convert.quantize import layer_errors
from onnx_deploy.convert.quantize import node_names
from onnx_deploy.convert.quantize import preprocessed_copy
from onnx_deploy.convert.quantize import quantize_dynamic_model
from onnx_deploy.convert.quantize import quantize_static_model
from onnx_deploy.convert.quantize import worst_nodes
from onnx_deploy.convert.saturation import pair_sums
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.infer.modelinfo import describe
from onnx_deploy.teach.digits import load_digits_model
from onnx_deploy.teach.digits import load_digits_split


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits") / "digits.onnx"
    export_model(load_digits_model(), torch.zeros(2, 1, 8, 8), out)
    return out


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_default_types() -> None:
    assert default_types("x86_64") == ("uint8", "int8")
    assert default_types("aarch64") == ("int8", "int8")
    import platform

    # this host, from the OS's own name for it (not from the function under test)
    expected = {"x86_64": ("uint8", "int8"), "AMD64": ("uint8", "int8")}.get(
        platform.machine(), ("int8", "int8")
    )
    assert default_types() == expected


def test_choose_types_per_target() -> None:
    no_vnni = choose_types(target_isa="x86-no-vnni")
    assert (no_vnni.short, no_vnni.saturates, no_vnni.chosen_by) == (
        "u8/s8, reduce_range",
        False,
        "auto",
    )
    assert "VPMADDUBSW" in no_vnni.reason and no_vnni.target == "target"
    assert choose_types(target_isa="x86-vnni").short == "u8/s8"
    assert choose_types(target_isa="arm64").short == "s8/s8"
    # uint8 weights need no reduce_range: the U8U8 kernel does not saturate
    u8u8 = choose_types(weight_type="uint8", target_isa="x86-no-vnni")
    assert u8u8.short == "u8/u8" and not u8u8.saturates and "U8U8" in u8u8.reason
    # the caller's choice wins, and a saturating one says so
    forced = choose_types(reduce_range=False, target_isa="x86-no-vnni")
    assert forced.saturates and "reduce_range set by the caller" in forced.chosen_by
    assert "saturate" in forced.reason and "reduce_range=True" in forced.reason
    assert not choose_types(reduce_range=False, target_isa="x86-vnni").saturates
    rr = choose_types(reduce_range=True, target_isa="x86-vnni").reason
    assert "as fast as plain u8/s8" in rr and "MEASUREMENTS.md" in rr
    with pytest.raises(QuantizeError, match="S8U8"):
        choose_types("int8", "uint8")
    with pytest.raises(QuantizeError, match="x86-no-vnni"):
        choose_types(target_isa="avx2")
    with pytest.raises(QuantizeError, match="types must be"):
        choose_types("int4")


def test_static_int8_meets_the_accuracy_target(digits_onnx: Path, data, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    res = quantize_static_model(
        digits_onnx, out, data.x_train, calibration_size=200,
        validation_inputs=np.array_split(data.x_test, 5), labels=data.y_test,
    )  # fmt: skip
    assert is_quantized(onnx.load(str(out)))
    assert res.validation is not None and res.validation.ok
    assert res.metrics["accuracy_fp32"] - res.metrics["accuracy_quantized"] <= 0.005
    assert res.metrics["agreement"] >= 0.99
    assert res.compression > 2 and res.details["per_channel"] is True
    assert res.details["activations"] == default_types()[0]
    assert res.types == choose_types() and res.details["reduce_range"] == res.types.reduce_range
    assert "types   " in res.summary() and res.types.isa in res.summary()
    text = res.summary()
    assert "vs FP32 PASS" in text and f"{res.compression:.1f}x smaller" in text
    assert f"accuracy_quantized {res.metrics['accuracy_quantized']:.4f}" in text
    d = json.loads(json.dumps(res.to_dict()))  # plain JSON, no default= needed
    assert d["output_path"] == str(out) and d["metrics"] == pytest.approx(res.metrics)
    assert d["types"]["short"] == res.types.short and d["validation"]["ok"] is True
    assert _only(tmp_path) == ["int8.onnx"], "no pre-processed or temporary files left"


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_calibration_methods(digits_onnx: Path, data, tmp_path: Path, method: str) -> None:
    res = quantize_static_model(
        digits_onnx, tmp_path / "q.onnx", data.x_train[:64], calibration_method=method
    )
    assert res.validation.ok and method in res.details["calibration"]


def test_calibration_sources(digits_onnx: Path, data, tmp_path: Path) -> None:
    from PIL import Image

    name = describe(digits_onnx).inputs[0].name
    x = data.x_train[:5]
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", images=x)
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i, im in enumerate(x):
        Image.fromarray((im[0] * 255).astype(np.uint8)).save(imgs / f"{i}.png")
    sources = [x, {name: x}, list(x[:, None]), tmp_path / "x.npy", tmp_path / "x.npz", imgs]
    for src in sources:
        reader = calibration_reader(digits_onnx, src)
        assert len(reader) == 5
        first = reader.get_next()
        assert list(first) == [name] and first[name].shape == (1, 1, 8, 8)
        assert first[name].dtype == np.float32
    assert len(calibration_reader(digits_onnx, x, limit=2)) == 2


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4, 1, 9, 9), np.float32), "does not fit.*axis 2 is 9"),
        (np.zeros((4, 1, 8, 8), np.float64), "does not fit.*float64"),
        (np.zeros((0, 1, 8, 8), np.float32), "empty"),
    ],
    ids=["shape", "dtype", "empty"],
)
def test_bad_calibration_data(digits_onnx: Path, tmp_path: Path, bad, match: str) -> None:
    with pytest.raises(QuantizeError, match=match):
        quantize_static_model(digits_onnx, tmp_path / "q.onnx", bad)
    assert _only(tmp_path) == []


def test_already_quantized_and_unknown_exclusion(digits_onnx: Path, data, tmp_path: Path) -> None:
    q = tmp_path / "q.onnx"
    quantize_static_model(digits_onnx, q, data.x_train[:32], validate=False)
    with pytest.raises(QuantizeError, match="already quantized"):
        quantize_static_model(q, tmp_path / "qq.onnx", data.x_train[:32])
    assert len(node_names(digits_onnx, op_types=["Conv"])) == 3
    with pytest.raises(QuantizeError, match="not found in the graph"):
        quantize_static_model(
            digits_onnx, tmp_path / "x.onnx", data.x_train[:32], nodes_to_exclude=["nope"]
        )
    assert _only(tmp_path) == ["q.onnx"]
    with pytest.raises(OutputExistsError):
        quantize_static_model(digits_onnx, q, data.x_train[:32])


def test_dynamic_warns_on_convolutions(digits_onnx: Path, tmp_path: Path) -> None:
    with pytest.warns(QuantizationWarning, match="Conv"):
        quantize_dynamic_model(digits_onnx, tmp_path / "all.onnx", op_types=None)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)
        res = quantize_dynamic_model(digits_onnx, tmp_path / "mm.onnx")
    ops = describe(tmp_path / "mm.onnx").op_histogram
    assert "ConvInteger" not in ops and ("MatMulInteger" in ops or "DynamicQuantizeLinear" in ops)
    assert res.validation.ok


def test_fp16_keeps_float32_io(digits_onnx: Path, data, tmp_path: Path) -> None:
    res = convert_fp16(
        digits_onnx, tmp_path / "h.onnx", validation_inputs=[data.x_test], labels=data.y_test
    )
    info = describe(tmp_path / "h.onnx")
    assert info.inputs[0].dtype == "float32" and info.outputs[0].dtype == "float32"
    assert res.validation.ok and res.metrics["agreement"] >= 0.99
    assert 1.5 < res.compression < 2.1


def test_streamed_fp16_bytes_equal_onnxruntimes_converter_bit_for_bit() -> None:
    """The chunk converter is vectorised (onnxruntime's takes ten passes of np.where): the
    same FP16 bits on every edge, clamps, signs, zeros, infinities, NaN and rounding."""
    from onnxruntime.transformers.float16 import convert_np_to_float16

    from onnx_deploy.convert.quantize import _fp32_bytes_to_fp16

    edges = [0.0, -0.0, 1e-9, -1e-9, 5.96e-8, -5.96e-8, 6e-8, 1e-30, 65504.0, 65519.0, 65520.0,
             -65520.0, 1e6, -1e6, 3.4e38, np.inf, -np.inf, np.nan, 1.0, -2.5, 6.1e-5]  # fmt: skip
    values = np.concatenate(
        [np.array(edges, np.float32), np.random.default_rng(0).standard_normal(4096) * 100]
    ).astype(np.float32)
    got = np.frombuffer(_fp32_bytes_to_fp16(values.tobytes()), np.uint16)
    want = convert_np_to_float16(values).view(np.uint16)
    assert got.tobytes() == want.tobytes(), np.flatnonzero(got != want)[:10]


def test_fp16_of_external_data_streams_the_same_weights(digits_onnx: Path, tmp_path: Path) -> None:
    """Weights in external data are converted a chunk at a time and never loaded whole (the
    2.2 GB graph of tests/test_big_model.py peaks near 1x its size): the result holds the
    same FP16 values, clamps included, as onnxruntime's converter on the loaded model."""
    from onnx import numpy_helper

    model = onnx.load(digits_onnx)
    big = next(t for t in model.graph.initializer if numpy_helper.to_array(t).size > 1000)
    weights = numpy_helper.to_array(big).copy()
    weights.flat[:3] = (1e6, -1e6, 1e-9)  # past FP16's range, and below its smallest value
    big.CopyFrom(numpy_helper.from_array(weights, big.name))
    inline, ext = tmp_path / "inline.onnx", tmp_path / "ext" / "m.onnx"
    onnx.save(model, inline)
    ext.parent.mkdir()
    onnx.save(model, ext, save_as_external_data=True, location="w.bin", size_threshold=0)
    convert_fp16(inline, tmp_path / "a.onnx", validate=False)
    res = convert_fp16(ext, tmp_path / "b" / "m.onnx", validate=False)
    assert not (tmp_path / "b" / "w.bin").exists(), "the output has its own data file"
    a = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "a.onnx").graph.initializer}
    b = {t.name: numpy_helper.to_array(t) for t in onnx.load(res.output_path).graph.initializer}
    assert a.keys() == b.keys() and b[big.name].dtype == np.float16
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert b[big.name].flat[:3].tolist() == [65504.0, -65504.0, np.float16(5.96e-8)]


def test_layer_errors_and_exclusion(digits_onnx: Path, data, tmp_path: Path) -> None:
    pre = preprocessed_copy(digits_onnx, tmp_path / "pre.onnx")
    q = tmp_path / "q.onnx"
    quantize_static_model(digits_onnx, q, data.x_train[:128], validate=False)
    errors = layer_errors(pre, q, data.x_test, limit=32)
    assert errors and all(np.isfinite(e.sqnr) for e in errors)
    drops = [e.sqnr_drop for e in errors if np.isfinite(e.sqnr_drop)]
    assert drops == sorted(drops, reverse=True)
    worst = worst_nodes(errors, 1)
    graph_nodes = {n.name for n in onnx.load(pre).graph.node}
    assert worst and set(worst) <= graph_nodes
    res = quantize_static_model(
        digits_onnx, tmp_path / "ex.onnx", data.x_train[:128], nodes_to_exclude=worst
    )
    assert res.details["excluded"] == tuple(worst) and res.validation.ok


def test_cli_quantize(digits_onnx: Path, data, tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "cal.npy", data.x_train[:100])
    np.save(tmp_path / "x.npy", data.x_test)
    np.save(tmp_path / "y.npy", data.y_test)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(digits_onnx), "-o", str(out), "--calibration", str(tmp_path / "cal.npy"),
            "--validation-data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--json"]  # fmt: skip
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["metrics"]["agreement"] >= 0.99 and payload["method"] == "static"
    assert payload["types"]["isa"] == choose_types().isa
    argv = ["quantize", str(digits_onnx), "-o", str(tmp_path / "t.onnx"), "--calibration",
            str(tmp_path / "cal.npy"), "--target-isa", "x86-no-vnni"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "u8/s8, reduce_range for x86-no-vnni (target, auto)" in text
    with pytest.warns(QuantizationWarning):
        code = main([*argv[:3], str(tmp_path / "n.onnx"), *argv[4:], "--no-reduce-range"])
    printed = capsys.readouterr().out
    assert "reduce_range False" in printed and "can saturate" in printed
    # the exit code follows the validation it printed, on every CPU (with VNNI nothing
    # saturates; without it the int8 preset may still pass a small model)
    assert (code == 0) == ("vs FP32 PASS" in printed), printed
    assert main(["quantize", str(out), "--calibration", str(tmp_path / "cal.npy")]) == 1
    assert "already quantized" in capsys.readouterr().err
    assert main(["quantize", str(digits_onnx), "-o", str(tmp_path / "s.onnx")]) == 1
    assert "--calibration" in capsys.readouterr().err
    assert (
        main(["quantize", str(digits_onnx), "--method", "fp16", "-o", str(tmp_path / "h.onnx")])
        == 0
    )


def test_a_saturating_choice_warns_and_is_recorded(digits_onnx: Path, data, tmp_path: Path) -> None:
    with pytest.warns(QuantizationWarning, match="saturate"):
        res = quantize_static_model(
            digits_onnx, tmp_path / "q.onnx", data.x_train[:64], reduce_range=False,
            target_isa="x86-no-vnni", validate=False,
        )  # fmt: skip
    assert res.types.saturates and res.details["reduce_range"] is False
    assert any("saturate" in n for n in res.notes) and "note" in res.summary()


def test_pair_sums_show_the_saturation_reduce_range_removes(
    digits_onnx: Path, data, tmp_path: Path
) -> None:
    common = {"validate": False, "target_isa": "x86-vnni"}
    plain = quantize_static_model(digits_onnx, tmp_path / "p.onnx", data.x_train[:200], **common)
    safe = quantize_static_model(
        digits_onnx, tmp_path / "r.onnx", data.x_train[:200], reduce_range=True, **common
    )
    u8u8 = quantize_static_model(
        digits_onnx, tmp_path / "u.onnx", data.x_train[:200], weight_type="uint8", **common
    )
    feeds = {describe(digits_onnx).inputs[0].name: data.x_test[:64]}
    before, after = pair_sums(plain.output_path, feeds), pair_sums(safe.output_path, feeds)
    assert [r.op_type for r in before] == ["Conv", "Conv", "Conv", "Gemm"]
    first = before[0]
    assert first.overflow_fraction > 0.01 and first.max_abs > 32767
    assert sum(first.histogram) == first.pairs
    assert all(r.overflow == 0 and r.max_abs <= 32767 for r in after)
    assert pair_sums(u8u8.output_path, feeds) == []  # U8U8: nothing to saturate
    assert "outside int16" in first.summary()


def test_dynamic_records_its_types(digits_onnx: Path, tmp_path: Path) -> None:
    res = quantize_dynamic_model(digits_onnx, tmp_path / "d.onnx", target_isa="x86-no-vnni")
    assert res.types.short == "u8/s8, reduce_range" and res.details["reduce_range"] is True
    assert res.types.chosen_by == "auto"
    assert choose_types(target_isa="arm64", dynamic=True).short == "u8/s8"  # uint8 at run time
    with pytest.raises(QuantizeError, match="dynamic"):
        choose_types("int8", dynamic=True)


def test_cli_static_int8_quantizes_every_op_type_and_dynamic_only_matmuls(
    tiny_onnx: Path, tmp_path: Path, capsys
) -> None:
    """`quantize` with no --op-types: static INT8 quantizes the Conv too (the dynamic
    method's MatMul/Gemm default once reached it through the shared flag, and a resnet18
    came out 44.6 -> 43.1 MB with every Conv in float), dynamic only MatMul and Gemm."""
    np.save(
        tmp_path / "cal.npy",
        np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32),
    )

    def float_weights(path: Path, op: str) -> list[str]:
        graph = onnx.load(path).graph
        produced = {o: n.op_type for n in graph.node for o in n.output}
        return [n.name for n in graph.node
                if n.op_type == op and produced.get(n.input[1]) != "DequantizeLinear"]  # fmt: skip

    static = tmp_path / "s.onnx"
    assert (
        main(
            [
                "quantize",
                str(tiny_onnx),
                "--calibration",
                str(tmp_path / "cal.npy"),
                "-o",
                str(static),
            ]
        )
        == 0
    )
    assert float_weights(static, "Conv") == [] and float_weights(static, "Gemm") == []
    dyn = tmp_path / "d.onnx"
    assert main(["quantize", str(tiny_onnx), "--method", "dynamic", "-o", str(dyn)]) == 0
    assert "op_types ('MatMul', 'Gemm')" in capsys.readouterr().out
    only = tmp_path / "o.onnx"
    argv = [
        "quantize",
        str(tiny_onnx),
        "--calibration",
        str(tmp_path / "cal.npy"),
        "-o",
        str(only),
        "--op-types",
        "Gemm",
    ]
    assert main(argv) == 0
    assert float_weights(only, "Conv") and not float_weights(only, "Gemm")
