"""Signatures: parsing, ranges, valid example data, variations, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.signature import SignatureError
from onnx_deploy.core.signature import generate
from onnx_deploy.core.signature import parse_dim
from onnx_deploy.core.signature import parse_input
from onnx_deploy.core.specs import TensorSpec


def test_parse_inputs_and_dims() -> None:
    ids = parse_input("ids:int64:batch,seq:0..30522")
    assert ids == InputSpec("ids", "int64", ("batch", "seq"), 0.0, 30522.0)
    assert parse_input("image:float32:batch,3,224,224").shape == ("batch", 3, 224, 224)
    assert parse_input("scale:float32:").shape == ()
    assert parse_dim("seq=1:512") == DimRange("seq", 1, 512)
    assert parse_dim("batch=1:8:64") == DimRange("batch", 1, 64, 8)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ids", "NAME:DTYPE:DIMS"),
        ("ids:int65:batch", "dtype 'int65' is not supported"),
        ("ids:int64:batch,s-q!", "bad dim"),
        ("ids:int64:batch:lots", "LOW..HIGH"),
        ("ids:int64:batch:9..3", "LOW < HIGH"),
        ("9ids:int64:batch", "identifier"),
    ],
)
def test_bad_inputs_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        parse_input(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seq", "NAME=MIN:MAX"),
        ("seq=8:2", "MIN <= MAX"),
        ("seq=1:1", "MAX >= 2"),
        ("seq=1:900:512", "outside"),
    ],
)
def test_bad_dims(text: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        parse_dim(text)


def test_examples_never_use_size_one_and_stay_in_range() -> None:
    assert DimRange("seq", 1, 512).example == 2
    assert DimRange("seq", 1, 512, opt=1).example == 2, "size 1 would be specialised"
    assert DimRange("h", 32, 256).example == 32
    assert DimRange("seq", 1, 512).probe_sizes() == (1, 2, 16, 512), "the declared MAX too"
    assert DimRange("seq", 1, 512, opt=128).probe_sizes() == (1, 128, 256, 512)
    assert DimRange("seq", 1, 4096).probe_sizes() == (1, 2, 16), "MAX over the cap: not run"
    assert DimRange("h", 32, 256).probe_sizes() == (32, 64, 128, 256)
    assert DimRange("s", 1, 3).probe_sizes() == (1, 2, 3)


def test_dims_shared_across_inputs_get_defaults_in_order_of_use() -> None:
    sig = Signature.parse(["ids:int64:batch,seq", "mask:bool:batch,seq"], ["seq=1:128"])
    assert [d.text() for d in sig.dims] == ["batch=1:1024", "seq=1:128"]
    assert sig.batch_dims == ("batch",)
    with pytest.raises(SignatureError, match=r"--dim \['width'\] names no dim"):
        Signature.parse(["ids:int64:batch,seq"], ["width=1:8"])
    with pytest.raises(SignatureError, match="unique"):
        Signature.parse(["x:float32:batch", "x:float32:batch"])


def test_generated_data_is_valid_for_its_dtype() -> None:
    sig = Signature.parse(["ids:int64:batch,seq:5..50", "mask:bool:batch,seq", "x:float16:batch,3"])
    feeds = sig.examples({"batch": 64, "seq": 9}, seed=3)
    assert feeds["ids"].dtype == np.int64 and feeds["ids"].min() >= 5 and feeds["ids"].max() < 50
    assert feeds["x"].dtype == np.float16 and feeds["x"].shape == (64, 3)
    mask = feeds["mask"]
    assert mask.dtype == np.bool_ and mask.shape == (64, 9)
    assert (~mask[:, 0]).all(), "never a fully padded sequence"
    assert mask[:, -1].all(), "padding at the end"
    assert (np.diff(mask.astype(int), axis=1) >= 0).all(), "False then True"
    assert len({row.sum() for row in mask}) > 3, "random lengths"
    assert generate("bool", (3, 1), np.random.default_rng(0)).tolist() == [[False]] * 3


def test_variations_vary_every_dim() -> None:
    sig = Signature.parse(["image:float32:batch,3,h,w"], ["h=32:256", "w=32:256"])
    plan = sig.size_plan((1, 2, 8))
    assert [p["batch"] for p in plan] == [1, 2, 8, 1]  # a fourth batch: the MAX 256
    assert {p["h"] for p in plan} == {32, 64, 128, 256} == {p["w"] for p in plan}
    assert all(p["h"] != p["w"] for p in plan), "height and width differ within a batch"
    batches = sig.variations((1, 2, 8))
    assert [b["image"].shape for b in batches] == [
        (1, 3, 32, 64), (2, 3, 64, 128), (8, 3, 128, 256), (1, 3, 256, 32),
    ]  # fmt: skip


def test_check_names_every_problem() -> None:
    sig = Signature.parse(["ids:int64:batch,seq", "mask:bool:batch,seq"], ["seq=1:16"])
    with pytest.raises(SignatureError) as info:
        sig.check(
            {
                "ids": np.zeros((2, 20), np.int32),
                "mask": np.zeros((3, 20), bool),
                "extra": np.zeros(1),
            }
        )
    msg = str(info.value)
    assert "unexpected ['extra']" in msg and "ids is int32, declared int64" in msg
    assert "outside seq=1:16" in msg and "dim batch is 2 in ids but 3 in mask" in msg


def test_from_examples_and_from_specs() -> None:
    feeds = {"image": np.zeros((4, 3, 8, 8), np.float32), "meta": np.zeros((4, 5), np.float32)}
    sig = Signature.from_examples(feeds)
    assert [i.shape for i in sig.inputs] == [("batch", 3, 8, 8), ("batch", 5)]
    declared = [parse_input("image:float32:batch,3,h,w")]
    sig = Signature.from_examples(feeds, declared)
    assert sig.inputs[0].shape == ("batch", 3, "h", "w")
    with pytest.raises(SignatureError, match="declared int64, the example data is float32"):
        Signature.from_examples(feeds, [parse_input("meta:int64:batch,5")])
    specs = [
        TensorSpec("ids", "int64", ("batch", None)),
        TensorSpec("mask", "bool", ("batch", "seq")),
    ]
    sig = Signature.from_specs(specs, [DimRange("seq", 4, 64)], [parse_input("ids:int64:b,s:0..7")])
    assert sig.inputs[0].shape == ("batch", "ids_dim1") and sig.inputs[0].high == 7
    assert sig.dim("seq").min == 4 and sig.dim("ids_dim1").probe_sizes() == (8, 16, 32)


def test_dim_names_from_files_become_identifiers() -> None:
    specs = [TensorSpec("x", "float32", ("batch size", "2*h", 3, None))]
    sig = Signature.from_specs(specs)
    assert sig.inputs[0].shape == ("batch_size", "d_2_h", 3, "x_dim3")
    assert sig.examples({"batch_size": 2})["x"].shape == (2, 16, 3, 16)


def test_an_end_token_closes_every_row_once_at_its_last_kept_position() -> None:
    """BART's classifier needs one <eos> per example: generated ids hold it once, where the
    padding mask's ones end, and nowhere else."""
    sig = Signature(
        (
            InputSpec("input_ids", "int64", ("batch", "seq"), 0, 5, end=2),
            InputSpec("attention_mask", "int64", ("batch", "seq"), kind="mask"),
        ),
        (DimRange("batch", 1, 8), DimRange("seq", 1, 32, opt=12)),
    )
    for feeds in sig.variations([1, 3, 8]):
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        assert ((ids == 2).sum(-1) == 1).all()
        last = mask.sum(-1) - 1
        assert (ids[np.arange(len(ids)), last] == 2).all()
    with pytest.raises(SignatureError, match="end token"):
        InputSpec("input_ids", "int64", ("batch", "seq"), 0, 5, end=7)


def test_defaults_fill_what_the_data_lacks_shaped_like_the_rest() -> None:
    from onnx_deploy.core.feeds import fill_defaults

    specs = [
        TensorSpec("input_ids", "int64", ("batch", "seq")),
        TensorSpec("attention_mask", "int64", ("batch", "seq")),
        TensorSpec("token_type_ids", "int64", ("batch", "seq")),
    ]
    given = {"input_ids": np.ones((3, 7), np.int64), "attention_mask": np.ones((3, 7), np.int64)}
    feeds, filled = fill_defaults(given, specs, {"token_type_ids": 0.0})
    assert filled == ("token_type_ids",)
    assert feeds["token_type_ids"].shape == (3, 7) and feeds["token_type_ids"].dtype == np.int64
    assert not feeds["token_type_ids"].any()
    # nothing to fill from: left missing for check_inputs to name
    _, filled = fill_defaults({}, specs, {"token_type_ids": 0.0})
    assert filled == ()


@pytest.mark.parametrize(("mels", "seconds"), [(80, 30), (16, 1)])
def test_whisper_features_are_transformers_features(mels: int, seconds: int) -> None:
    transformers = pytest.importorskip("transformers")
    from onnx_deploy.infer.audio import WhisperFeatures

    theirs = transformers.WhisperFeatureExtractor(feature_size=mels, chunk_length=seconds)
    ours = WhisperFeatures(feature_size=mels, chunk_length=seconds)
    clip = (np.random.default_rng(0).standard_normal(int(16_000 * seconds * 0.7)) * 0.1).astype(
        np.float32
    )
    want = theirs(clip, sampling_rate=16_000, return_tensors="np").input_features[0]
    got = ours(clip)
    assert got.shape == want.shape == (mels, seconds * 100)
    assert np.abs(got - want).max() < 1e-5
