"""Token generation on ONNX Runtime with a decoder exported with its KV cache.

Torch-free: numpy and onnxruntime. The model is one ``export_decoder`` graph
(``onnx_deploy.convert.hf``): the prefill runs the prompt with an empty cache (past length 0),
each decode step feeds one token and the cache the step before returned. The cache stays
where ONNX Runtime put it: ``present.*`` outputs are bound to the device
(``IOBinding.bind_output``) and the same ``OrtValue``s are bound as the next step's
``past_key_values.*`` inputs (``bind_ortvalue_input``), so it is never copied to numpy;
on CUDA it stays on the GPU. Only the last position's logits come back each step.

Greedy decoding, or sampling with a seed (temperature, top-k); a stop token; a maximum
number of new tokens.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import numpy as np

from onnx_deploy.core.errors import GenerationError
from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.results import Result

PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."


@dataclass(frozen=True)
class GenerationResult(Result):
    """New tokens and how long they took: the prefill (the prompt, one run) and the
    decode steps (one token each)."""

    COMPUTED = ("prefill_tokens_per_s", "decode_tokens_per_s")
    HIDDEN = ("step_logits",)

    prompt: tuple[int, ...]
    tokens: tuple[int, ...]
    prefill_seconds: float
    decode_seconds: float
    stopped: str  # "eos" or "max_new_tokens"
    device: str
    text: str = ""
    step_logits: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)

    @property
    def prefill_tokens_per_s(self) -> float:
        return len(self.prompt) / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        steps = max(len(self.tokens) - 1, 0)  # the first new token comes from the prefill
        return steps / self.decode_seconds if self.decode_seconds and steps else 0.0

    def summary(self) -> str:
        lines = [
            f"generate  {len(self.tokens)} new tokens ({self.stopped}) on {self.device}: "
            f"prefill {len(self.prompt)} tokens {1000 * self.prefill_seconds:.1f} ms "
            f"({self.prefill_tokens_per_s:.0f} tokens/s), decode "
            f"{self.decode_tokens_per_s:.0f} tokens/s",
            f"  tokens  {','.join(map(str, self.tokens))}",
        ]
        if self.text:
            lines.append(f"  text    {self.text}")
        return "\n".join(lines)


class Decoder:
    """An open decoder session and its cache layout, read from the graph's inputs."""

    def __init__(
        self, model: str | os.PathLike[str] | bytes, device: str = "auto",
        threads: int | None = None,
    ) -> None:  # fmt: skip
        from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

        self.runner = OnnxRuntimeRunner(model, device, threads=threads, name="decoder")
        names = [s.name for s in self.runner.inputs]
        self.past = [n for n in names if n.startswith(PAST_PREFIX)]
        outs = self.runner.output_names
        self.present = [PRESENT_PREFIX + n.removeprefix(PAST_PREFIX) for n in self.past]
        missing = [n for n in ("input_ids", "attention_mask") if n not in names]
        if (
            missing
            or not self.past
            or "logits" not in outs
            or any(p not in outs for p in self.present)
        ):
            raise GenerationError(
                f"{model}: not a decoder exported with its cache (inputs {names[:4]}..., "
                f"outputs {outs[:3]}...): it needs input_ids, attention_mask, "
                "past_key_values.<i>.key/value and outputs logits, present.<i>.key/value. "
                "Export it with `onnx-deploy export hf:DIR --with-cache`."
            )
        spec = next(s for s in self.runner.inputs if s.name == self.past[0])
        kv_heads, head_dim = spec.shape[1], spec.shape[3]
        if not isinstance(kv_heads, int) or not isinstance(head_dim, int):
            raise GenerationError(f"{model}: cache input {spec} needs fixed heads and head size")
        self.kv_heads, self.head_dim = kv_heads, head_dim
        self.vocab = next(s for s in self.runner.outputs if s.name == "logits").shape[-1]
        self.where = "cuda" if self.runner.uses_cuda else "cpu"

    def score(self, ids: Sequence[int]) -> np.ndarray:
        """The logits at every position of ``ids`` (one prefill with an empty cache):
        ``[len(ids), vocab]``, for teacher-forced checks."""
        empty = np.zeros((1, self.kv_heads, 0, self.head_dim), np.float32)
        feeds = {"input_ids": np.asarray([list(ids)], np.int64)}
        feeds["attention_mask"] = np.ones((1, len(ids)), np.int64)
        feeds |= {n: empty for n in self.past}
        out = self.runner.session.run(["logits"], feeds)[0]
        return np.asarray(out[0], np.float32)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def pick_token(
    logits: np.ndarray, rng: np.random.Generator | None, temperature: float, top_k: int
) -> int:
    """The next token: argmax, or a sample from softmax(logits / temperature) over the
    ``top_k`` best (0: all)."""
    if rng is None:
        return int(np.argmax(logits))
    scores = logits.astype(np.float64) / temperature
    if 0 < top_k < scores.size:
        cut = np.partition(scores, -top_k)[-top_k]
        scores = np.where(scores >= cut, scores, -np.inf)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    return int(rng.choice(scores.size, p=probs))


def generate(
    model: str | os.PathLike[str] | Decoder,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int = 32,
    eos_token_id: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    keep_logits: bool = False,
) -> GenerationResult:
    """Generate up to ``max_new_tokens`` after ``prompt_ids`` (batch 1), stopping at
    ``eos_token_id``. Greedy by default; ``do_sample`` draws with ``seed``.
    ``keep_logits`` keeps each step's last-position logits (for checks against PyTorch)."""
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise GenerationError("the prompt needs at least one token id")
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if do_sample and not temperature > 0:
        raise GenerationError(f"temperature must be > 0, got {temperature}")
    dec = model if isinstance(model, Decoder) else Decoder(model, device, threads)
    check_token_ids([prompt], dec.vocab)
    from onnx_deploy.infer.sessions import ort_module

    ort = ort_module()
    rng = np.random.default_rng(seed) if do_sample else None
    session = dec.runner.session
    empty = np.zeros((1, dec.kv_heads, 0, dec.head_dim), np.float32)
    past: dict[str, Any] = {
        n: ort.OrtValue.ortvalue_from_numpy(empty, dec.where, 0) for n in dec.past
    }
    tokens: list[int] = []
    kept: list[np.ndarray] = []
    step_ids = prompt
    total = 0
    prefill = decode = 0.0
    stopped = "max_new_tokens"
    try:
        for step in range(max_new_tokens):
            total += len(step_ids)
            binding = session.io_binding()
            binding.bind_cpu_input("input_ids", np.asarray([step_ids], np.int64))
            binding.bind_cpu_input("attention_mask", np.ones((1, total), np.int64))
            for name, value in past.items():
                binding.bind_ortvalue_input(name, value)
            binding.bind_output("logits", "cpu")
            for name in dec.present:
                binding.bind_output(name, dec.where, 0)  # stays on the device
            start = time.perf_counter()
            session.run_with_iobinding(binding)
            outputs = binding.get_outputs()
            logits = outputs[0].numpy()[0, -1]
            elapsed = time.perf_counter() - start
            if step == 0:
                prefill = elapsed
            else:
                decode += elapsed
            # get_outputs() follows the order the outputs were bound in: logits, then present
            past = dict(zip(dec.past, list(outputs)[1:], strict=True))
            if keep_logits:
                kept.append(logits.copy())
            token = pick_token(logits, rng, temperature, top_k)
            tokens.append(token)
            if eos_token_id is not None and token == eos_token_id:
                stopped = "eos"
                break
            step_ids = [token]
    finally:
        if not isinstance(model, Decoder):
            dec.close()
    return GenerationResult(
        tuple(prompt), tuple(tokens), prefill, decode, stopped, dec.where,
        step_logits=tuple(kept),
    )  # fmt: skip


def check_token_ids(rows: Sequence[Sequence[int]], vocab: int) -> None:
    """Raise ``InputMismatchError`` naming the ids of ``rows`` outside ``0..vocab - 1``."""
    bad = [t for r in rows for t in r if not 0 <= t < vocab]
    if bad:
        raise InputMismatchError(f"token ids {bad[:5]} are outside the vocabulary 0..{vocab - 1}")


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """``input_ids`` and ``attention_mask`` for ``rows`` of different lengths, padded on
    the left with ``pad`` (mask 0), as a tokenizer with ``padding_side="left"`` makes them."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask


def greedy_batch(
    decoder: Decoder,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 32,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> list[tuple[list[int], list[np.ndarray]]]:
    """Greedy tokens for several prompts in one batch, left-padded as transformers'
    ``generate`` pads them: the padding masked out (``attention_mask`` 0), positions
    counted from each row's first real token (the exported graph makes them from the
    mask), a finished row fed ``pad_token_id`` (default: ``eos_token_id``, else 0) until
    every row has stopped. Each row's tokens (through its EOS) and the logits of each of
    its steps."""
    rows = [[int(t) for t in p] for p in prompts]
    if not rows or any(not r for r in rows):
        raise GenerationError("every prompt of a batch needs at least one token id")
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    check_token_ids(rows, decoder.vocab)
    pad = pad_token_id if pad_token_id is not None else (eos_token_id or 0)
    ids, mask = left_pad(rows, pad)
    empty = np.zeros((len(rows), decoder.kv_heads, 0, decoder.head_dim), np.float32)
    feeds: dict[str, np.ndarray] = {n: empty for n in decoder.past}
    out: list[tuple[list[int], list[np.ndarray]]] = [([], []) for _ in rows]
    done = np.zeros(len(rows), bool)
    names = ["logits", *decoder.present]
    for _ in range(max_new_tokens):
        feeds |= {"input_ids": ids, "attention_mask": mask}
        got = decoder.runner.session.run(names, feeds)
        last = np.asarray(got[0][:, -1], np.float32)
        feeds = dict(zip(decoder.past, got[1:], strict=True))
        step = last.argmax(axis=1).astype(np.int64)
        for i in np.flatnonzero(~done):
            out[i][0].append(int(step[i]))
            out[i][1].append(last[i].copy())
            if eos_token_id is not None and step[i] == eos_token_id:
                done[i] = True
        if done.all():
            break
        ids = np.where(done, pad, step)[:, None].astype(np.int64)
        mask = np.concatenate([mask, np.ones((len(rows), 1), np.int64)], axis=1)
    return out


def load_tokenizer(folder: str | os.PathLike[str]) -> Any:
    """A tokenizer saved with ``save_pretrained`` in ``folder`` (offline)."""
    from onnx_deploy.core.extras import require

    transformers = require("transformers", "--prompt (a tokenizer)")
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:
        first = first_line(e)
        raise GenerationError(
            f"{folder} holds no tokenizer that loads offline ({first}); save one there with "
            "tokenizer.save_pretrained(folder), or pass --prompt-ids"
        ) from e
