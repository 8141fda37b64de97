"""``onnx-deploy generate --reference``: a decoder file's greedy tokens against transformers'
``generate`` (or another decoder file) over many prompts (``infer.tokens``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_deploy.core.contract import read_contract
from onnx_deploy.core.errors import GenerationError
from onnx_deploy.core.results import Result
from onnx_deploy.infer.genai import GenaiTokens
from onnx_deploy.infer.genai import genai_config
from onnx_deploy.infer.genai import is_genai_folder
from onnx_deploy.infer.generate import check_token_ids
from onnx_deploy.infer.tokens import OnnxTokens
from onnx_deploy.infer.tokens import TokenCheck
from onnx_deploy.infer.tokens import TokenSource
from onnx_deploy.infer.tokens import check_tokens
from onnx_deploy.infer.tokens import load_prompts
from onnx_deploy.infer.tokens import random_prompts
from onnx_deploy.infer.tokens import sampled_prompts
from onnx_deploy.infer.tokens import stop_token

DEFAULT_PROMPTS = 64


def file_contract(path: str | os.PathLike[str]) -> Any:
    """The contract in a decoder file's metadata, or None (weights are not read); a missing
    or unreadable file is a ``ModelFileError`` that says so."""
    from onnx_deploy.infer.modelinfo import load_onnx

    return read_contract(load_onnx(path, load_external_data=False))


def token_source(spec: str | os.PathLike[str], threads: int | None = None) -> TokenSource:
    """``hf:DIR`` -> transformers' ``generate``; a folder of onnxruntime-genai's model
    builder -> onnxruntime-genai; an ``.onnx`` decoder -> ONNX Runtime."""
    from onnx_deploy.convert.hf import is_hf_spec

    if is_hf_spec(str(spec)):
        from onnx_deploy.convert.hf import HfTokens

        return HfTokens(str(spec), threads)
    if is_genai_folder(spec):
        return GenaiTokens(spec, threads)
    return OnnxTokens(spec, threads)


def _genai_settings(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], int | None]:
    """What a genai folder's config says of generation (its ``search`` options and the
    special tokens), and its context length."""
    config = genai_config(folder)
    model = config["model"]
    settings = dict(config.get("search", {}))
    settings |= {
        k: model[k] for k in ("eos_token_id", "pad_token_id", "bos_token_id") if k in model
    }
    return settings, model.get("context_length")


def check_generation(
    model: str | os.PathLike[str],
    reference: str,
    *,
    prompts: str | os.PathLike[str] | Sequence[Sequence[int]] | None = None,
    num_prompts: int = DEFAULT_PROMPTS,
    max_new_tokens: int = 24,
    min_identical: float = 1.0,
    eos_token_id: int | None = None,
    threads: int | None = None,
    past_limit: bool = False,
    batch_size: int = 1,
) -> TokenCheck:
    """The token check of ``model`` (a decoder exported with its cache) against
    ``reference`` (``hf:DIR`` or another decoder file). ``prompts``: a prompts file or
    lists of ids; default ``num_prompts`` random prompts from the vocabulary. EOS: the
    reference folder's ``generation_config`` (what transformers stops at), else the file's
    contract, unless ``eos_token_id`` is given. A prompt whose length plus
    ``max_new_tokens`` passes the model's position limit is refused unless ``past_limit``.
    ``batch_size`` above 1: left-padded batches on both sides (``check_tokens``)."""
    genai = is_genai_folder(model)
    contract = None if genai else file_contract(model)
    generation: dict[str, Any] = dict(contract.generation) if contract is not None else {}
    limit: int | None = _file_limit(contract)
    if genai:
        generation, limit = _genai_settings(model)
    notes: list[str] = []
    ref = token_source(reference, threads)
    try:
        cand = token_source(model, threads)
    except BaseException:
        ref.close()
        raise
    if genai and batch_size > 1:
        notes.append(
            f"onnxruntime-genai ran each prompt alone (the reference: batches of {batch_size})"
        )
    try:
        hf_model = getattr(ref, "model", None)
        if hf_model is not None:
            from onnx_deploy.convert.hf import generation_settings
            from onnx_deploy.convert.hf import max_sequence

            generation = generation_settings(hf_model)
            limit = max_sequence(hf_model.config)
        if eos_token_id is None:
            eos_token_id = stop_token(generation)
            listed = generation.get("eos_token_id")
            if isinstance(listed, list) and len(listed) > 1:
                notes.append(
                    f"the generation config stops at any of {listed}; checked: {eos_token_id}"
                )
        if prompts is None:
            prompt_ids = sampled_prompts(ref, cand.vocab, num_prompts, eos_token_id=eos_token_id)
            notes.append(
                f"{num_prompts} prompts of 4-16 tokens drawn from {ref.name} (no prompts "
                "given: pass --prompts FILE for your own)"
            )
        elif isinstance(prompts, (str, os.PathLike)):
            prompt_ids = load_prompts(prompts)
        else:
            prompt_ids = [list(p) for p in prompts]
        check_token_ids(prompt_ids, cand.vocab)
        longest = max(len(p) for p in prompt_ids) + max_new_tokens
        if limit is not None and longest > limit and not past_limit:
            raise GenerationError(
                f"the longest prompt plus {max_new_tokens} new tokens is {longest} positions, "
                f"past the model's limit of {limit}: lower --max-new-tokens, shorten the "
                "prompts, or pass --past-limit to run anyway"
            )
        return check_tokens(
            ref, cand, prompt_ids, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
            min_identical=min_identical, generation=generation, notes=notes,
            batch_size=batch_size,
        )  # fmt: skip
    finally:
        cand.close()
        ref.close()


def _file_limit(contract: Any) -> int | None:
    if contract is None:
        return None
    return next((d.max for d in contract.dims if d.name == "total"), None)


# --- speed: prefill and decode tokens/s against the memory-read bound --------------------


@dataclass(frozen=True)
class SpeedRow:
    """One way to generate: tokens/s of the prefill (prompt tokens over prefill time) and
    of the decode steps (new tokens after the first over their time), over all prompts."""

    name: str
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    decode_p10: float  # the slowest and fastest tenth of the prompts' decode rates
    decode_p90: float


@dataclass(frozen=True)
class GenerationBench(Result):
    """``generate --bench``: the decoder file on ONNX Runtime and, with a reference,
    transformers' ``generate`` (its KV cache), each timed in its own block over the same
    prompts at the same thread count; decode against the memory-read bound."""

    COMPUTED = ("bound_tokens_per_s", "percent_of_bound")

    model: str
    threads: int
    prompts: int
    prompt_tokens: int
    new_tokens: int
    rows: tuple[SpeedRow, ...]
    weight_bytes: int  # read once per decode step: every initializer but the embedding
    read_gbps: float
    notes: tuple[str, ...] = ()

    @property
    def bound_tokens_per_s(self) -> float:
        from onnx_deploy.infer.peak import decode_bound

        return decode_bound(self.weight_bytes, self.read_gbps)

    @property
    def percent_of_bound(self) -> float:
        return 100 * self.rows[0].decode_tokens_per_s / self.bound_tokens_per_s

    def summary(self) -> str:
        from onnx_deploy.core.files import human_size
        from onnx_deploy.core.tables import format_table

        table = format_table(
            ("", "prefill tok/s", "decode tok/s", "decode p10-p90"),
            [(r.name, f"{r.prefill_tokens_per_s:.0f}", f"{r.decode_tokens_per_s:.1f}",
              f"{r.decode_p10:.1f}-{r.decode_p90:.1f}") for r in self.rows],
            widths=(36, 14, 13, 15), align="<>>>", indent="  ",
        )  # fmt: skip
        lines = [
            f"generate  {self.model}: {self.prompts} prompts ({self.prompt_tokens} tokens), "
            f"{self.new_tokens} new tokens each, batch 1, {self.threads} threads",
            table,
            f"  bound   {human_size(self.weight_bytes)} of weights read per token at "
            f"{self.read_gbps:.1f} GB/s (the fastest read measured here) = "
            f"{self.bound_tokens_per_s:.1f} tokens/s: decode at {self.percent_of_bound:.0f}% "
            "of it",
        ]
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def weight_bytes_per_token(path: str | os.PathLike[str]) -> int:
    """Bytes a decode step reads: every initializer of the graph but the token embedding
    (a ``Gather``'s table, of which one row per token is read)."""
    import onnx
    from onnx import external_data_helper

    model = onnx.load(str(path), load_external_data=False)
    gathered = {
        n.input[0] for n in model.graph.node if n.op_type in ("Gather", "GatherBlockQuantized")
    }
    gathered |= {  # GatherBlockQuantized's scales and zero points
        i for n in model.graph.node if n.op_type == "GatherBlockQuantized" for i in n.input[2:]
    }
    total = 0
    for t in model.graph.initializer:
        if t.name in gathered:
            continue
        if external_data_helper.uses_external_data(t):
            info = {e.key: e.value for e in t.external_data}
            total += int(info.get("length", 0))
        elif t.raw_data:
            total += len(t.raw_data)
        else:
            total += onnx.numpy_helper.to_array(t).nbytes
    return total


def _rates(samples: Sequence[tuple[int, float, int, float]], name: str) -> SpeedRow:
    import numpy as np

    prompt = sum(s[0] for s in samples)
    prefill = sum(s[1] for s in samples)
    steps = sum(s[2] for s in samples)
    decode = sum(s[3] for s in samples)
    each = [s[2] / s[3] for s in samples if s[3] > 0]
    p10, p90 = (float(np.percentile(each, q)) for q in (10, 90)) if each else (0.0, 0.0)
    return SpeedRow(name, prompt / prefill, steps / decode if decode else 0.0, p10, p90)


def bench_generation(
    model: str | os.PathLike[str],
    *,
    reference: str | None = None,
    prompts: str | os.PathLike[str] | Sequence[Sequence[int]] | None = None,
    num_prompts: int = 8,
    max_new_tokens: int = 32,
    threads: int | None = None,
    genai: str | os.PathLike[str] | None = None,
    log: Any = None,
) -> GenerationBench:
    """Prefill and decode tokens/s of ``model`` over the prompts (default ``num_prompts``
    of random ids, 8-64 tokens), and of ``reference``'s ``generate`` (``hf:DIR``) and of
    ``genai`` (a folder of onnxruntime-genai's model builder, run by onnxruntime-genai),
    each in a separate block at the same thread count; EOS is not applied (every prompt
    makes ``max_new_tokens``). One session serves every prompt; a warm-up prompt runs
    first."""
    from onnx_deploy.infer.generate import generate
    from onnx_deploy.infer.peak import memory_read_rate

    threads = threads or os.cpu_count() or 1
    notes: list[str] = []
    with contextlib.closing(OnnxTokens(model, threads)) as onnx_side:
        if prompts is None:  # the speed does not depend on the text: random ids
            ids = random_prompts(onnx_side.decoder.vocab, num_prompts, min_length=8, max_length=64)
            notes.append(f"{num_prompts} random prompts of 8-64 tokens")
        elif isinstance(prompts, (str, os.PathLike)):
            ids = load_prompts(prompts)
        else:
            ids = [list(p) for p in prompts]
        generate(onnx_side.decoder, ids[0], max_new_tokens=4)  # warm-up
        samples = []
        for p in ids:
            got = generate(onnx_side.decoder, p, max_new_tokens=max_new_tokens)
            samples.append((len(p), got.prefill_seconds, len(got.tokens) - 1, got.decode_seconds))
        rows = [_rates(samples, "onnxruntime (KV cache, IOBinding)")]
    if genai is not None:
        rows.append(_genai_rates(genai, ids, max_new_tokens, threads))
    if reference is not None:
        rows.append(_hf_rates(reference, ids, max_new_tokens, threads))
    weight = weight_bytes_per_token(model)
    read = memory_read_rate(threads=threads)
    return GenerationBench(
        str(model), threads, len(ids), sum(len(p) for p in ids), max_new_tokens, tuple(rows),
        weight, read, tuple(notes),
    )  # fmt: skip


def _genai_rates(folder: Any, ids: Sequence[Sequence[int]], new: int, threads: int) -> SpeedRow:
    """onnxruntime-genai on its own folder: the prompt's ``append_tokens`` timed as the
    prefill, each next token's as a decode step (the greedy choice outside the timing, as
    on the ONNX Runtime side)."""
    with contextlib.closing(GenaiTokens(folder, threads)) as side:
        side.run(ids[0], 4, None, keep_logits=False)  # warm-up
        samples = []
        for p in ids:
            tokens, _, prefill, decode = side.run(p, new, None, keep_logits=False)
            samples.append((len(p), prefill, len(tokens) - 1, decode))
    return _rates(samples, f"onnxruntime-genai ({Path(folder).name})")


def _hf_rates(spec: str, ids: Sequence[Sequence[int]], new: int, threads: int) -> SpeedRow:
    """transformers' ``generate`` with its cache, ``threads`` torch threads: the prefill
    timed as a one-token ``generate``, the decode as the rest of a full one."""
    import time

    from onnx_deploy.convert.hf import hf_generate
    from onnx_deploy.convert.hf import load_hf_model
    from onnx_deploy.core.extras import require

    torch = require("torch", "timing transformers' generate")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = load_hf_model(spec)
        hf_generate(model, ids[0], 4)  # warm-up
        samples = []
        for p in ids:
            start = time.perf_counter()
            hf_generate(model, p, 1)
            first = time.perf_counter() - start
            start = time.perf_counter()
            hf_generate(model, p, new)
            total = time.perf_counter() - start
            samples.append((len(p), first, new - 1, max(total - first, 1e-9)))
    finally:
        torch.set_num_threads(before)
    return _rates(samples, "transformers generate (KV cache)")


# --- encoder-decoders (convert.seq2seq's folders) -----------------------------------------

SEQ2SEQ_LENGTHS = (3, 9, 17, 33)  # generated encoder inputs take these lengths in turn


@dataclass(frozen=True)
class Seq2SeqCheck(Result):
    """An encoder-decoder folder's greedy tokens against transformers', input by input."""

    COMPUTED = ("ok", "identical")

    model: str
    reference: str
    tokens: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (reference, candidate) per input
    max_new_tokens: int
    eos_token_id: int | None
    min_identical: float = 1.0
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> int:
        return sum(want == got for want, got in self.tokens)

    @property
    def ok(self) -> bool:
        return self.identical >= self.min_identical * len(self.tokens)

    def summary(self) -> str:
        n = len(self.tokens)
        lines = [
            f"tokens    {self.model} vs {self.reference}: identical on {self.identical}/{n} "
            f"inputs (greedy, up to {self.max_new_tokens} new tokens, EOS {self.eos_token_id}; "
            f"at least {self.min_identical:.0%} needed): {'PASS' if self.ok else 'FAIL'}"
        ]
        for i, (want, got) in enumerate(self.tokens):
            if want != got:
                step = next(
                    (k for k, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None
                )
                step = min(len(want), len(got)) if step is None else step
                lines.append(f"  input {i}: first differs at step {step}: {want} vs {got}")
                break
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def check_seq2seq(
    folder: str | os.PathLike[str],
    reference: str,
    *,
    inputs: str | os.PathLike[str] | None = None,
    num_inputs: int = 16,
    max_new_tokens: int = 32,
    min_identical: float = 1.0,
    num_beams: int | None = None,
    threads: int | None = None,
) -> Seq2SeqCheck:
    """``generate FOLDER --reference hf:DIR``: greedy tokens of an encoder-decoder folder
    (``infer.seq2seq``) against transformers' on ``inputs`` (an ``.npz`` with the encoder's
    inputs by name) or ``num_inputs`` generated ones, in batches of one. Stops at the EOS
    the folder's config names, as transformers does. A generation config that asks for
    beams is refused unless ``num_beams == 1``: the loop here is greedy."""
    import numpy as np

    from onnx_deploy.convert.hf import load_hf_model
    from onnx_deploy.convert.seq2seq import encoder_example
    from onnx_deploy.convert.seq2seq import hf_seq2seq_greedy
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.infer.seq2seq import Seq2SeqGenerator

    if num_beams is not None and num_beams != 1:
        raise GenerationError(
            f"--num-beams {num_beams}: beam search is not implemented for encoder-decoder "
            "folders here; check greedy decoding with --num-beams 1"
        )
    if not reference.startswith("hf:"):
        raise GenerationError("an encoder-decoder folder is checked against hf:DIR")
    generator = Seq2SeqGenerator(folder, threads=threads)
    model = load_hf_model(reference)
    beams = int(getattr(getattr(model, "generation_config", None), "num_beams", 1) or 1)
    notes: list[str] = []
    if beams > 1:
        if num_beams is None:
            raise GenerationError(
                f"{reference}'s generation config asks for {beams} beams, which this check "
                "does not run; compare greedy decoding on both sides with --num-beams 1"
            )
        notes.append(f"greedy on both sides: the generation config's {beams} beams not used")
    if inputs is not None:
        data = load_data(inputs)
        if not isinstance(data, dict):
            raise GenerationError(f"{inputs}: an .npz with the encoder's inputs by name")
        rows = len(next(iter(data.values())))
        batches = [{k: np.asarray(v[i : i + 1]) for k, v in data.items()} for i in range(rows)]
    else:
        # the encoder and the cross-attention cache at several lengths
        batches = [
            encoder_example(model, 1, seed=i, seq=SEQ2SEQ_LENGTHS[i % len(SEQ2SEQ_LENGTHS)])
            for i in range(num_inputs)
        ]
    eos = generator.settings.eos_token_id
    pairs = []
    for feeds in batches:
        want = hf_seq2seq_greedy(model, feeds, max_new_tokens, eos)[0]
        got = generator.greedy(feeds, max_new_tokens, eos)[0]
        pairs.append((tuple(want), tuple(got)))
    return Seq2SeqCheck(
        str(folder), reference, tuple(pairs), max_new_tokens, eos, min_identical, tuple(notes)
    )


@dataclass(frozen=True)
class Transcription(Result):
    """A speech clip through a Whisper folder: its features (``infer.audio``, numpy) and
    greedy tokens; with a reference, transformers' features and tokens beside them."""

    COMPUTED = ("ok",)

    model: str
    audio: str
    seconds: float
    tokens: tuple[int, ...]
    reference: str | None = None
    reference_tokens: tuple[int, ...] | None = None
    features_max_abs: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reference_tokens is None or self.reference_tokens == self.tokens

    def summary(self) -> str:
        lines = [
            f"audio     {self.audio}: {self.seconds:.2f} s",
            f"tokens    {','.join(map(str, self.tokens))}",
        ]
        if self.reference_tokens is not None:
            lines += [
                f"  features vs transformers' feature extractor: max abs "
                f"{self.features_max_abs:.2e}",
                f"  tokens vs {self.reference}: "
                f"{'identical' if self.ok else 'DIFFER: ' + ','.join(map(str, self.reference_tokens))}"
                f": {'PASS' if self.ok else 'FAIL'}",
            ]
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def transcribe(
    folder: str | os.PathLike[str],
    audio: str | os.PathLike[str],
    *,
    reference: str | None = None,
    sample_rate: int | None = None,
    max_new_tokens: int = 32,
    threads: int | None = None,
) -> Transcription:
    """``generate FOLDER --audio FILE``: a clip (``.wav``, or ``.npy`` at ``sample_rate``)
    checked against the folder's ``preprocessor_config.json`` (rate, length), its log-mel
    features computed here, greedy tokens up to the EOS. With ``reference`` (``hf:DIR``):
    transformers' feature extractor and model on the same samples, compared."""
    from onnx_deploy.infer.audio import WhisperFeatures
    from onnx_deploy.infer.audio import load_audio
    from onnx_deploy.infer.seq2seq import Seq2SeqGenerator

    extractor = WhisperFeatures.from_folder(folder)
    clip = load_audio(audio, sample_rate)
    samples = extractor.check(clip)
    features = extractor(samples)[None]
    generator = Seq2SeqGenerator(folder, threads=threads)
    eos = generator.settings.eos_token_id
    tokens = tuple(generator.greedy({"input_features": features}, max_new_tokens, eos)[0])
    if reference is None:
        return Transcription(str(folder), str(audio), clip.seconds, tokens, notes=clip.notes)
    import numpy as np
    import transformers

    from onnx_deploy.convert.hf import hf_folder
    from onnx_deploy.convert.hf import load_hf_model
    from onnx_deploy.convert.seq2seq import hf_seq2seq_greedy

    theirs = transformers.WhisperFeatureExtractor.from_pretrained(hf_folder(reference))
    want_features = theirs(
        samples, sampling_rate=clip.rate, return_tensors="np"
    ).input_features.astype(np.float32)
    model = load_hf_model(reference)
    want = hf_seq2seq_greedy(model, {"input_features": want_features}, max_new_tokens, eos)[0]
    return Transcription(
        str(folder), str(audio), clip.seconds, tokens, reference, tuple(want),
        float(np.abs(want_features - features).max()), clip.notes,
    )  # fmt: skip


@dataclass(frozen=True)
class FolderQuantization(Result):
    """Each file of an encoder-decoder folder quantized by one method, and the folder judged
    by its greedy tokens against its parent folder's (the files' outputs on random caches
    say little: a decoder's cache is never random)."""

    COMPUTED = ("ok",)

    source: str
    path: str
    method: str
    results: tuple[Any, ...]
    tokens: Seq2SeqCheck

    @property
    def ok(self) -> bool:
        return self.tokens.ok

    def summary(self) -> str:
        lines = [f"quantize  {self.source}/ -> {self.path}/ ({self.method}, each file)"]
        # each pass's own first line, with the temporary folder's path cut to the file
        lines += ["  " + r.summary().splitlines()[0] for r in self.results]
        lines.append(self.tokens.summary())
        return "\n".join(lines)


def quantize_seq2seq(
    folder: str | os.PathLike[str],
    output: str | os.PathLike[str],
    method: str,
    options: Any = None,
    *,
    min_identical: float = 0.9,
    num_inputs: int = 16,
    max_new_tokens: int = 16,
    inputs: Sequence[dict[str, Any]] | None = None,
    force: bool = False,
) -> FolderQuantization:
    """``quantize FOLDER --method M -o OUT``: the encoder and both decoders of an
    encoder-decoder folder through the same quantization pass (``method`` is the pass's
    name: ``int8-dynamic``, ``int4``, ``int8-weight``, ``fp16``), the configs copied, then
    greedy tokens of both folders compared on ``num_inputs`` generated encoder inputs
    (``SEQ2SEQ_LENGTHS`` tokens in turn), or on ``inputs`` (encoder feeds, one input
    each: the task's own data, where random ids lead a small model off its training and
    into near-ties). The folder is written either way, as a file that fails its check is;
    ``ok`` says whether ``min_identical`` of the inputs agreed."""
    import dataclasses
    import shutil
    import tempfile

    from onnx_deploy.core.errors import OutputExistsError
    from onnx_deploy.infer.seq2seq import FILES
    from onnx_deploy.infer.seq2seq import Seq2SeqGenerator
    from onnx_deploy.infer.seq2seq import is_seq2seq_folder
    from onnx_deploy.passes import Context
    from onnx_deploy.passes import run_pass

    src, out = Path(folder), Path(output)
    if not is_seq2seq_folder(src):
        raise GenerationError(f"{src}: not an encoder-decoder folder ({', '.join(FILES)})")
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists; choose another folder or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        results = []
        for name in FILES:
            ctx = Context(validate=False, force=True)
            done = run_pass(method, src / name, tmp / name, ctx, options).result
            if hasattr(done, "output_path"):  # where it lands, not the temporary folder
                done = dataclasses.replace(done, output_path=str(out / name))
            results.append(done)
        for extra in src.iterdir():
            if extra.suffix == ".json":
                shutil.copy2(extra, tmp / extra.name)
        parent, child = Seq2SeqGenerator(src), Seq2SeqGenerator(tmp)
        eos = parent.settings.eos_token_id
        pairs = []
        chosen = list(inputs) if inputs is not None else [
            parent.example(i, SEQ2SEQ_LENGTHS[i % len(SEQ2SEQ_LENGTHS)])
            for i in range(num_inputs)
        ]  # fmt: skip
        for feeds in chosen:
            want = parent.greedy(feeds, max_new_tokens, eos)[0]
            pairs.append((tuple(want), tuple(child.greedy(feeds, max_new_tokens, eos)[0])))
        del parent, child
        check = Seq2SeqCheck(str(out), str(src), tuple(pairs), max_new_tokens, eos, min_identical)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return FolderQuantization(str(src), str(out), method, tuple(results), check)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Seq2SeqSpeed:
    """One way to run an encoder-decoder: the encoder's median time per input and the
    decoder's tokens/s (every step after the encoder, the first step included)."""

    name: str
    encoder_ms: float
    decoder_tokens_per_s: float
    decoder_p10: float
    decoder_p90: float


@dataclass(frozen=True)
class Seq2SeqBench(Result):
    """``generate FOLDER --bench``: the folder on ONNX Runtime and, with a reference,
    transformers' ``generate`` (its cache), each timed in its own block over the same
    inputs at the same thread count, after one warm-up input each."""

    model: str
    threads: int
    inputs: int
    new_tokens: int
    rows: tuple[Seq2SeqSpeed, ...]

    def summary(self) -> str:
        from onnx_deploy.core.tables import format_table

        table = format_table(
            ("", "encoder ms", "decoder tok/s", "decoder p10-p90"),
            [(r.name, f"{r.encoder_ms:.2f}", f"{r.decoder_tokens_per_s:.1f}",
              f"{r.decoder_p10:.1f}-{r.decoder_p90:.1f}") for r in self.rows],
            widths=(max(len(r.name) for r in self.rows) + 2, 11, 14, 16), align="<>>>",
            indent="  ",
        )  # fmt: skip
        head = (
            f"generate  {self.model}: {self.inputs} inputs, {self.new_tokens} new tokens each "
            f"(no EOS stop), batch 1, {self.threads} threads; encoder median per input"
        )
        return f"{head}\n{table}"


def _speed(name: str, samples: Sequence[tuple[float, float, int]]) -> Seq2SeqSpeed:
    import numpy as np

    rates = [steps / dec for _, dec, steps in samples if dec > 0]
    steps, seconds = sum(s[2] for s in samples), sum(s[1] for s in samples)
    return Seq2SeqSpeed(
        name, 1000 * float(np.median([s[0] for s in samples])), steps / seconds,
        float(np.percentile(rates, 10)), float(np.percentile(rates, 90)),
    )  # fmt: skip


def bench_seq2seq(
    folder: str | os.PathLike[str],
    *,
    reference: str | None = None,
    num_inputs: int = 8,
    max_new_tokens: int = 32,
    threads: int | None = None,
) -> Seq2SeqBench:
    """Encoder time and decoder tokens/s of an encoder-decoder folder, and of transformers'
    ``generate`` on the same inputs where ``reference`` (``hf:DIR``) is given."""
    import time

    from onnx_deploy.infer.seq2seq import Seq2SeqGenerator

    threads = threads or os.cpu_count() or 1  # as bench_generation
    generator = Seq2SeqGenerator(folder, threads=threads)
    inputs = [
        generator.example(i, SEQ2SEQ_LENGTHS[i % len(SEQ2SEQ_LENGTHS)]) for i in range(num_inputs)
    ]
    generator.greedy(inputs[0], max_new_tokens, None)  # warm-up
    ours = []
    for feeds in inputs:
        times: dict[str, float] = {}
        generator.greedy(feeds, max_new_tokens, None, times=times)
        ours.append((times["encoder"], times["decoder"], int(times["steps"])))
    rows = [_speed(f"ONNX Runtime ({Path(folder).name})", ours)]
    if reference is not None:
        import torch

        from onnx_deploy.convert.hf import load_hf_model
        from onnx_deploy.convert.seq2seq import hf_seq2seq_greedy

        torch.set_num_threads(threads)
        model = load_hf_model(reference)
        encoder = model.get_encoder()
        hf_seq2seq_greedy(model, inputs[0], max_new_tokens, None)  # warm-up
        theirs = []
        for feeds in inputs:
            tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
            with torch.no_grad():
                start = time.perf_counter()
                encoder(**tensors)
                encoded = time.perf_counter() - start
            start = time.perf_counter()
            hf_seq2seq_greedy(model, feeds, max_new_tokens, None)
            total = time.perf_counter() - start
            theirs.append((encoded, max(total - encoded, 1e-9), max_new_tokens))
        name = Path(reference.removeprefix("hf:")).name
        rows.append(_speed(f"transformers generate ({name})", theirs))
    return Seq2SeqBench(str(folder), threads, num_inputs, max_new_tokens, tuple(rows))
