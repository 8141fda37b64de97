"""A small trained encoder-decoder for teaching: a T5 that reverses a sequence of tokens.

Token checks need a model whose greedy choices mean something: with random weights the
best two logits are often a near-tie and any rounding flips them. Reversal is a task an
encoder-decoder learns in seconds on a CPU, and its answer can be read by eye: ``5 9 3``
-> ``3 9 5 <eos>``. ``train_reverser`` builds a two-layer T5 from its config, trains it
with a fixed seed and saves it with ``save_pretrained`` (``generation_config.json`` with
its EOS, decoder start and pad tokens), and returns the share of held-out sequences it
reverses exactly with transformers' greedy ``generate``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PAD, EOS = 0, 1  # the decoder starts from PAD, as T5 does
FIRST = 2  # symbols are FIRST .. VOCAB - 1
VOCAB = 24
MIN_LEN, MAX_LEN = 3, 8


def make_sources(count: int, seed: int = 0) -> list[list[int]]:
    """``count`` sequences of ``MIN_LEN`` to ``MAX_LEN`` symbols."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, count)
    return [rng.integers(FIRST, VOCAB, n).tolist() for n in lengths]


def target(source: list[int]) -> list[int]:
    """The answer: the source reversed, then EOS."""
    return [*source[::-1], EOS]


def batch_arrays(sources: list[list[int]]) -> dict[str, np.ndarray]:
    """``input_ids`` padded at the end with ``PAD`` and its ``attention_mask``."""
    width = max(len(s) for s in sources)
    ids = np.full((len(sources), width), PAD, np.int64)
    for i, s in enumerate(sources):
        ids[i, : len(s)] = s
    return {"input_ids": ids, "attention_mask": (ids != PAD).astype(np.int64)}


def train_reverser(
    folder: str | os.PathLike[str], steps: int = 900, seed: int = 0, batch: int = 64
) -> float:
    """Train the reversing T5, save it into ``folder`` and return its held-out exact-match
    rate (greedy ``generate`` over 200 sequences it never saw)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
        dropout_rate=0.0, decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=EOS,
        architectures=["T5ForConditionalGeneration"],
    )  # fmt: skip
    model = transformers.T5ForConditionalGeneration(config)
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=EOS
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        sources = make_sources(batch, seed=1000 + step)
        feeds = {k: torch.from_numpy(v) for k, v in batch_arrays(sources).items()}
        labels = batch_arrays([target(s) for s in sources])["input_ids"]
        labels = torch.from_numpy(np.where(labels == PAD, -100, labels))
        loss = model(**feeds, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    held_out = make_sources(200, seed=seed + 7)
    feeds = {k: torch.from_numpy(v) for k, v in batch_arrays(held_out).items()}
    with torch.no_grad():
        out = model.generate(**feeds, max_new_tokens=MAX_LEN + 1, do_sample=False, num_beams=1)
    right = 0
    for s, row in zip(held_out, out[:, 1:].tolist(), strict=True):
        want = target(s)
        right += row[: len(want)] == want
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    return right / len(held_out)
