"""onnxruntime-genai's folder as a token source: the file its model builder writes, run by
its own runtime, judged by the same token check as this project's decoder files.

``python -m onnxruntime_genai.models.builder -i DIR -o OUT -p int4 -e cpu`` writes
``model.onnx`` (GroupQueryAttention; ``MatMulNBits`` with ``-p int4``) and
``genai_config.json`` (the generation settings, the context length, the session's options).
``GenaiTokens`` runs that folder with ``onnxruntime_genai``: its ``Generator`` holds the
cache; the greedy choice, the EOS and the sampling are this project's (``infer.generate``'s
rule, the same on every side of a check), so a difference in tokens is the model's.

onnxruntime-genai 0.18.0 requires the CPU ``onnxruntime`` wheel, which must not sit beside
``onnxruntime-gpu``: install it with ``pip install --no-deps`` and it runs on
onnxruntime-gpu's module (``make install`` does; notebooks/MEASUREMENTS.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import GenerationError
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.feeds import Feeds
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.infer.runners.base import Runner

GENAI_CONFIG = "genai_config.json"
GENAI_VERSION = "0.18.0"
INSTALL = (
    f"pip install --no-deps onnxruntime-genai=={GENAI_VERSION} (--no-deps: it requires the "
    "CPU onnxruntime wheel, which must not sit beside onnxruntime-gpu; it runs on whichever "
    "ONNX Runtime wheel is installed)"
)


def is_genai_folder(path: str | os.PathLike[str]) -> bool:
    """A folder onnxruntime-genai's model builder wrote (it holds ``genai_config.json``)."""
    return Path(path).is_dir() and (Path(path) / GENAI_CONFIG).is_file()


def genai_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's ``genai_config.json``; a clear error where it is missing or unreadable."""
    path = Path(folder) / GENAI_CONFIG
    try:
        config = json.loads(path.read_text())
        config["model"]["vocab_size"]
    except FileNotFoundError:
        raise GenerationError(
            f"{folder} has no {GENAI_CONFIG}: not a folder onnxruntime-genai's model builder "
            "wrote (python -m onnxruntime_genai.models.builder -i HF_DIR -o OUT -p int4 -e cpu)"
        ) from None
    except (ValueError, KeyError, TypeError) as e:
        raise GenerationError(f"{path} is not a valid genai config: {e}") from None
    return config


def genai_graph(folder: str | os.PathLike[str]) -> Path:
    """The decoder's ONNX file in the folder, as its ``genai_config.json`` names it."""
    decoder = genai_config(folder)["model"].get("decoder", {})
    return Path(folder) / decoder.get("filename", "model.onnx")


def genai_module() -> Any:
    """``onnxruntime_genai``, or an error that says how to install it."""
    try:
        import onnxruntime_genai
    except ImportError as e:
        raise MissingExtraError(f"onnxruntime-genai is not installed ({e}): {INSTALL}") from None
    return onnxruntime_genai


class GenaiTokens:
    """A folder of onnxruntime-genai's model builder, run by onnxruntime-genai on the CPU
    (the ``TokenSource`` of ``infer.tokens``). ``threads``: the session's intra-op
    threads (default: the folder's config, else ONNX Runtime's)."""

    def __init__(self, folder: str | os.PathLike[str], threads: int | None = None) -> None:
        config = genai_config(folder)
        og = genai_module()
        self.name = str(folder)
        self.vocab = int(config["model"]["vocab_size"])
        self.context_length = config["model"].get("context_length")
        settings = og.Config(str(folder))
        settings.clear_providers()  # the CPU, as every other side of a check
        if threads is not None:
            options = {"intra_op_num_threads": int(threads), "inter_op_num_threads": 1}
            settings.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        try:
            self.model = og.Model(settings)
        except Exception as e:
            raise GenerationError(f"onnxruntime-genai could not load {folder}: {e}") from None
        self._og = og

    def generator(self, length: int, batch_size: int = 1) -> Any:
        """A fresh ``Generator`` for sequences of up to ``length`` tokens (the cache's size)."""
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(
            max_length=int(length), batch_size=int(batch_size), do_sample=False
        )
        return self._og.Generator(self.model, params)

    def _check(self, ids: Sequence[int], new: int) -> list[int]:
        from onnx_deploy.infer.generate import check_token_ids

        row = [int(t) for t in ids]
        if not row:
            raise GenerationError("the prompt needs at least one token id")
        check_token_ids([row], self.vocab)
        if self.context_length is not None and len(row) + new > int(self.context_length):
            raise GenerationError(
                f"{len(row)} prompt tokens plus {new} new ones pass {self.name}'s context "
                f"length of {self.context_length} (genai_config.json)"
            )
        return row

    def run(
        self,
        prompt: Sequence[int],
        max_new_tokens: int,
        eos_token_id: int | None,
        *,
        rng: np.random.Generator | None = None,
        keep_logits: bool = True,
    ) -> tuple[list[int], list[np.ndarray], float, float]:
        """Tokens after ``prompt`` (greedy, or drawn with ``rng``), each step's logits, and
        the prefill and decode seconds (onnxruntime-genai's calls only)."""
        from onnx_deploy.infer.generate import pick_token

        if max_new_tokens < 1:
            raise GenerationError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        row = self._check(prompt, max_new_tokens)
        gen = self.generator(len(row) + max_new_tokens)
        tokens: list[int] = []
        kept: list[np.ndarray] = []
        start = time.perf_counter()
        gen.append_tokens(np.asarray([row], np.int32))
        prefill, decode = time.perf_counter() - start, 0.0
        for step in range(max_new_tokens):
            logits = np.asarray(gen.get_logits(), np.float32).reshape(-1)
            if keep_logits:
                kept.append(logits.copy())
            token = pick_token(logits, rng, 1.0, 0)
            tokens.append(token)
            if (eos_token_id is not None and token == eos_token_id) or step + 1 == max_new_tokens:
                break
            start = time.perf_counter()
            gen.append_tokens(np.asarray([[token]], np.int32))
            decode += time.perf_counter() - start
        return tokens, kept, prefill, decode

    def greedy(
        self, prompt: Sequence[int], max_new_tokens: int, eos_token_id: int | None
    ) -> tuple[list[int], list[np.ndarray]]:
        tokens, logits, _, _ = self.run(prompt, max_new_tokens, eos_token_id)
        return tokens, logits

    def greedy_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_token_id: int | None
    ) -> list[tuple[list[int], list[np.ndarray]]]:
        """Each prompt alone: onnxruntime-genai pads a batch its own way (the check names
        the batch size it ran the other side at)."""
        return [self.greedy(p, max_new_tokens, eos_token_id) for p in prompts]

    def score(self, ids: Sequence[int]) -> np.ndarray:
        row = self._check(ids, 0)
        gen = self.generator(len(row))
        gen.append_tokens(np.asarray([row], np.int32))
        return np.asarray(gen.get_output("logits"), np.float32).reshape(len(row), -1)

    def sample(self, first: int, length: int, seed: int, eos_token_id: int | None) -> list[int]:
        if length < 2:
            return [first]
        rng = np.random.default_rng(seed)
        tokens, _, _, _ = self.run([first], length - 1, eos_token_id, rng=rng, keep_logits=False)
        return [first, *(t for t in tokens if t != eos_token_id)]

    def close(self) -> None:
        self.model = None


# --- one decode step, for timing beside files (the report card's runtime) ------------------
# The folder's own graph takes onnxruntime-genai's inputs (its cache, its buffers), so this
# runner takes what a cache decoder file of this project takes at one decode step:
# ``input_ids`` of the new tokens per row and ``attention_mask`` over past + new (the rest,
# the past tensors, are ignored: onnxruntime-genai's ``Generator`` holds its own cache). The
# first call at a batch size and past length fills the cache with that many prompt tokens;
# every call then rewinds the generator to the past and appends the new tokens, which is what
# one decode step does. ``infer`` returns the logits of the new tokens.

STEP_INPUTS = ("input_ids", "attention_mask")


class GenaiRunner(Runner):
    """One decode step of an onnxruntime-genai folder on the CPU (the comment above);
    ``threads``: the session's intra-op threads (default: the folder's config)."""

    backend = "onnxruntime-genai"
    # onnxruntime-genai 0.18 appends tokens to a batch of more than one row once (its batched
    # loop is generate_next_token): a decode step after a cache runs at batch 1 only
    max_batch: int | None = 1
    max_batch_reason = (
        "onnxruntime-genai appends to a batch above 1 once; its decode step is timed at batch 1"
    )

    def __init__(
        self, folder: str | os.PathLike[str], threads: int | None = None, name: str | None = None
    ) -> None:
        super().__init__(name or str(folder), "cpu")
        self.folder = str(folder)
        self.threads = threads
        self._source: GenaiTokens | None = None
        self._state: tuple[int, int] | None = None  # (batch, past) the generator holds
        self._generator: Any = None
        self._inputs = (
            TensorSpec("input_ids", "int64", ("batch", "seq")),
            TensorSpec("attention_mask", "int64", ("batch", "total")),
        )
        self._outputs = (TensorSpec("logits", "float32", ("batch", "seq", "vocab")),)

    def _activate(self) -> None:
        self._source = GenaiTokens(self.folder, threads=self.threads)

    def _deactivate(self) -> None:
        if self._source is not None:
            self._source.close()
        self._source, self._generator, self._state = None, None, None

    def feeds(self, data: Any) -> Feeds:
        """The decode step's ``input_ids`` and ``attention_mask`` (a dict by name)."""
        if not isinstance(data, dict) or any(n not in data for n in STEP_INPUTS):
            raise GenerationError(
                f"{self.name}: onnxruntime-genai's runner takes a decode step's "
                f"{' and '.join(STEP_INPUTS)} by name"
            )
        ids = np.asarray(data["input_ids"])
        mask = np.asarray(data["attention_mask"])
        if ids.ndim != 2 or mask.ndim != 2 or mask.shape[0] != ids.shape[0]:
            raise GenerationError(
                f"{self.name}: input_ids {ids.shape} and attention_mask {mask.shape} must be "
                "(batch, new) and (batch, past + new)"
            )
        if mask.shape[1] < ids.shape[1]:
            raise GenerationError(f"{self.name}: attention_mask is shorter than input_ids")
        return {"input_ids": ids, "attention_mask": mask}

    def _ready(self, batch: int, past: int, new: int) -> Any:
        """A generator holding ``past`` tokens per row (made once per batch and past)."""
        assert self._source is not None
        if self._state != (batch, past):
            gen = self._source.generator(past + new, batch)
            if past:
                prompt = (np.arange(past, dtype=np.int32) % max(self._source.vocab - 1, 1)) + 1
                gen.append_tokens(np.tile(prompt, (batch, 1)))
            self._generator, self._state = gen, (batch, past)
        return self._generator

    def _infer(self, feeds: Feeds) -> dict[str, np.ndarray]:
        ids = np.asarray(feeds["input_ids"])
        batch, new = ids.shape
        if batch > self.max_batch:
            raise GenerationError(f"{self.name}: batch {batch}: {self.max_batch_reason}")
        past = int(np.asarray(feeds["attention_mask"]).shape[1]) - new
        gen = self._ready(batch, past, new)
        gen.rewind_to(past)
        gen.append_tokens(ids.astype(np.int32))
        logits = np.asarray(gen.get_logits(), np.float32)
        return {"logits": logits.reshape(batch, -1, logits.shape[-1])}

    def environment(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"onnxruntime-genai": version("onnxruntime-genai"), "threads": self.threads}
