"""Greedy generation with an encoder-decoder exported in optimum's layout (numpy and ONNX
Runtime only, no torch): a folder with ``encoder_model.onnx``, ``decoder_model.onnx``
(the first step: it computes the cross-attention cache from the encoder's output) and
``decoder_with_past_model.onnx`` (every later step: the new token and both caches), and
the ``config.json`` the model was saved with (its ``decoder_start_token_id``,
``eos_token_id``, ``pad_token_id``).

The loop: the encoder runs once; the first decoder step takes ``decoder_start_token_id``
and the encoder's states and returns ``present.<i>.decoder.*`` and ``present.<i>.encoder.*``;
each later step feeds the last token, the self-attention cache it returned and the
cross-attention cache of the first step (which never changes). A row that has produced
its EOS is padded with ``pad_token_id`` while the others go on, as transformers does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import ModelSpecError

ENCODER = "encoder_model.onnx"
DECODER = "decoder_model.onnx"
DECODER_WITH_PAST = "decoder_with_past_model.onnx"
FILES = (ENCODER, DECODER, DECODER_WITH_PAST)


def is_seq2seq_folder(path: str | os.PathLike[str]) -> bool:
    return Path(path).is_dir() and all((Path(path) / f).is_file() for f in FILES)


@dataclass(frozen=True)
class TokenSettings:
    """What the loop reads from the folder's ``config.json`` (and ``generation_config.json``,
    which wins where it exists, as in transformers)."""

    decoder_start_token_id: int
    eos_token_id: int | None
    pad_token_id: int
    vocab_size: int | None = None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> TokenSettings:
        merged: dict[str, Any] = {}
        for name in ("config.json", "generation_config.json"):
            path = Path(folder) / name
            if path.is_file():
                merged |= {k: v for k, v in json.loads(path.read_text()).items() if v is not None}
        start = merged.get("decoder_start_token_id")
        if not isinstance(start, int):
            raise ModelSpecError(
                f"{folder}: no decoder_start_token_id in config.json; export the folder with "
                "onnx-deploy export hf:DIR --with-cache, which copies the model's config"
            )
        eos = merged.get("eos_token_id")
        eos = eos[0] if isinstance(eos, list) and eos else eos
        pad = merged.get("pad_token_id")
        vocab = merged.get("vocab_size")
        return cls(
            start, eos if isinstance(eos, int) else None, pad if isinstance(pad, int) else 0,
            vocab if isinstance(vocab, int) else None,
        )  # fmt: skip


class Seq2SeqGenerator:
    """The three sessions of a folder, and ``greedy`` over them."""

    def __init__(self, folder: str | os.PathLike[str], threads: int | None = None) -> None:
        from onnx_deploy.infer.sessions import create_session

        if not is_seq2seq_folder(folder):
            raise ModelSpecError(
                f"{folder}: not an encoder-decoder folder; it needs {', '.join(FILES)} "
                "(onnx-deploy export hf:DIR --with-cache -o FOLDER writes them)"
            )
        self.folder = Path(folder)
        self.encoder, self.decoder, self.decoder_with_past = (
            create_session(self.folder / f, "cpu", threads=threads) for f in FILES
        )
        self.settings = TokenSettings.from_folder(folder)
        self.encoder_inputs = [i.name for i in self.encoder.get_inputs()]
        self._past_inputs = {i.name for i in self.decoder_with_past.get_inputs()}

    def greedy(
        self,
        encoder_feeds: Mapping[str, np.ndarray],
        max_new_tokens: int,
        eos_token_id: int | None = -1,
        times: dict[str, float] | None = None,
    ) -> list[list[int]]:
        """Greedy tokens for each row of ``encoder_feeds`` (``input_ids`` and
        ``attention_mask``, or ``input_features``), after the start token, up to and
        including the EOS (``-1``: the folder's; None: no stop). ``times``, when given,
        receives ``encoder`` and ``decoder`` seconds and the decoder's ``steps``."""
        return self._decode(encoder_feeds, max_new_tokens, eos_token_id, None, times)

    def sample(
        self,
        encoder_feeds: Mapping[str, np.ndarray],
        max_new_tokens: int,
        *,
        seed: int = 0,
        temperature: float = 1.0,
        top_k: int = 0,
        eos_token_id: int | None = -1,
    ) -> list[list[int]]:
        """Sampled tokens: softmax of the logits over ``temperature``, from the ``top_k``
        best (0: all), drawn with numpy's generator from ``seed``: the same seed, the same
        tokens."""
        if temperature <= 0:
            raise ValueError("temperature must be above 0 (greedy: use greedy())")
        rng = np.random.default_rng(seed)

        def pick(logits: np.ndarray) -> np.ndarray:
            scaled = logits.astype(np.float64) / temperature
            if top_k:
                cut = np.sort(scaled, axis=-1)[:, -top_k][:, None]
                scaled = np.where(scaled < cut, -np.inf, scaled)
            probs = np.exp(scaled - scaled.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            return np.array([rng.choice(len(p), p=p) for p in probs], np.int64)

        return self._decode(encoder_feeds, max_new_tokens, eos_token_id, pick, None)

    def _decode(
        self,
        encoder_feeds: Mapping[str, np.ndarray],
        max_new_tokens: int,
        eos_token_id: int | None,
        pick: Any,
        times: dict[str, float] | None,
    ) -> list[list[int]]:
        import time

        eos = self.settings.eos_token_id if eos_token_id == -1 else eos_token_id
        feeds = {n: np.asarray(encoder_feeds[n]) for n in self.encoder_inputs}
        start = time.perf_counter()
        hidden = self.encoder.run(["last_hidden_state"], feeds)[0]
        encoded = time.perf_counter()
        batch = hidden.shape[0]
        mask = feeds.get("attention_mask")
        first = {"input_ids": np.full((batch, 1), self.settings.decoder_start_token_id, np.int64)}
        first |= {"encoder_hidden_states": hidden}
        if mask is not None:
            first["encoder_attention_mask"] = mask
        names = [o.name for o in self.decoder.get_outputs()]
        out = dict(zip(names, self.decoder.run(None, self._only(self.decoder, first)), strict=True))
        cross = {_past(n): v for n, v in out.items() if ".encoder." in n}
        own = {_past(n): v for n, v in out.items() if ".decoder." in n}
        logits = out["logits"]
        rows: list[list[int]] = [[] for _ in range(batch)]
        done = np.zeros(batch, bool)
        step_names = [o.name for o in self.decoder_with_past.get_outputs()]
        steps = 1
        for step in range(max_new_tokens):
            last = logits[:, -1]
            token = (last.argmax(-1) if pick is None else pick(last)).astype(np.int64)
            token = np.where(done, self.settings.pad_token_id, token)
            for i in np.flatnonzero(~done):
                rows[i].append(int(token[i]))
            if eos is not None:
                done |= token == eos
            if done.all() or step == max_new_tokens - 1:
                break
            feeds = {"input_ids": token[:, None], **own, **cross}
            if mask is not None:
                feeds["encoder_attention_mask"] = mask
            ran = self.decoder_with_past.run(None, self._only(None, feeds))
            got = dict(zip(step_names, ran, strict=True))
            logits = got["logits"]
            own = {_past(n): v for n, v in got.items() if ".decoder." in n}
            steps += 1
        if times is not None:
            times |= {"encoder": encoded - start, "decoder": time.perf_counter() - encoded}
            times["steps"] = steps
        return rows

    def example(self, seed: int, seq: int) -> dict[str, np.ndarray]:
        """One valid encoder input: ``seq`` token ids below the config's vocabulary with a
        full mask, or standard-normal features of the shape the encoder takes."""
        rng = np.random.default_rng(seed)
        first = self.encoder.get_inputs()[0]
        if first.name != "input_ids":
            shape = [d if isinstance(d, int) else 1 for d in first.shape]
            return {first.name: rng.standard_normal(shape).astype(np.float32)}
        vocab = self.settings.vocab_size or 10
        ids = rng.integers(0, vocab, (1, seq)).astype(np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    def _only(self, session: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = (
            {i.name for i in session.get_inputs()} if session is not None else self._past_inputs
        )
        return {k: v for k, v in feeds.items() if k in wanted}


def _past(present_name: str) -> str:
    return present_name.replace("present.", "past_key_values.", 1)
