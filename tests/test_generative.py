"""Generative models through every command: a trained GQA decoder (Qwen2 layout) exported
with its cache, checked by its greedy tokens, weight-only INT4/INT8, and the report card
judging it by tokens. Tiny configs; the 600M figures are measurements entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnx_deploy.cli import main
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.signature import guess_relations
from onnx_deploy.infer.tokens import NEAR_TIE
from onnx_deploy.infer.tokens import check_tokens
from onnx_deploy.infer.tokens import load_prompts

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def run_cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """A trained two-layer Qwen2 (GQA 4/2, RMSNorm, rotary), its decoder file with the
    cache exported from the CLI's default, and 64 prompts of its language."""
    from onnx_deploy.teach.lmdata import make_prompts
    from onnx_deploy.teach.lmdata import save_prompts
    from onnx_deploy.teach.lmdata import train_causal_lm

    root = tmp_path_factory.mktemp("lm")
    accuracy = train_causal_lm(root / "qwen")
    assert accuracy > 0.95, accuracy  # the language is learnt: its tokens mean something
    path = root / "qwen.onnx"
    assert main(["export", f"hf:{root / 'qwen'}", "-o", str(path)]) == 0
    prompts = save_prompts(make_prompts(64, seed=7), root / "prompts.npy")
    return {"spec": f"hf:{root / 'qwen'}", "onnx": path, "prompts": prompts, "root": root}


# --- inputs that fit a decoder: total = past + seq ---------------------------------------


def _decoder_inputs() -> tuple[InputSpec, ...]:
    past = ("batch", 2, "past", 8)
    return (
        InputSpec("input_ids", "int64", ("batch", "seq"), 0, 50),
        InputSpec("attention_mask", "int64", ("batch", "total"), kind="mask"),
        InputSpec("past_key_values.0.key", "float32", past),
        InputSpec("past_key_values.0.value", "float32", past),
    )


def test_generated_sizes_keep_the_mask_over_the_cache_and_the_new_tokens() -> None:
    inputs = _decoder_inputs()
    assert guess_relations(inputs) == ("total = past + seq",)
    dims = (DimRange("seq", 1, 96), DimRange("past", 1, 95), DimRange("total", 2, 96))
    sig = Signature(inputs, dims, guess_relations(inputs))
    plan = sig.size_plan([1, 2, 8])
    assert len(plan) >= 3
    for sizes in plan:
        assert sizes["total"] == sizes["past"] + sizes["seq"] <= 96, sizes
    feeds = sig.variations([1, 8])[1]
    sig.check(feeds)  # holds to the relation
    assert (
        feeds["attention_mask"].shape[1]
        == feeds["input_ids"].shape[1] + 8 * 0 + feeds["past_key_values.0.key"].shape[2]
    )
    bad = dict(feeds, attention_mask=feeds["attention_mask"][:, :-1])
    with pytest.raises(Exception, match="total = past \\+ seq does not hold"):
        sig.check(bad)
    # an encoder's names imply nothing
    assert guess_relations(inputs[:2]) == ()


# --- the token check itself --------------------------------------------------------------


class _Fake:
    """A token source with fixed answers: ``tokens`` per prompt, logits with ``margin``
    between the top two at every step."""

    def __init__(self, name: str, tokens: list[int], margin: float = 5.0, vocab: int = 10):
        self.name, self.tokens, self.margin, self.vocab = name, tokens, margin, vocab

    def _logits(self, token: int) -> np.ndarray:
        row = np.zeros(self.vocab, np.float32)
        row[token] = self.margin
        return row

    def greedy(self, prompt, max_new_tokens, eos_token_id):
        self.prompt_length = len(prompt)
        out = self.tokens[:max_new_tokens]
        return list(out), [self._logits(t) for t in out]

    def score(self, ids):
        """Teacher-forced: at each generated position, this source's own next token."""
        rows = [self._logits(0) for _ in ids]
        for k, t in enumerate(self.tokens[: len(ids) - self.prompt_length]):
            rows[self.prompt_length - 1 + k] = self._logits(t)
        return np.stack(rows)

    def sample(self, first, length, seed, eos_token_id):
        return [first]

    def close(self) -> None:
        pass


def test_the_check_names_the_first_differing_step_and_its_margin() -> None:
    ref = _Fake("ref", [3, 4, 5, 6])
    same = check_tokens(ref, _Fake("same", [3, 4, 5, 6]), [[1, 2]], max_new_tokens=4)
    assert same.identical == 1 and same.ok and same.teacher_forced == 1.0
    other = check_tokens(ref, _Fake("other", [3, 4, 7, 6]), [[1, 2]], max_new_tokens=4)
    assert other.identical == 0 and not other.ok
    (p,) = other.prompts
    assert p.first_diff == 2 and p.reference_margin == pytest.approx(5.0)
    assert "first differs at step 2: 5 vs 7" in other.summary()
    # a reference near-tie is shown and not counted against the candidate
    tie = check_tokens(
        _Fake("ref", [3, 4, 5, 6], margin=NEAR_TIE / 2), _Fake("c", [3, 4, 7, 6]), [[1, 2]],
        max_new_tokens=4,
    )  # fmt: skip
    assert tie.near_ties == 1 and tie.ok and "(near-tie)" in tie.summary()
    # a side that stops early differs where it stopped
    short = check_tokens(ref, _Fake("s", [3, 4]), [[1, 2]], max_new_tokens=4)
    assert short.prompts[0].first_diff == 2 and "(stopped)" in short.summary()


def test_prompts_files_with_padding(tmp_path: Path) -> None:
    from onnx_deploy.teach.lmdata import save_prompts

    path = save_prompts([[5, 6, 7], [8]], tmp_path / "p.npy")
    assert load_prompts(path) == [[5, 6, 7], [8]]
    np.savez(
        tmp_path / "p.npz", input_ids=np.array([[1, 2, 0], [3, 4, 5]]),
        attention_mask=np.array([[1, 1, 0], [1, 1, 1]]),
    )  # fmt: skip
    assert load_prompts(tmp_path / "p.npz") == [[1, 2], [3, 4, 5]]
    np.save(tmp_path / "f.npy", np.ones((2, 3), np.float32))
    with pytest.raises(Exception, match="2-D integer array"):
        load_prompts(tmp_path / "f.npy")


# --- every command on a decoder with its cache, with no data flags ----------------------


def test_causal_lms_export_with_their_cache_and_contract(lm, tmp_path, capsys) -> None:
    import onnx

    from onnx_deploy.core.contract import read_contract

    contract = read_contract(onnx.load(str(lm["onnx"]), load_external_data=False))
    assert contract.judge == "tokens" and contract.relations == ("total = past + seq",)
    assert contract.generation["eos_token_id"] == 0  # from generation_config.json
    assert any(
        i.name.startswith("past_key_values.") for i in onnx.load(str(lm["onnx"])).graph.input
    )
    code, _out, err = run_cli(capsys, "export", lm["spec"], "--no-cache", "-o", tmp_path / "n.onnx")
    assert code == 0, err
    names = [i.name for i in onnx.load(str(tmp_path / "n.onnx")).graph.input]
    assert not any(n.startswith("past_key_values.") for n in names)


def test_slim_fuse_quantize_validate_and_bench_run_on_the_decoder(lm, tmp_path, capsys) -> None:
    import onnx

    from onnx_deploy.convert.graphcheck import check_graph
    from onnx_deploy.core.contract import read_contract

    src = lm["onnx"]
    for argv in (
        ("slim", src, "-o", tmp_path / "s.onnx"),
        ("fuse", src, "-o", tmp_path / "f.onnx"),
        ("quantize", src, "--method", "dynamic", "-o", tmp_path / "d.onnx"),
        ("quantize", src, "--method", "fp16", "-o", tmp_path / "h.onnx"),
        ("validate", src, "--reference", lm["spec"]),
        ("bench", src, "--batch-sizes", "1", "--iters", "3", "--warmup", "1"),
    ):
        code, _out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert "GatherND" not in err
    assert "PASS" in run_cli(capsys, "validate", src, "--reference", lm["spec"])[1]
    onnx.checker.check_model(str(tmp_path / "h.onnx"), full_check=True)  # topologically sorted
    fused = onnx.load(str(tmp_path / "f.onnx"))
    ops = {n.op_type for n in fused.graph.node}
    assert "SimplifiedLayerNormalization" in ops or "SkipSimplifiedLayerNormalization" in ops
    check_graph(fused)  # the checker passes on every node outside ORT's own schemas
    for name in ("s", "d", "h", "f"):  # every derived file keeps the contract
        assert read_contract(onnx.load(str(tmp_path / f"{name}.onnx"), load_external_data=False))


def test_gqa_fusion_keeps_the_tokens_at_batch_1_and_names_left_padding(
    lm, tmp_path, capsys
) -> None:
    """transformers 5 writes rotary angles as a broadcast product that onnxscript's fusions
    do not match; ``--gqa`` rewrites them so that RotaryEmbedding and GroupQueryAttention
    fuse. The file is judged by its tokens: identical at batch 1 (else nothing is written),
    and in left-padded batches, where ORT's GroupQueryAttention reads row lengths, measured
    and named."""
    import onnx

    from onnx_deploy.core.contract import read_contract

    out = tmp_path / "g.onnx"
    code, text, err = run_cli(capsys, "fuse", lm["onnx"], "--gqa", "-o", out)
    assert code == 0, err
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("GroupQueryAttention") == 2, ops  # one per layer
    assert "tokens at batch 1: identical on 32/32 prompts" in text, text
    assert "in left-padded batches of 8: identical on" in text, text
    assert read_contract(onnx.load(str(out), load_external_data=False)).judge == "tokens"
    code, text, err = run_cli(capsys, "generate", out, "--reference", lm["spec"],
                              "--prompts", lm["prompts"])  # fmt: skip
    assert code == 0 and "identical on 64/64" in text, (err, text)
    plain = tmp_path / "p.onnx"  # without --gqa: no GroupQueryAttention
    assert run_cli(capsys, "fuse", lm["onnx"], "-o", plain)[0] == 0
    assert "GroupQueryAttention" not in {n.op_type for n in onnx.load(str(plain)).graph.node}


def test_fuse_and_fp16_keep_weights_in_external_data(lm, tmp_path, capsys) -> None:
    """The decoder with its weights beside it, as past 2 GB: fuse reads them lazily and the
    checker (with ONNX Runtime's own SimplifiedLayerNormalization set aside) finds them."""
    import onnx

    src = tmp_path / "src" / "model.onnx"
    src.parent.mkdir()
    onnx.save_model(onnx.load(str(lm["onnx"])), str(src), save_as_external_data=True,
                    location="model.onnx.data", size_threshold=1024)  # fmt: skip
    for argv in (
        ("fuse", src, "-o", tmp_path / "f" / "model.onnx"),
        ("quantize", src, "--method", "fp16", "-o", tmp_path / "h" / "model.onnx"),
    ):
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, (argv, err)
        assert "PASS" in out
    fused = tmp_path / "f" / "model.onnx"
    assert (tmp_path / "f" / "model.onnx.data").exists()
    assert not [p.name for p in fused.parent.iterdir() if p.name.startswith(".")]
    ops = {n.op_type for n in onnx.load(str(fused), load_external_data=False).graph.node}
    assert "SimplifiedLayerNormalization" in ops or "SkipSimplifiedLayerNormalization" in ops


def test_int4_keeps_the_greedy_tokens_of_the_trained_model(lm, tmp_path, capsys) -> None:
    out4 = tmp_path / "q.int4.onnx"
    code, out, err = run_cli(capsys, "quantize", lm["onnx"], "--method", "int4", "-o", out4)
    assert code == 0, err
    assert "MatMulNBits" in out and "GatherBlockQuantized" in out and "tokens" in out
    assert out4.stat().st_size < 0.6 * lm["onnx"].stat().st_size
    code, out, err = run_cli(
        capsys, "generate", out4, "--reference", lm["spec"], "--prompts", lm["prompts"],
        "--max-new-tokens", "24", "--min-identical", "0.98", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["identical"] >= 63 and len(report["prompts"]) == 64, report["identical"]
    assert report["eos_token_id"] == 0
    # the FP32 file itself: every prompt identical to transformers' generate
    code, out, err = run_cli(
        capsys, "generate", lm["onnx"], "--reference", lm["spec"], "--prompts", lm["prompts"],
        "--max-new-tokens", "24", "--json",
    )  # fmt: skip
    assert code == 0, err
    fp32 = json.loads(out)
    assert fp32["identical"] == 64 and fp32["teacher_forced"] == 1.0
    stops = sum(1 for p in fp32["prompts"] if 0 in p["reference"])
    assert 0 < stops < 64  # some prompts reach EOS, where both sides stop


def test_int4_options_from_the_cli(lm, tmp_path, capsys) -> None:
    out = tmp_path / "q.hqq.onnx"
    code, text, err = run_cli(
        capsys, "quantize", lm["onnx"], "--method", "int4", "--algorithm", "hqq",
        "--block-size", "64", "-o", out,
    )  # fmt: skip
    assert code == 0, err
    assert "block_size 64" in text and "algorithm hqq" in text and "tokens" in text
    assert "embedding stays float" in text and "GatherBlockQuantized" not in text
    code, _text, err = run_cli(
        capsys, "quantize", lm["onnx"], "--method", "int8-weight", "--algorithm", "hqq",
        "-o", tmp_path / "q8.onnx",
    )  # fmt: skip
    assert code == 1 and "HQQ in onnxruntime takes 4 bits" in err


def test_the_position_limit_is_refused_unless_asked(lm, capsys) -> None:
    code, _out, err = run_cli(
        capsys, "generate", lm["onnx"], "--reference", lm["spec"], "--num-prompts", "2",
        "--max-new-tokens", "200",
    )  # fmt: skip
    assert code == 1 and "past the model's limit of 128" in err


def test_the_card_judges_a_decoder_by_its_tokens(lm, tmp_path) -> None:
    from onnx_deploy.workflows.optimize import Goal
    from onnx_deploy.workflows.optimize import OptimizeConfig
    from onnx_deploy.workflows.optimize import optimize

    config = OptimizeConfig(
        goal=Goal(), passes=("slim", "int4", "int8-static"), rounds=2, iters=3, budget_s=0,
        plots=False, prompts=lm["prompts"], max_new_tokens=12,
    )  # fmt: skip
    card = optimize(lm["onnx"], tmp_path / "card", config)
    by_name = {c.name: c for c in card.candidates}
    assert any("judged by its greedy tokens" in n for n in card.notes)
    int4 = by_name["INT4 weights"]
    assert int4.passed and int4.agreement >= 0.98, int4.fails
    static = by_name["INT8 static"]  # close logits, wrong tokens: the count says how far off
    assert not static.passed and "greedy tokens identical on" in static.fails[0], static.fails
    assert card.contradictions() == []


def test_bench_times_both_in_their_own_blocks_against_the_bound(lm, capsys) -> None:
    from onnx_deploy.workflows.generation import weight_bytes_per_token

    code, out, err = run_cli(
        capsys, "generate", lm["onnx"], "--bench", "--reference", lm["spec"], "--num-prompts",
        "2", "--max-new-tokens", "8", "--threads", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    bench = json.loads(out)
    onnx_row, torch_row = bench["rows"]
    assert onnx_row["decode_tokens_per_s"] > 0 and torch_row["decode_tokens_per_s"] > 0
    assert 0 < bench["percent_of_bound"] < 100  # nothing reads the weights faster
    # the embedding table is read one row per token: not counted
    weights = weight_bytes_per_token(lm["onnx"])
    assert 0 < weights < lm["onnx"].stat().st_size - 96 * 64 * 4 + 1


def test_left_padded_batches_keep_the_tokens_of_generate(tmp_path, capsys) -> None:
    """GPT-2 reads absolute positions: a left-padded row is right only if its positions
    start at 0 after its padding (the graph makes them from the mask, as ``generate``
    does). Without that, half of these prompts differ in batches of 8."""
    import transformers

    from onnx_deploy.teach.lmdata import make_prompts
    from onnx_deploy.teach.lmdata import save_prompts

    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=96, n_positions=128, n_embd=32, n_layer=2, n_head=2, eos_token_id=0,
        bos_token_id=0,
    )  # fmt: skip
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    prompts = make_prompts(16, seed=7)
    assert len({len(p) for p in prompts[:8]}) > 1  # each batch pads its shorter rows
    path = save_prompts(prompts, tmp_path / "prompts.npy")
    spec = f"hf:{tmp_path / 'gpt2'}"
    assert main(["export", spec, "-o", str(tmp_path / "g.onnx")]) == 0
    capsys.readouterr()
    code, out, err = run_cli(
        capsys, "generate", tmp_path / "g.onnx", "--reference", spec, "--prompts", path,
        "--batch-size", "8", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["batch_size"] == 8 and report["identical"] == 16, report["identical"]


def test_an_onnxruntime_genai_folder_is_checked_by_its_tokens_and_timed_beside_ours(
    lm, tmp_path, capsys
) -> None:
    """onnxruntime-genai's model builder on the trained folder (a word-level tokenizer
    saved beside it: the builder needs one), its folder checked by tokens against
    transformers through onnxruntime-genai, and timed in its own block beside the file."""
    import shutil
    import subprocess
    import sys

    from onnx_deploy.infer.genai import GENAI_CONFIG
    from onnx_deploy.teach.lmdata import save_word_tokenizer

    pytest.importorskip("onnxruntime_genai", reason="make install installs it (--no-deps)")
    hf = tmp_path / "qwen"
    shutil.copytree(lm["root"] / "qwen", hf)
    save_word_tokenizer(hf)
    out = tmp_path / "genai"
    built = subprocess.run(
        [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf), "-o", str(out),
         "-p", "fp32", "-e", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    assert (out / GENAI_CONFIG).is_file() and (out / "model.onnx").is_file()

    code, text, err = run_cli(
        capsys, "generate", out, "--reference", lm["spec"], "--prompts", lm["prompts"],
        "--max-new-tokens", "16", "--threads", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    check = json.loads(text)
    assert check["candidate"] == str(out) and check["identical"] == 64, check["identical"]
    assert check["eos_token_id"] == 0  # transformers' generation config, as genai's own
    assert check["teacher_forced"] == 1.0

    code, text, err = run_cli(
        capsys, "generate", lm["onnx"], "--bench", "--genai", out, "--num-prompts", "2",
        "--max-new-tokens", "6", "--threads", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    ours, genai = json.loads(text)["rows"]
    assert genai["name"] == "onnxruntime-genai (genai)" and genai["decode_tokens_per_s"] > 0
    assert ours["decode_tokens_per_s"] > 0

    # one decode step through onnxruntime-genai's runner is the model's step: the logits of
    # the FP32 file at the last of the same tokens
    from onnx_deploy.infer.genai import GenaiRunner
    from onnx_deploy.infer.tokens import OnnxTokens

    with GenaiRunner(out, threads=1) as runner:
        mask = np.ones((1, 6), np.int64)
        got = runner.infer({"input_ids": np.array([[7]]), "attention_mask": mask})["logits"]
        again = runner.infer({"input_ids": np.array([[7]]), "attention_mask": mask})["logits"]
    ref = OnnxTokens(lm["onnx"])
    want = ref.score([1, 2, 3, 4, 5, 7])[-1]  # the runner's past: tokens 1..5
    ref.close()
    assert got.shape == (1, 1, want.shape[-1]) and np.array_equal(got, again)
    assert np.abs(got[0, -1] - want).max() < 1e-3, np.abs(got[0, -1] - want).max()

    # the card: genai's folder is a candidate, judged by tokens, timed on a decode step
    code, text, err = run_cli(
        capsys, "optimize", lm["onnx"], "--genai", out, "--prompts", lm["prompts"],
        "--passes", "slim", "--batch-sizes", "1,2", "--iters", "3", "--rounds", "2",
        "--budget", "0", "--threads", "1", "--no-plots", "--out-dir", tmp_path / "card",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    rows = {c["name"]: c for c in json.loads(text)["candidates"]}
    assert rows["genai"]["passed"] and rows["genai"]["agreement"] == 1.0, rows["genai"]
    assert rows["genai"]["runtime"] == "onnxruntime-genai"
    # timed at batch 1 only: onnxruntime-genai appends to a batch above 1 once
    assert [t["batch_size"] for t in rows["genai"]["timings"]] == [1]
    card = (tmp_path / "card" / "report.md").read_text()
    assert "onnxruntime-genai's model builder folder" in card
    code, _, err = run_cli(
        capsys, "optimize", lm["onnx"], "--runtimes", "onnxruntime,onnxruntime-genai",
        "--out-dir", tmp_path / "card2",
    )  # fmt: skip
    assert code != 0 and "--genai DIR" in err

    # a genai folder is for --reference or --bench --genai; a folder without its config fails
    code, _, err = run_cli(capsys, "generate", out, "--prompt-ids", "5,6")
    assert code != 0 and "--reference hf:DIR" in err
    (out / GENAI_CONFIG).unlink()
    code, _, err = run_cli(capsys, "generate", out, "--reference", lm["spec"])
    assert code != 0 and "Traceback" not in err


def test_make_install_pins_the_genai_version_the_error_names() -> None:
    from onnx_deploy.infer.genai import GENAI_VERSION
    from onnx_deploy.infer.genai import INSTALL

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert f"install -q --no-deps onnxruntime-genai=={GENAI_VERSION}" in makefile
    assert f"--no-deps onnxruntime-genai=={GENAI_VERSION}" in INSTALL


def test_a_decoder_judged_by_its_tokens_gets_fewer_random_samples(lm) -> None:
    """The card's random validation and calibration samples: 8 for a decoder judged by its
    tokens (its logits and cache held on both sides put the 600M card over 4x its file),
    32 and 64 for any other model."""
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner
    from onnx_deploy.workflows.optimize import DECODER_RANDOM_SAMPLES
    from onnx_deploy.workflows.optimize import task_data
    from onnx_deploy.workflows.optimize.config import OptimizeConfig

    runner = OnnxRuntimeRunner(lm["onnx"], "cpu")
    runner.release()
    specs, sig = runner.inputs, runner.signature()

    def samples(decoder: bool) -> tuple[int, int]:
        data = task_data(specs, sig, OptimizeConfig(), [], decoder=decoder)
        ids = data.calibration["input_ids"]
        return len(ids), sum(len(b["input_ids"]) for b in data.validation)

    assert DECODER_RANDOM_SAMPLES == 8
    assert samples(decoder=True) == (8, 8)
    assert samples(decoder=False) == (64, 32)


def test_the_token_check_names_a_missing_or_wrong_candidate_file(lm, tmp_path, capsys) -> None:
    for bad, says in ((tmp_path / "nope.onnx", "no such file"), (tmp_path, "is a directory")):
        code, _, err = run_cli(
            capsys, "generate", bad, "--reference", lm["spec"], "--prompts", lm["prompts"]
        )
        assert code == 1 and says in err and "unexpected" not in err, err
