"""A labelled text task that needs no download, and a small transformer trained on it.

Accuracy claims need trained weights on labelled data. No text data set ships with the
installed packages, so the task is synthetic but learnable and has real labels: token 1
opens every sequence (like ``[CLS]``), tokens 10-39 are "positive" words, 40-69
"negative" words and 70 and up neutral; the label is 1 when a sequence holds more
positive than negative words (never a tie). Lengths vary from 6 to ``max_len`` tokens and
sequences are padded at the end with 0, with the padding mask beside them, so a model
must attend over a padded batch as real classifiers do.

``train_text_classifier`` trains a two-layer DistilBERT from its config for a few
seconds on 2 cores and saves it with ``save_pretrained``: an ``hf:`` folder with trained
weights for the export, quantization and report-card checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD, CLS = 0, 1
POSITIVE = range(10, 40)
NEGATIVE = range(40, 70)
VOCAB = 200
MAX_LEN = 32


@dataclass(frozen=True)
class TextSplit:
    """Padded token ids, padding masks and labels (int64), one row per sample."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}

    def save(self, path: str | os.PathLike[str]) -> str:
        """The inputs as an ``.npz`` by input name (what ``--data``/``--inputs`` take)."""
        np.savez(path, **self.feeds())
        return str(path)


def make_text_task(n: int, seed: int = 0, max_len: int = MAX_LEN) -> TextSplit:
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, max_len), np.int64)
    mask = np.zeros((n, max_len), np.int64)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        length = int(rng.integers(6, max_len + 1))
        words = length - 1
        pos = int(rng.integers(0, words // 2 + 1))
        neg = int(rng.integers(0, words // 2 + 1))
        if pos == neg:  # never a tie: one more word on a random side, or one fewer
            side = 1 if rng.random() < 0.5 else -1
            if pos + neg < words:
                pos, neg = (pos + 1, neg) if side > 0 else (pos, neg + 1)
            else:
                pos, neg = (pos - 1, neg) if side > 0 else (pos, neg - 1)
        neutral = words - pos - neg
        body = np.concatenate(
            [
                rng.choice(list(POSITIVE), pos),
                rng.choice(list(NEGATIVE), neg),
                rng.integers(70, VOCAB, neutral),
            ]
        ).astype(np.int64)
        rng.shuffle(body)
        ids[i, 0] = CLS
        ids[i, 1:length] = body
        mask[i, :length] = 1
        labels[i] = int(pos > neg)
    return TextSplit(ids, mask, labels)


def train_text_classifier(
    folder: str | os.PathLike[str],
    *,
    steps: int = 400,
    seed: int = 0,
    train_size: int = 4096,
) -> float:
    """Train a two-layer DistilBERT on ``make_text_task`` and ``save_pretrained`` it into
    ``folder``; returns its accuracy on a held-out split (seed + 1, 512 samples)."""
    from onnx_deploy.core.extras import require

    torch = require("torch", "training the text classifier")
    transformers = require("transformers", "training the text classifier")
    torch.manual_seed(seed)
    config = transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
        max_position_embeddings=64, num_labels=2, dropout=0.0, attention_dropout=0.0,
    )  # fmt: skip
    model = transformers.DistilBertForSequenceClassification(config)
    data = make_text_task(train_size, seed)
    ids, mask = torch.from_numpy(data.input_ids), torch.from_numpy(data.attention_mask)
    labels = torch.from_numpy(data.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, train_size, (64,), generator=gen)
        loss = model(input_ids=ids[idx], attention_mask=mask[idx], labels=labels[idx]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = make_text_task(512, seed + 1)
    with torch.no_grad():
        logits = model(
            input_ids=torch.from_numpy(test.input_ids),
            attention_mask=torch.from_numpy(test.attention_mask),
        ).logits
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    return float((logits.argmax(1).numpy() == test.labels).mean())
