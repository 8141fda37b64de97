"""A language a small decoder can learn in seconds, and a Qwen2-layout causal LM trained on it.

Token checks need a model whose greedy tokens mean something: with random weights the top
two logits are often a near-tie, and any rounding flips them. No text corpus ships with the
installed packages, so the language is synthetic but learnable and needs attention: after
0 to 3 noise words, a sequence has one of ``MODES`` mode tokens (``MODE_BASE + k``), then
words follow a permutation that depends on the mode (``next = perm[k][word]``): the model
must look back to the mode token at every step. The noise words make any token a valid
start, so prompts drawn from the model itself (``infer.tokens.sampled_prompts``, a random
first token) are text of this language. A word in ``STOP_WORDS`` is followed by ``EOS``, which ends
the sequence, as ``generation_config.eos_token_id`` says. Some chains reach it within a few
steps, others not in 24: the EOS handling of a token check is exercised.

``train_causal_lm`` trains a two-layer Qwen2 (grouped-query attention: 4 query heads, 2
key/value heads; RMSNorm; rotary positions) from its config and ``save_pretrained``s it
with its generation config; ``make_prompts`` draws prompts of the language (a mode, then
1 to 8 words of its chain) and held-out sequences for perplexity.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

EOS = 0
PAD = 0
MODES = 4
MODE_BASE = 1
FIRST_WORD = MODE_BASE + MODES  # words: FIRST_WORD .. VOCAB-1
VOCAB = 96
MAX_POSITIONS = 128
STOP_EVERY = 23  # words w with (w - FIRST_WORD) % STOP_EVERY == STOP_EVERY - 1 end a sequence
TRAIN_LEN = 40


def _permutations(seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    words = np.arange(FIRST_WORD, VOCAB)
    return np.stack([rng.permutation(words) for _ in range(MODES)])  # [mode, word index]


PERMS = _permutations()


def is_stop_word(word: int) -> bool:
    return (word - FIRST_WORD) % STOP_EVERY == STOP_EVERY - 1


def continue_chain(mode: int, word: int, steps: int) -> list[int]:
    """The language's own continuation of a sequence in ``mode`` whose last token is
    ``word``: ``steps`` tokens at most, ending at ``EOS`` after a stop word."""
    out: list[int] = []
    for _ in range(steps):
        if is_stop_word(word):
            out.append(EOS)
            break
        word = int(PERMS[mode, word - FIRST_WORD])
        out.append(word)
    return out


MAX_NOISE = 3


def make_sequences(
    n: int, length: int = TRAIN_LEN, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sequences of the language, each ``length`` tokens: ids, padding masks (padded
    at the end with ``PAD`` after ``EOS``), and where the next token is determined (the
    chain after its first word, and its EOS: the positions accuracy is measured on)."""
    rng = np.random.default_rng(seed)
    ids = np.full((n, length), PAD, np.int64)
    mask = np.zeros((n, length), np.int64)
    known = np.zeros((n, length), bool)
    for i in range(n):
        noise = [int(w) for w in rng.integers(FIRST_WORD, VOCAB, int(rng.integers(MAX_NOISE + 1)))]
        mode = int(rng.integers(MODES))
        word = int(rng.integers(FIRST_WORD, VOCAB))
        head = [*noise, MODE_BASE + mode, word]
        seq = [*head, *continue_chain(mode, word, length - len(head))]
        ids[i, : len(seq)] = seq
        mask[i, : len(seq)] = 1
        known[i, len(head) : len(seq)] = True
    return ids, mask, known


def make_prompts(n: int, seed: int = 0, max_words: int = 8) -> list[list[int]]:
    """``n`` prompts of different lengths: a mode token, then 1 to ``max_words`` words of
    its chain (never past a stop word)."""
    rng = np.random.default_rng(seed)
    prompts = []
    while len(prompts) < n:
        mode = int(rng.integers(MODES))
        word = int(rng.integers(FIRST_WORD, VOCAB))
        chain = [word, *continue_chain(mode, word, max_words - 1)]
        words = chain[: int(rng.integers(1, max_words + 1))]
        if EOS in words:
            continue
        prompts.append([MODE_BASE + mode, *words])
    return prompts


def save_prompts(prompts: list[list[int]], path: str | os.PathLike[str]) -> str:
    """Prompts of different lengths as one ``.npy`` of int64, padded on the left with -1
    (what ``onnx-deploy generate --prompts`` reads)."""
    width = max(len(p) for p in prompts)
    arr = np.full((len(prompts), width), -1, np.int64)
    for i, p in enumerate(prompts):
        arr[i, width - len(p) :] = p
    np.save(path, arr)
    return str(path)


def train_causal_lm(
    folder: str | os.PathLike[str], *, steps: int = 300, seed: int = 0, hidden: int = 64
) -> float:
    """Train the two-layer Qwen2 on ``make_sequences`` and ``save_pretrained`` it (with
    ``eos_token_id`` = ``EOS``) into ``folder``; returns its next-token accuracy on
    held-out sequences (seed + 1, where the language determines the next token)."""
    from onnx_deploy.core.extras import require

    torch = require("torch", "training the causal LM")
    transformers = require("transformers", "training the causal LM")
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS, tie_word_embeddings=False,
        bos_token_id=MODE_BASE, eos_token_id=EOS, pad_token_id=PAD,
    )  # fmt: skip
    model = transformers.Qwen2ForCausalLM(config)
    ids, mask, _ = (torch.from_numpy(a) for a in make_sequences(2048, seed=seed))
    labels = ids.masked_fill(mask == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(ids), (64,), generator=gen)
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test_ids, test_mask, known = (torch.from_numpy(a) for a in make_sequences(256, seed=seed + 1))
    with torch.no_grad():
        pred = model(input_ids=test_ids, attention_mask=test_mask).logits.argmax(-1)
    acc = (pred[:, :-1] == test_ids[:, 1:])[known[:, 1:]].float().mean()
    model.generation_config.eos_token_id = EOS
    model.generation_config.pad_token_id = PAD
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    return float(acc)


def save_word_tokenizer(folder: str | os.PathLike[str], vocab: int = VOCAB) -> None:
    """A word-level tokenizer for the language (token ``i`` is the word ``t{i}``; EOS and
    padding ``t0``, BOS ``t1``) saved beside the model: onnxruntime-genai's model builder
    needs one in the folder, and the language has no text of its own."""
    from onnx_deploy.core.extras import require

    require("tokenizers", "saving the word-level tokenizer")
    from tokenizers import Tokenizer
    from tokenizers import models
    from tokenizers import pre_tokenizers

    transformers = require("transformers", "saving the word-level tokenizer")
    words = {f"t{i}": i for i in range(vocab)}
    tokenizer = Tokenizer(models.WordLevel(words, unk_token=f"t{MODE_BASE}"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token=f"t{MODE_BASE}", bos_token=f"t{MODE_BASE}",
        eos_token=f"t{EOS}", pad_token=f"t{PAD}",
    )  # fmt: skip
    fast.save_pretrained(folder)
