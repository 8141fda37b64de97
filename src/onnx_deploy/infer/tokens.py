"""A generative model judged by its tokens: greedy tokens over many prompts against a reference.

Logits on one random input say little about a decoder: a variant whose logits are close
(cosine 0.9975) can still give the wrong token at step 3 of every prompt, and one whose
logits moved can keep every token. ``check_tokens`` runs greedy decoding on both sides
for each prompt (``do_sample=False``, ``num_beams=1``; stopping at the generation
config's ``eos_token_id`` on both sides) and reports:

- identical on N of M prompts, and for each that differs the first differing step and the
  reference's top-2 logit margin there: a near-tie (``NEAR_TIE``) in the reference itself
  flips under any rounding and is not counted against the candidate;
- teacher-forced next-token agreement: the candidate fed the reference's own sequence,
  its argmax at every generated position against the reference's token (no error
  compounds, so it shows how often a step goes wrong);
- perplexity of both on the reference's sequences (the generated part), so a quantized
  variant's quality is a number, not only a token count.

Both sides are ``TokenSource``s: an ONNX decoder with its cache (``OnnxTokens``, here,
torch-free) or transformers' ``generate`` (``convert.hf.HfTokens``). The anchors:
onnxruntime-genai's and optimum's generation tests compare generated tokens; none checks
several decode steps over many prompts with the margins shown.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

import numpy as np

from onnx_deploy.core.errors import GenerationError
from onnx_deploy.core.results import Result

# a reference whose top two logits differ by less than this at a step is a near-tie there
NEAR_TIE = 0.1
# the check a quantized decoder gets against its parent: prompts, new tokens, share identical
PARENT_PROMPTS = 32
PARENT_NEW_TOKENS = 16
PARENT_MIN_IDENTICAL = 0.9
# generation settings the check applies on both sides; the others a config enables are named
APPLIED = ("eos_token_id", "pad_token_id", "bos_token_id", "max_length", "do_sample",
           "num_beams", "temperature", "top_k", "top_p")  # fmt: skip


class TokenSource(Protocol):
    name: str

    @property
    def vocab(self) -> int:
        """The vocabulary's size: token ids run ``0..vocab - 1``."""
        ...

    def greedy(
        self, prompt: Sequence[int], max_new_tokens: int, eos_token_id: int | None
    ) -> tuple[list[int], list[np.ndarray]]:
        """Greedy tokens after ``prompt`` and the raw logits of each step."""
        ...

    def greedy_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_token_id: int | None
    ) -> list[tuple[list[int], list[np.ndarray]]]:
        """``greedy`` for several prompts in one left-padded batch."""
        ...

    def score(self, ids: Sequence[int]) -> np.ndarray:
        """Logits at every position of ``ids``: ``[len(ids), vocab]``."""
        ...

    def sample(self, first: int, length: int, seed: int, eos_token_id: int | None) -> list[int]:
        """``first``, then up to ``length - 1`` tokens drawn from the model (temperature 1,
        every token), stopping before ``eos_token_id``."""
        ...

    def close(self) -> None: ...


class OnnxTokens:
    """An ONNX decoder exported with its cache (one session for every prompt)."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        from onnx_deploy.infer.generate import Decoder

        self.name = str(path)
        self.decoder = Decoder(path, "cpu", threads)

    @property
    def vocab(self) -> int:
        return self.decoder.vocab

    def greedy(
        self, prompt: Sequence[int], max_new_tokens: int, eos_token_id: int | None
    ) -> tuple[list[int], list[np.ndarray]]:
        from onnx_deploy.infer.generate import generate

        got = generate(
            self.decoder, prompt, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id,
            keep_logits=True,
        )  # fmt: skip
        return list(got.tokens), list(got.step_logits)

    def greedy_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_token_id: int | None
    ) -> list[tuple[list[int], list[np.ndarray]]]:
        from onnx_deploy.infer.generate import greedy_batch

        return greedy_batch(
            self.decoder, prompts, max_new_tokens=max_new_tokens, eos_token_id=eos_token_id
        )

    def score(self, ids: Sequence[int]) -> np.ndarray:
        return self.decoder.score(ids)

    def sample(self, first: int, length: int, seed: int, eos_token_id: int | None) -> list[int]:
        from onnx_deploy.infer.generate import generate

        if length < 2:
            return [first]
        got = generate(
            self.decoder, [first], max_new_tokens=length - 1, eos_token_id=eos_token_id,
            do_sample=True, seed=seed,
        )  # fmt: skip
        return [first, *(t for t in got.tokens if t != eos_token_id)]

    def close(self) -> None:
        self.decoder.close()


@dataclass(frozen=True)
class PromptCheck:
    """One prompt: both sides' tokens, where they first differ and the margins there, and
    how many of the reference's tokens the candidate predicts teacher-forced."""

    prompt: tuple[int, ...]
    reference: tuple[int, ...]
    candidate: tuple[int, ...]
    first_diff: int | None  # the first step whose tokens differ (or where one side stopped)
    reference_margin: float | None  # top-1 minus top-2 logit of the reference there
    candidate_margin: float | None
    forced_hits: int  # teacher-forced: candidate argmax == reference token
    forced_total: int

    @property
    def identical(self) -> bool:
        return self.first_diff is None

    @property
    def near_tie(self) -> bool:
        return self.reference_margin is not None and self.reference_margin < NEAR_TIE


@dataclass(frozen=True)
class TokenCheck(Result):
    """Greedy tokens of a candidate against a reference over many prompts (the module
    docstring). ``ok``: at least ``min_identical`` of the prompts identical, a difference
    at a reference near-tie not counted against it."""

    COMPUTED = ("identical", "near_ties", "share", "teacher_forced", "perplexity_change", "ok")

    reference: str
    candidate: str
    max_new_tokens: int
    eos_token_id: int | None
    prompts: tuple[PromptCheck, ...]
    reference_perplexity: float
    candidate_perplexity: float
    min_identical: float = 1.0
    not_applied: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    batch_size: int = 1  # above 1: left-padded batches on both sides

    @property
    def identical(self) -> int:
        return sum(p.identical for p in self.prompts)

    @property
    def near_ties(self) -> int:
        return sum(1 for p in self.prompts if not p.identical and p.near_tie)

    @property
    def teacher_forced(self) -> float:
        total = sum(p.forced_total for p in self.prompts)
        return sum(p.forced_hits for p in self.prompts) / total if total else 1.0

    @property
    def perplexity_change(self) -> float:
        """The candidate's perplexity over the reference's, minus 1 (0.01: 1% higher)."""
        return self.candidate_perplexity / self.reference_perplexity - 1.0

    @property
    def share(self) -> float:
        """Prompts identical or differing only at a reference near-tie, as a share."""
        return (self.identical + self.near_ties) / len(self.prompts) if self.prompts else 1.0

    @property
    def ok(self) -> bool:
        return self.share >= self.min_identical

    def _batches(self) -> str:
        return f", left-padded batches of {self.batch_size}" if self.batch_size > 1 else ""

    def summary(self) -> str:
        n = len(self.prompts)
        eos = (
            "never" if self.eos_token_id is None else f"at {self.eos_token_id} (generation config)"
        )
        need = math.ceil(self.min_identical * n - 1e-9)
        lines = [
            f"tokens    {self.candidate} vs {self.reference}: identical on {self.identical}/{n} "
            f"prompts (greedy, up to {self.max_new_tokens} new tokens, stop {eos}"
            f"{self._batches()}); "
            f"{'PASS' if self.ok else 'FAIL'} (at least {need}/{n} needed, a reference "
            f"near-tie under {NEAR_TIE} logits not counted: {self.near_ties})",
            f"  teacher-forced next-token agreement {100 * self.teacher_forced:.1f}%; "
            f"perplexity {self.candidate_perplexity:.4f} vs {self.reference_perplexity:.4f} "
            f"({round(100 * self.perplexity_change, 2) + 0.0:+.2f}%) on the reference's "
            "generated tokens",  # + 0.0: never -0.00%
        ]
        for i, p in enumerate(self.prompts):
            if p.identical:
                continue
            tie = " (near-tie)" if p.near_tie else ""
            ref_m = "-" if p.reference_margin is None else f"{p.reference_margin:.3f}"
            cand_m = "-" if p.candidate_margin is None else f"{p.candidate_margin:.3f}"
            k = p.first_diff or 0
            lines.append(
                f"  prompt {i} (length {len(p.prompt)}): first differs at step {k}: "
                f"{_at(p.reference, k)} vs {_at(p.candidate, k)}; top-2 margin reference "
                f"{ref_m}{tie}, candidate {cand_m}"
            )
        if self.not_applied:
            lines.append(
                "  note    the generation config also sets "
                + ", ".join(self.not_applied)
                + ": not applied on either side (plain greedy decoding with EOS)"
            )
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def _at(tokens: Sequence[int], k: int) -> str:
    return str(tokens[k]) if k < len(tokens) else "(stopped)"


def _margin(logits: Sequence[np.ndarray], k: int) -> float | None:
    if k >= len(logits):
        return None
    top = np.partition(np.asarray(logits[k], np.float64), -2)[-2:]
    return float(top[1] - top[0])


def _nll(logits: np.ndarray, ids: Sequence[int], start: int) -> tuple[float, int]:
    """Summed negative log-likelihood of ``ids[start:]`` under ``logits`` (row t predicts
    token t + 1), and how many tokens."""
    x = np.asarray(logits[start - 1 : len(ids) - 1], np.float64)
    if not len(x):
        return 0.0, 0
    x = x - x.max(axis=1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    target = np.asarray(ids[start:])
    return float(-logp[np.arange(len(target)), target].sum()), len(target)


def not_applied(generation: dict[str, Any]) -> tuple[str, ...]:
    """The generation config's settings the check does not apply (``APPLIED``)."""
    return tuple(sorted(f"{k}={generation[k]}" for k in generation if k not in APPLIED))


def check_tokens(
    reference: TokenSource,
    candidate: TokenSource,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 24,
    eos_token_id: int | None = None,
    min_identical: float = 1.0,
    generation: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    batch_size: int = 1,
) -> TokenCheck:
    """Greedy tokens of ``candidate`` against ``reference`` on every prompt (the module
    docstring). Both stop at ``eos_token_id``. ``batch_size`` above 1 decodes the prompts
    in left-padded batches of that size on both sides (prompts of different lengths)."""
    if not prompts:
        raise GenerationError("the token check needs at least one prompt")
    if not 0.0 <= min_identical <= 1.0:
        raise GenerationError(f"min_identical is a share of prompts, 0..1; got {min_identical}")
    if batch_size < 1:
        raise GenerationError(f"batch_size must be >= 1, got {batch_size}")
    rows = [[int(t) for t in p] for p in prompts]

    def runs(side: TokenSource, chunk: list[list[int]]) -> list[Any]:
        if batch_size == 1:
            return [side.greedy(chunk[0], max_new_tokens, eos_token_id)]
        return side.greedy_batch(chunk, max_new_tokens, eos_token_id)

    def pairs() -> Any:  # one batch at a time, so only one batch's logits are held
        for k in range(0, len(rows), batch_size):
            chunk = rows[k : k + batch_size]
            yield from zip(chunk, runs(reference, chunk), runs(candidate, chunk), strict=True)

    checks = []
    nll = {"reference": 0.0, "candidate": 0.0}
    count = 0
    for prompt, (ref_tokens, ref_logits), (cand_tokens, cand_logits) in pairs():
        shorter = min(len(ref_tokens), len(cand_tokens))
        first = next(
            (k for k in range(shorter) if ref_tokens[k] != cand_tokens[k]),
            None if len(ref_tokens) == len(cand_tokens) else shorter,
        )
        sequence = prompt + ref_tokens
        forced = candidate.score(sequence)
        ref_scores = reference.score(sequence)
        start = len(prompt)
        hits = int((forced[start - 1 : len(sequence) - 1].argmax(axis=1) == ref_tokens).sum())
        for side, scores in (("reference", ref_scores), ("candidate", forced)):
            nll[side] += _nll(scores, sequence, start)[0]
        count += len(ref_tokens)
        checks.append(
            PromptCheck(
                tuple(prompt),
                tuple(ref_tokens),
                tuple(cand_tokens),
                first,
                None if first is None else _margin(ref_logits, first),
                None if first is None else _margin(cand_logits, first),
                hits,
                len(ref_tokens),
            )
        )
    ppl = {k: math.exp(v / max(count, 1)) for k, v in nll.items()}
    return TokenCheck(
        reference.name, candidate.name, max_new_tokens, eos_token_id, tuple(checks),
        ppl["reference"], ppl["candidate"], min_identical,
        not_applied(generation or {}), tuple(notes), batch_size,
    )  # fmt: skip


def sampled_prompts(
    source: TokenSource, vocab: int, n: int, *, seed: int = 0, min_length: int = 4,
    max_length: int = 16, eos_token_id: int | None = None,
) -> list[list[int]]:  # fmt: skip
    """``n`` prompts the model itself writes: a random first token, then tokens drawn from
    ``source`` (temperature 1) up to a random length of ``min_length``..``max_length``.
    Where no prompts are given, these are the kind of text the model was trained on (what
    random ids are not: a trained model is unsure on them, and any rounding flips its
    near-tied choices); the data-free calibration of LLM-QAT (Liu et al., 2023) draws them
    the same way."""
    rng = np.random.default_rng(seed)
    avoid = () if eos_token_id is None else (eos_token_id,)
    firsts = random_prompts(vocab, n, seed=seed, min_length=1, max_length=1, avoid=avoid)
    return [
        source.sample(f[0], int(rng.integers(min_length, max_length + 1)), seed + i, eos_token_id)
        for i, f in enumerate(firsts)
    ]


def random_prompts(
    vocab: int, n: int, *, seed: int = 0, min_length: int = 4, max_length: int = 16,
    avoid: Sequence[int] = (),
) -> list[list[int]]:  # fmt: skip
    """``n`` prompts of token ids below ``vocab`` (none of ``avoid``, such as EOS), of
    lengths ``min_length``..``max_length``: valid inputs where no prompts are given."""
    rng = np.random.default_rng(seed)
    allowed = np.setdiff1d(np.arange(vocab), np.asarray(avoid, np.int64))
    return [
        [int(t) for t in rng.choice(allowed, int(rng.integers(min_length, max_length + 1)))]
        for _ in range(n)
    ]


def load_prompts(path: str | os.PathLike[str]) -> list[list[int]]:
    """Prompts from a ``.npy`` of int token ids, one row each, left-padded with negative
    values for rows shorter than the longest (``teach.lmdata.save_prompts`` writes one),
    or from an ``.npz`` holding ``input_ids`` and ``attention_mask`` (0 = padding)."""
    p = str(path)
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise GenerationError(f"{p}: not a prompts file that numpy loads ({e})") from e
    if isinstance(data, np.lib.npyio.NpzFile):
        if "input_ids" not in data:
            raise GenerationError(f"{p} holds {sorted(data.files)}; prompts need input_ids")
        ids = np.asarray(data["input_ids"])
        mask = np.asarray(data["attention_mask"]) if "attention_mask" in data else ids >= 0
        rows = [
            [int(t) for t, m in zip(r, mr, strict=True) if m]
            for r, mr in zip(ids, mask, strict=True)
        ]
    else:
        ids = np.asarray(data)
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise GenerationError(
                f"{p}: prompts are a 2-D integer array (rows of token ids, -1 for padding), "
                f"got {ids.dtype}{list(ids.shape)}"
            )
        rows = [[int(t) for t in r if t >= 0] for r in ids]
    rows = [r for r in rows if r]
    if not rows:
        raise GenerationError(f"{p} holds no prompt with a token")
    return rows


def stop_token(generation: dict[str, Any]) -> int | None:
    """The EOS id a generation config stops at (the first, where it lists several)."""
    eos = generation.get("eos_token_id")
    if isinstance(eos, list):
        return int(eos[0]) if eos else None
    return eos


def is_cached_decoder(model: Any) -> bool:
    """A graph (``onnx.ModelProto``) with ``past_key_values.*`` inputs: a decoder exported
    with its cache, judged by its tokens."""
    import re

    # a causal LM's ``past_key_values.<i>.key``; an encoder-decoder's decoder takes
    # ``past_key_values.<i>.decoder.key`` and is judged by its folder's tokens instead
    cache = re.compile(r"^past_key_values\.\d+\.(key|value)$")
    return any(cache.match(i.name) for i in model.graph.input)


def check_against_parent(
    parent: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    name: str = "",
    batch_size: int = 1,
) -> TokenCheck:
    """The token check a quantized decoder gets when it is written: greedy tokens on
    ``PARENT_PROMPTS`` prompts drawn from ``parent`` (its contract's EOS), at least
    ``PARENT_MIN_IDENTICAL`` identical. With random weights (the contract says so) the
    tokens are reported, not judged: near-tied logits flip under any rounding.
    ``batch_size`` above 1: both sides in left-padded batches."""
    import onnx

    from onnx_deploy.core.contract import read_contract

    contract = read_contract(onnx.load(str(parent), load_external_data=False))
    eos = stop_token(contract.generation) if contract else None
    notes = [
        f"{PARENT_PROMPTS} prompts drawn from the float model (4-16 tokens); with your own: "
        "onnx-deploy generate FILE --reference hf:DIR --prompts FILE"
    ]
    share = PARENT_MIN_IDENTICAL
    if contract is not None and contract.random_weights:
        share = 0.0
        notes.append(
            "random weights: their top logits are near-tied, so any rounding changes tokens; "
            "reported, not judged (train or load real weights for a token decision)"
        )
    ref, cand = OnnxTokens(parent), OnnxTokens(candidate)
    try:
        prompts = sampled_prompts(ref, ref.decoder.vocab, PARENT_PROMPTS, eos_token_id=eos)
        check = check_tokens(
            ref, cand, prompts, max_new_tokens=PARENT_NEW_TOKENS, eos_token_id=eos,
            min_identical=share, notes=notes, batch_size=batch_size,
        )  # fmt: skip
    finally:
        ref.close()
        cand.close()
    from dataclasses import replace

    return replace(check, candidate=name or str(candidate))
