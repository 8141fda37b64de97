"""Hugging Face models from save_pretrained folders: signatures, export, quantization,
fusions, the report card, and decoders with a KV cache (tiny configs, nothing downloaded)."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.cli import main
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.signature import padding_mask
from onnx_deploy.core.signature import parse_input

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

VOCAB = 300


def _save(model, folder: Path) -> str:
    model.save_pretrained(folder)
    return f"hf:{folder}"


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """Tiny DistilBERT/BERT classifiers, GPT-2 and Llama decoders, a config-only folder."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    t = transformers
    specs = {}
    distil = t.DistilBertConfig(
        vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    specs["distil"] = _save(t.DistilBertForSequenceClassification(distil), root / "distil")
    bert = t.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3,
    )  # fmt: skip
    specs["bert"] = _save(t.BertForSequenceClassification(bert), root / "bert")
    gpt2 = t.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=96,
        initializer_range=0.3, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    specs["gpt2"] = _save(t.GPT2LMHeadModel(gpt2), root / "gpt2")
    llama = t.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=96,
        initializer_range=0.3, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    specs["llama"] = _save(t.LlamaForCausalLM(llama), root / "llama")
    (root / "config_only").mkdir()
    distil.architectures = ["DistilBertForSequenceClassification"]
    distil.save_pretrained(root / "config_only")
    specs["config_only"] = f"hf:{root / 'config_only'}"
    return specs


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- signatures and masks ----------------------------------------------------------------


def test_signature_comes_from_the_model(hf_models):
    from onnx_deploy.convert.hf import load_hf_model
    from onnx_deploy.convert.hf import signature_for

    sig = signature_for(load_hf_model(hf_models["distil"]))
    assert sig.names == ["input_ids", "attention_mask"]  # DistilBERT has no token types
    ids, mask = sig.inputs
    assert (ids.dtype, ids.low, ids.high) == ("int64", 0, VOCAB)
    assert mask.kind == "mask"
    assert [d.text() for d in sig.dims] == ["batch=1:64", "seq=1:16:64"]
    bert = signature_for(load_hf_model(hf_models["bert"]))
    assert bert.names == ["input_ids", "attention_mask", "token_type_ids"]
    assert (bert.inputs[2].low, bert.inputs[2].high) == (0, 2)


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_padding_masks_are_ones_then_zeros_never_empty(dtype):
    rng = np.random.default_rng(0)
    mask = padding_mask(dtype, (200, 7), rng).astype(np.int64)
    assert mask.dtype == np.int64 and set(np.unique(mask)) <= {0, 1}
    assert (mask.sum(1) >= 1).all(), "a fully masked row"
    assert (mask[:, :-1] >= mask[:, 1:]).all(), "ones then zeros"
    assert mask[0].all() and len(set(mask.sum(1))) > 3  # the first row unpadded, lengths vary


def test_mask_is_declared_on_the_command_line_or_recognised_by_name():
    spec = parse_input("attention_mask:int64:batch,seq:mask")
    assert spec.kind == "mask" and spec.shape == ("batch", "seq")
    feeds = Signature((InputSpec("ids", "int64", ("batch", "seq")), spec)).examples(
        {"batch": 64, "seq": 9}
    )
    assert feeds["attention_mask"].sum(1).min() >= 1
    from onnx_deploy.core.specs import TensorSpec

    sig = Signature.from_specs([TensorSpec("attention_mask", "int64", ("b", "s"))])
    assert sig.inputs[0].kind == "mask"
    with pytest.raises(ValueError, match="padding mask"):
        InputSpec("m", "float32", ("b", "s"), kind="mask")


def test_output_names_from_structure():
    from onnx_deploy.convert.runners.pytorch import output_names_of

    t = torch.zeros(1)
    pair = namedtuple("Pair", "boxes scores")
    assert output_names_of({"logits": t}) == ["logits"]
    assert output_names_of(pair(t, t)) == ["boxes", "scores"]
    assert output_names_of({"a": (t, t), "b": t}) == ["a.0", "a.1", "b"]
    assert output_names_of((t, t)) is None and output_names_of(t) is None


def test_probe_sizes_reach_opt_and_max():
    from onnx_deploy.core.signature import DimRange

    assert DimRange("seq", 1, 128, opt=32).probe_sizes() == (1, 32, 64, 128)
    assert 4096 not in DimRange("seq", 1, 4096).probe_sizes()  # the undeclared default


# --- export, validate, quantize, fuse from the CLI --------------------------------------


def test_export_validate_quantize_fuse_from_the_cli(hf_models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the working folder must stay clean
    model = tmp_path / "distil.onnx"
    code, out, err = run_cli(capsys, "export", hf_models["distil"], "-o", model)
    assert code == 0, err
    assert "output  logits: float32[batch, 2]" in out
    assert "random weights" not in out  # the folder has its weights file
    assert "PASS" in out and "seq [1, 16, 32, 64]" in out  # up to the declared MAX
    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, (24, 20)).astype(np.int64)
    mask = padding_mask("int64", (24, 20), rng)
    np.savez(tmp_path / "samples.npz", input_ids=ids * mask, attention_mask=mask)
    code, out, err = run_cli(
        capsys, "validate", model, "--reference", hf_models["distil"],
        "--inputs", tmp_path / "samples.npz",
    )  # fmt: skip
    assert code == 0 and "PASS" in out and "24 samples" in out, out + err
    for method in ("dynamic", "static"):
        extra = ["--calibration", tmp_path / "samples.npz"] if method == "static" else []
        code, out, err = run_cli(capsys, "quantize", model, "--method", method, *extra)
        assert code == 0, err
        assert "auto_merge=True" in out  # the position slice that stops shape inference
    code, out, err = run_cli(capsys, "fuse", model)
    assert code == 0, err
    assert "Attention" in out and "SkipLayerNormalization" in out and "PASS" in out
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [
        "distil.dynint8.onnx", "distil.fused.onnx", "distil.int8.onnx", "distil.onnx",
        "samples.npz",
    ], left  # fmt: skip


def test_random_weights_note_only_without_a_weights_file(hf_models, tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", hf_models["config_only"], "-o", tmp_path / "m.onnx")
    assert code == 0, err
    assert "random weights" in out


def test_a_config_only_folder_is_the_same_model_on_every_load(hf_models, tmp_path, capsys):
    """Random weights from a fixed seed: export in one process and validate in another
    compare the same model (they drew different weights before, and validate failed)."""
    from onnx_deploy.convert.hf import load_hf_model

    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = load_hf_model(hf_models["config_only"]).state_dict()
    second = load_hf_model(hf_models["config_only"]).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert torch.equal(torch.rand(1), before)  # the caller's random state is untouched
    path = tmp_path / "m.onnx"
    assert run_cli(capsys, "export", hf_models["config_only"], "-o", path)[0] == 0
    load_hf_model(hf_models["config_only"])  # as a separate validate process would
    code, out, err = run_cli(capsys, "validate", path, "--reference", hf_models["config_only"])
    assert code == 0 and "PASS" in out, err


def test_a_hub_id_gets_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, "export", "hf:distilbert-base-uncased")
    assert code == 1
    assert "hub id: nothing is downloaded" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_failed_export_leaves_no_file(hf_models, tmp_path, monkeypatch):
    import dataclasses

    from onnx_deploy.convert import verify as validate
    from onnx_deploy.workflows import pipeline

    real = validate.compare_torch_onnx

    def failing(*args, **kwargs):
        report = real(*args, **kwargs)
        bad = dataclasses.replace(report.outputs[0], ok=False, reason="planted")
        return dataclasses.replace(report, outputs=(bad,))

    monkeypatch.setattr(validate, "compare_torch_onnx", failing)
    out = tmp_path / "m.onnx"
    result = pipeline.export_spec(hf_models["distil"], out)
    assert not result.ok and not result.written
    assert list(tmp_path.iterdir()) == []


def test_optimize_a_saved_folder_with_real_npz_data(hf_models, tmp_path, capsys):
    rng = np.random.default_rng(1)
    mask = padding_mask("int64", (48, 24), rng)
    ids = rng.integers(1, VOCAB, mask.shape) * mask
    np.savez(tmp_path / "data.npz", input_ids=ids, attention_mask=mask)
    np.save(tmp_path / "labels.npy", rng.integers(0, 2, 48))
    code, out, err = run_cli(
        capsys, "optimize", hf_models["distil"], "--data", tmp_path / "data.npz",
        "--labels", tmp_path / "labels.npy", "--out-dir", tmp_path / "card",
        "--iters", "6", "--rounds", "3", "--budget", "0", "--threads", "1", "--no-plots", "--json",
    )  # fmt: skip
    assert code == 0, err
    card = json.loads(out)
    rows = {c["name"]: c for c in card["candidates"]}
    for name in ("FP32 fused", "INT8 dynamic", "INT8 dynamic fused", "INT8 static fused"):
        assert rows[name]["status"] == "ok", rows[name]
        assert rows[name]["accuracy"] is not None
    assert card["environment"]["threads"] == 1
    report = (tmp_path / "card" / "report.md").read_text()
    assert "? cores" not in report and "intra-op threads: 1" in report
    # a second run never reports the first run's files: they are removed first
    (tmp_path / "card" / "variants" / "model.slim.fused.onnx").write_bytes(b"stale")
    code, out, err = run_cli(
        capsys, "optimize", tmp_path / "card" / "variants" / "model.fp32.onnx",
        "--out-dir", tmp_path / "card", "--iters", "3", "--rounds", "1", "--budget", "0", "--no-plots",
        "--force", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "card" / "variants" / "model.slim.fused.onnx").read_bytes() != b"stale"


def test_two_class_cosine_survives_one_borderline_flip():
    from onnx_deploy.infer.compare import compare_outputs
    from onnx_deploy.infer.compare import get_tolerance

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 2, (64, 2)).astype(np.float32)
    ref[0] = (0.01, -0.01)
    cand = ref + rng.normal(0, 0.02, ref.shape).astype(np.float32)
    cand[0] = (-0.01, 0.01)  # the borderline sample flips: per-sample cosine -1
    result = compare_outputs("logits", [ref], [cand], get_tolerance("int8"))
    assert result.ok and result.cosine_over == "all samples", result
    assert "over all samples" in result.line()


def test_bench_keeps_two_files_of_one_name(tmp_path, capsys):
    import shutil

    import onnx
    from onnx import TensorProto
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )  # fmt: skip
    model = tmp_path / "relu.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10), model
    )
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(model, tmp_path / d / "model.onnx")
    code, out, err = run_cli(
        capsys, "bench", tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx",
        "--batch-sizes", "1", "--iters", "3", "--warmup", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    names = [r["name"] for r in json.loads(out)["results"]]
    assert len(set(names)) == 2, names


# --- decoders with a KV cache -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_decoder_with_cache_generates_transformers_tokens(hf_models, tmp_path, capsys, kind):
    from onnx_deploy.convert.hf import export_decoder
    from onnx_deploy.convert.hf import hf_generate
    from onnx_deploy.convert.hf import load_hf_model
    from onnx_deploy.infer.generate import generate

    path = tmp_path / f"{kind}.onnx"
    exported = export_decoder(hf_models[kind], path)
    assert exported.ok and exported.max_abs_prefill < 1e-4
    model = load_hf_model(hf_models[kind])
    prompt = [5, 17, 99]
    want = hf_generate(model, prompt, 32)
    got = generate(path, prompt, max_new_tokens=32, keep_logits=True)
    assert list(got.tokens) == want and len(set(want)) > 3
    # logits at every step, against PyTorch without a cache on the whole sequence
    seq = torch.tensor([prompt + want])
    with torch.no_grad():
        full = model(input_ids=seq).logits[0].numpy()
    for step, logits in enumerate(got.step_logits):
        np.testing.assert_allclose(logits, full[len(prompt) - 1 + step], atol=1e-4, rtol=1e-3)
    # sampling is reproducible with a seed and differs from greedy; a stop token stops
    a = generate(path, prompt, max_new_tokens=16, do_sample=True, seed=3, top_k=50)
    b = generate(path, prompt, max_new_tokens=16, do_sample=True, seed=3, top_k=50)
    assert a.tokens == b.tokens and list(a.tokens) != want[:16]
    stop = generate(path, prompt, max_new_tokens=32, eos_token_id=want[4])
    assert stop.stopped == "eos" and list(stop.tokens) == want[: want.index(want[4]) + 1]
    code, out, err = run_cli(
        capsys, "generate", path, "--prompt-ids", "5,17,99", "--max-new-tokens", "8", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["tokens"] == want[:8]


def test_generate_refuses_a_model_without_a_cache(hf_models, tmp_path, capsys):
    model = tmp_path / "distil.onnx"
    assert run_cli(capsys, "export", hf_models["distil"], "-o", model)[0] == 0
    code, _out, err = run_cli(capsys, "generate", model, "--prompt-ids", "1,2")
    assert code == 1 and "--with-cache" in err
    code, _out, err = run_cli(
        capsys, "export", hf_models["distil"], "--with-cache", "-o", tmp_path / "x.onnx"
    )
    assert code == 1 and "not a causal LM" in err and not (tmp_path / "x.onnx").exists()


def test_no_hf_import_in_the_generation_loop():
    """The generation loop is inference-side: numpy and onnxruntime only."""
    import ast

    src = (Path(__file__).parents[1] / "src" / "onnx_deploy" / "infer" / "generate.py").read_text()
    imported = {
        n.names[0].name.split(".")[0]
        if isinstance(n, ast.Import)
        else (n.module or "").split(".")[0]
        for n in ast.walk(ast.parse(src))
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    assert not imported & {"torch", "torchvision", "matplotlib"}, imported


# --- accuracy on real labels ------------------------------------------------------------


def test_trained_text_classifier_keeps_its_accuracy_through_the_card(tmp_path, capsys):
    """A DistilBERT trained on a labelled task: FP32, fused and INT8 accuracy on held-out
    padded samples of several lengths, through the CLI alone."""
    from onnx_deploy.teach.textdata import make_text_task
    from onnx_deploy.teach.textdata import train_text_classifier

    folder = tmp_path / "classifier"
    accuracy = train_text_classifier(folder)
    assert accuracy >= 0.9, f"the classifier did not learn the task ({accuracy:.3f})"
    test = make_text_task(256, seed=5)
    assert len(set(test.attention_mask.sum(1))) > 10, "padded samples of many lengths"
    test.save(tmp_path / "test.npz")
    np.save(tmp_path / "labels.npy", test.labels)
    make_text_task(128, seed=6).save(tmp_path / "calibration.npz")
    code, out, err = run_cli(
        capsys, "optimize", f"hf:{folder}", "--data", tmp_path / "test.npz",
        "--labels", tmp_path / "labels.npy", "--calibration", tmp_path / "calibration.npz",
        "--out-dir", tmp_path / "card", "--iters", "6", "--rounds", "3", "--budget", "0", "--no-plots",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    rows = {c["name"]: c for c in json.loads(out)["candidates"]}
    fp32 = rows["FP32"]["accuracy"]
    assert fp32 >= 0.9, fp32
    for name in ("FP32 fused", "INT8 dynamic", "INT8 dynamic fused", "INT8 static"):
        row = rows[name]
        assert row["status"] == "ok", row
        # every variant is judged against the 0.5-point budget; the card says which passed
        within = 100 * (fp32 - row["accuracy"]) <= 0.5
        assert row["passed"] == (within and not row["fails"]), row
    assert rows["FP32 fused"]["accuracy"] == fp32  # the same arithmetic, reordered
    assert rows["INT8 dynamic"]["passed"] and rows["INT8 dynamic fused"]["passed"], rows


def test_validate_with_real_inputs_honours_batch_sizes(hf_models, tmp_path, capsys):
    model = tmp_path / "distil.onnx"
    assert run_cli(capsys, "export", hf_models["distil"], "-o", model)[0] == 0
    rng = np.random.default_rng(2)
    mask = padding_mask("int64", (20, 12), rng)
    np.savez(tmp_path / "s.npz", input_ids=rng.integers(1, VOCAB, mask.shape) * mask,
             attention_mask=mask)  # fmt: skip
    code, out, err = run_cli(
        capsys, "validate", model, "--reference", hf_models["distil"],
        "--inputs", tmp_path / "s.npz", "--batch-sizes", "1,8", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["batch_sizes"] == [1, 8] and report["num_samples"] == 20  # 1+8+1+8+1+1


def test_real_inputs_without_segment_ids_are_filled_as_transformers_fills_them(
    hf_models, tmp_path, capsys
):
    """A tokenizer pipeline that gives input_ids and attention_mask only: BERT's
    token_type_ids are zeros in transformers, and so here, with a note (validate, and
    static quantization's calibration)."""
    model = tmp_path / "bert.onnx"
    assert run_cli(capsys, "export", hf_models["bert"], "-o", model)[0] == 0
    rng = np.random.default_rng(3)
    mask = padding_mask("int64", (6, 10), rng)
    data = tmp_path / "pairs.npz"
    np.savez(data, input_ids=rng.integers(1, VOCAB, mask.shape) * mask, attention_mask=mask)
    code, out, err = run_cli(
        capsys, "validate", model, "--reference", hf_models["bert"], "--inputs", data
    )
    assert code == 0, err
    assert "the data has no token_type_ids: filled with token_type_ids=0" in out, out
    code, out, err = run_cli(
        capsys, "quantize", model, "--method", "static", "--calibration", data,
        "-o", tmp_path / "q.onnx",
    )  # fmt: skip
    assert code == 0, err


def test_position_tables_with_an_offset_limit_the_sequence(tmp_path):
    """RoBERTa numbers positions from padding_idx + 1: a table of 64 takes 62 tokens."""
    from onnx_deploy.convert.hf import position_limit
    from onnx_deploy.convert.hf import signature_for

    config = transformers.RobertaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
    )  # fmt: skip
    roberta = transformers.RobertaForTokenClassification(config).eval()
    assert position_limit(roberta) == 62
    assert signature_for(roberta).dim("seq").max == 62
    ids = torch.randint(2, VOCAB, (1, 62))
    roberta(input_ids=ids)  # the longest valid sequence runs ...
    with pytest.raises((IndexError, RuntimeError), match="index"):
        roberta(input_ids=torch.randint(2, VOCAB, (1, 63)))  # ... and one more does not
    bert = transformers.BertModel(transformers.BertConfig(**config.to_diff_dict())).eval()
    assert position_limit(bert) is None


def test_audio_signatures_come_from_the_config():
    from onnx_deploy.convert.hf import signature_for
    from onnx_deploy.teach.families import family

    whisper = signature_for(family("whisper").build())
    assert [i.name for i in whisper.inputs] == ["input_features", "decoder_input_ids"]
    assert whisper.inputs[0].shape == ("batch", 16, 100)  # num_mel_bins, 2 x source positions
    wav = signature_for(family("wav2vec2-ctc").build())
    samples = wav.dim("samples")
    assert wav.inputs[0].shape == ("batch", "samples") and samples.opt == 16_000
    assert samples.min == 10 + 2 * 5 + 2 * 10  # the convolutions' window: 10, 3x5, 3x10
    ast = signature_for(family("ast-audio").build())
    assert ast.inputs[0].shape == ("batch", 32, 16)


def test_a_model_that_fails_in_pytorch_is_not_blamed_on_the_exporter(tmp_path, capsys):
    source = tmp_path / "picky.py"
    source.write_text(
        "import torch\n"
        "class Picky(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        if x.shape[0] < 1000:\n"
        "            raise ValueError('needs a batch of 1000')\n"
        "        return x\n"
        "def make():\n"
        "    return Picky()\n"
    )
    out = tmp_path / "picky.onnx"
    code, _, err = run_cli(capsys, "export", f"{source}:make", "--input-shape", "3", "-o", out)
    assert code != 0 and not out.exists()
    assert "PyTorch itself failed on the example inputs (input_0 float32[2, 3])" in err, err
    assert "needs a batch of 1000" in err and "--example" in err
    assert "torch.export could not capture" not in err


def test_generate_takes_text_with_a_saved_tokenizer(hf_models, tmp_path, capsys):
    tokenizers = pytest.importorskip("tokenizers")
    from onnx_deploy.convert.hf import export_decoder

    vocab = {"<unk>": 0} | {f"w{i}": i for i in range(1, VOCAB)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.save_pretrained(tmp_path / "tok")
    path = tmp_path / "llama.onnx"
    export_decoder(hf_models["llama"], path)
    code, out, err = run_cli(
        capsys, "generate", path, "--prompt", "w5 w17 w99", "--tokenizer", tmp_path / "tok",
        "--max-new-tokens", "6", "--json",
    )  # fmt: skip
    assert code == 0, err
    by_text = json.loads(out)
    code, out, err = run_cli(
        capsys, "generate", path, "--prompt-ids", "5,17,99", "--max-new-tokens", "6", "--json"
    )
    assert by_text["prompt"] == [5, 17, 99] and by_text["tokens"] == json.loads(out)["tokens"]
    words = [f"w{t}" if t else "<unk>" for t in by_text["tokens"]]
    assert by_text["text"].split() == words
    code, _out, err = run_cli(capsys, "generate", path, "--prompt", "w5", "--tokenizer", tmp_path)
    assert code == 1 and "no tokenizer" in err
