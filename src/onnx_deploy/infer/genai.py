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

GENAI_CONFIG = "genai_config.json"
GENAI_VERSION = "0.18.0"
INSTALL = (
    f"pip install --no-deps onnxruntime-genai=={GENAI_VERSION} (--no-deps: it requires the "
    "CPU onnxruntime wheel, and runs on onnxruntime-gpu's module instead)"
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

    def _generator(self, length: int) -> Any:
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(max_length=int(length), batch_size=1, do_sample=False)
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
        gen = self._generator(len(row) + max_new_tokens)
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
        gen = self._generator(len(row))
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
