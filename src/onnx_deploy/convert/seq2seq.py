"""Encoder-decoder models (T5, BART, Marian, Whisper) exported for generation, in the
layout optimum writes: ``encoder_model.onnx``, ``decoder_model.onnx`` and
``decoder_with_past_model.onnx`` in one folder, with the model's ``config.json`` (and
``generation_config.json``, and a speech model's ``preprocessor_config.json``) beside them.

- encoder: ``input_ids`` and ``attention_mask`` ``[batch, enc_seq]`` (Whisper:
  ``input_features [batch, mels, frames]``) -> ``last_hidden_state``;
- decoder, first step: ``input_ids [batch, dec_seq]``, ``encoder_hidden_states``,
  ``encoder_attention_mask`` -> ``logits``, ``present.<i>.decoder.key/value`` (self-attention)
  and ``present.<i>.encoder.key/value`` (cross-attention, computed once here);
- decoder with past: ``input_ids [batch, new]``, ``encoder_attention_mask``,
  ``past_key_values.<i>.decoder.*`` and ``past_key_values.<i>.encoder.*`` -> ``logits`` and
  ``present.<i>.decoder.*``.

The caches are rebuilt inside ``forward`` as transformers' ``EncoderDecoderCache`` from
flat tensors (the form torch 2.14's exporter traces); with a cross-attention cache of
length > 0 transformers reuses it instead of projecting the encoder's states again, so
the second decoder never reads them (it takes zeros of their shape, which the exporter
prunes). ``export_seq2seq`` checks the folder by greedy tokens against transformers before
moving it into place (``infer.seq2seq.Seq2SeqGenerator`` runs the same loop).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from onnx_deploy.convert.hf import HF_MAX_BATCH
from onnx_deploy.convert.hf import hf_folder
from onnx_deploy.convert.hf import load_hf_model
from onnx_deploy.core.errors import ExportError
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.extras import require
from onnx_deploy.core.files import PROTOBUF_LIMIT
from onnx_deploy.core.results import Result
from onnx_deploy.infer.seq2seq import DECODER
from onnx_deploy.infer.seq2seq import DECODER_WITH_PAST
from onnx_deploy.infer.seq2seq import ENCODER

GENERATION_HEADS = ("ForConditionalGeneration", "MTModel")
CHECK_TOKENS = 12  # greedy steps the export's token check runs
CHECK_ROWS = 3  # encoder inputs it runs them on (one batch, padded)
MAX_ENCODER_SEQ = 1024  # an encoder without a position table (T5): the range exported


def is_seq2seq(config: Any) -> bool:
    """An encoder-decoder whose head generates (T5, BART, Marian, Whisper)."""
    names = getattr(config, "architectures", None) or []
    return bool(getattr(config, "is_encoder_decoder", False)) and any(
        n.endswith(GENERATION_HEADS) for n in names
    )


@dataclass(frozen=True)
class Seq2SeqExport(Result):
    """An encoder-decoder folder, and how it was checked."""

    COMPUTED = ("ok",)

    path: str
    layers: int
    files: dict[str, int]  # file name -> size in bytes
    seconds: float
    encoder_input: str
    identical_rows: int
    rows: int
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.identical_rows == self.rows

    def summary(self) -> str:
        from onnx_deploy.core.files import human_size

        lines = [
            f"export    {self.path}/  {self.seconds:.1f} s  (encoder-decoder, {self.layers} "
            f"decoder layers, optimum's layout)"
        ]
        lines += [f"  file    {n}  {human_size(s)}" for n, s in self.files.items()]
        lines.append(
            f"  check   greedy tokens vs transformers: identical on {self.identical_rows}/"
            f"{self.rows} inputs ({CHECK_TOKENS} steps): {'PASS' if self.ok else 'FAIL'}"
        )
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def _decoder_caches(model: Any) -> None:
    """The decoder's configs with the cache on (the encoder's stay off: T5's encoder stack
    refuses ``use_cache``)."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and (config is model.config or getattr(config, "is_decoder", False)):
            config.use_cache = True


def _cache_of(out: Any) -> Any:
    return getattr(out, "cache", None) or out.past_key_values


def _flat(cache: Any, cross: bool) -> list[Any]:
    parts = [cache.self_attention_cache] + ([cache.cross_attention_cache] if cross else [])
    return [t for part in parts for layer in part.layers for t in (layer.keys, layer.values)]


def _modules(model: Any, features: bool) -> tuple[Any, Any, Any]:
    import inspect

    import torch
    from transformers import DynamicCache
    from transformers import EncoderDecoderCache

    config = model.config
    d_model = int(getattr(config, "d_model", None) or config.hidden_size)
    # transformers 5.x names the argument ``cache`` (``past_key_values`` warns); 4.x knows
    # only ``past_key_values``
    cache_arg = (
        "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    )

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model.get_encoder()

        def forward(self, x: Any, mask: Any = None) -> Any:
            if features:
                return self.encoder(input_features=x).last_hidden_state
            return self.encoder(input_ids=x, attention_mask=mask).last_hidden_state

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, hidden: Any, mask: Any = None) -> tuple[Any, ...]:
            cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
            out = self.model(
                encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=ids,
                use_cache=True, **{cache_arg: cache},
            )  # fmt: skip
            return (out.logits, *_flat(_cache_of(out), cross=True))

    class DecoderWithPast(torch.nn.Module):
        def __init__(self, layers: int) -> None:
            super().__init__()
            self.model = model
            self.layers = layers

        def forward(self, ids: Any, *rest: Any) -> tuple[Any, ...]:
            # Whisper's encoder has no padding: no mask, only the caches
            mask, past = (None, rest) if features else (rest[0], rest[1:])
            n = self.layers
            own = [(past[2 * i], past[2 * i + 1]) for i in range(n)]
            cross = [(past[2 * n + 2 * i], past[2 * n + 2 * i + 1]) for i in range(n)]
            cache = EncoderDecoderCache(
                DynamicCache(ddp_cache_data=own, config=config),
                DynamicCache(ddp_cache_data=cross, config=config),
            )
            key = cross[0][0]  # the encoder's states are not read again: zeros of their shape
            hidden = torch.zeros(key.shape[0], key.shape[2], d_model, dtype=key.dtype)
            out = self.model(
                encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=ids,
                use_cache=True, **{cache_arg: cache},
            )  # fmt: skip
            return (out.logits, *_flat(_cache_of(out), cross=False))

    return Encoder().eval(), Decoder().eval(), DecoderWithPast


def encoder_example(model: Any, batch: int, seed: int = 0, seq: int = 9) -> dict[str, Any]:
    """Valid encoder inputs: ``seq`` token ids with a padding mask (the first row
    unpadded), or Whisper's log-mel frames at the size its encoder takes."""
    from onnx_deploy.convert.hf import signature_for

    sig = signature_for(model)
    sizes = {"batch": batch}
    if "seq" in {d.name for d in sig.dims}:
        sizes["seq"] = min(sig.dim("seq").max, seq)
    feeds = sig.examples(sizes, seed=seed)
    keep = ("input_features",) if "input_features" in feeds else ("input_ids", "attention_mask")
    return {k: feeds[k] for k in keep}


def hf_seq2seq_greedy(
    model: Any, encoder_feeds: dict[str, Any], max_new_tokens: int, eos_token_id: int | None
) -> list[list[int]]:
    """transformers' own greedy ``generate`` with a clean generation config (no beams, no
    forced or suppressed tokens: the model's own config is set aside for the call), each
    row's generated tokens up to its EOS. The generated tokens are the last of
    ``sequences``, one per step scored: Whisper's ``generate`` returns them without the
    start token, the others with it."""
    import torch
    import transformers

    config = model.config
    tensors = {k: torch.from_numpy(v) for k, v in encoder_feeds.items()}
    start = int(config.decoder_start_token_id)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    saved = model.generation_config
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=start, pad_token_id=pad
    )
    try:
        with torch.no_grad():
            out = model.generate(
                **tensors,
                generation_config=transformers.GenerationConfig(
                    max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                    eos_token_id=eos_token_id, pad_token_id=pad, decoder_start_token_id=start,
                ),
                return_dict_in_generate=True, output_scores=True,
            )  # fmt: skip
    finally:
        model.generation_config = saved
    steps = len(out.scores)
    rows = []
    for row in out.sequences[:, out.sequences.shape[1] - steps :].tolist():
        if eos_token_id is not None and eos_token_id in row:
            row = row[: row.index(eos_token_id) + 1]
        rows.append([int(t) for t in row])
    return rows


def export_seq2seq(
    spec_or_model: str | Any,
    output: str | os.PathLike[str],
    *,
    opset: int | None = None,
    force: bool = False,
) -> Seq2SeqExport:
    """Export an encoder-decoder (``hf:DIR``) into the folder ``output`` (the module
    docstring), check its greedy tokens against transformers on a padded batch, and move
    it into place; a check that fails leaves nothing."""
    from onnx_deploy.convert.export import run_captured
    from onnx_deploy.convert.runners.pytorch import forward_parameters
    from onnx_deploy.core.defaults import DEFAULT_OPSET
    from onnx_deploy.infer.seq2seq import Seq2SeqGenerator

    torch = require("torch", "exporting an encoder-decoder")
    out = Path(output)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} already exists; choose another folder or pass --force")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} is a file; an encoder-decoder exports to a folder")
    model = load_hf_model(spec_or_model) if isinstance(spec_or_model, str) else spec_or_model
    if not is_seq2seq(model.config):
        raise ModelSpecError(
            f"{type(model).__name__} is not an encoder-decoder that generates "
            f"(config.architectures {getattr(model.config, 'architectures', None)}); export "
            "it without --with-cache"
        )
    _decoder_caches(model)
    features = "input_features" in forward_parameters(model)[0]
    encoder, decoder, with_past_cls = _modules(model, features)
    example = encoder_example(model, 2)
    x = torch.from_numpy(example["input_features" if features else "input_ids"])
    mask = None if features else torch.from_numpy(example["attention_mask"])
    Dim = torch.export.Dim
    b = Dim("batch", min=1, max=HF_MAX_BATCH)
    top = int(
        getattr(model.config, "max_position_embeddings", None)
        or getattr(model.config, "n_positions", None)
        or MAX_ENCODER_SEQ
    )
    s = Dim("enc_seq", min=1, max=top)
    dec_top = int(getattr(model.config, "max_target_positions", None) or top)
    d = Dim("dec_seq", min=1, max=dec_top)
    p = Dim("past", min=1, max=dec_top - 1)
    new = Dim("new", min=1, max=dec_top - 1)
    opset = opset or DEFAULT_OPSET
    # past 2 GB the weights go to a .data file beside each graph (protobuf's limit)
    tensors = [*model.parameters(), *model.buffers()]
    external = sum(t.numel() * t.element_size() for t in tensors) > PROTOBUF_LIMIT
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with torch.no_grad():
            hidden = encoder(x, mask)
            gen = torch.Generator().manual_seed(0)  # the caller's random state is left alone
            ids = torch.randint(0, int(model.config.vocab_size), (x.shape[0], 3), generator=gen)
            first = decoder(ids, hidden, mask)
            layers = (len(first) - 1) // 4
            own_names = [
                f"present.{i}.decoder.{kv}" for i in range(layers) for kv in ("key", "value")
            ]
            cross_names = [
                f"present.{i}.encoder.{kv}" for i in range(layers) for kv in ("key", "value")
            ]
            enc_in = ["input_features"] if features else ["input_ids", "attention_mask"]
            enc_shapes = ({0: b},) if features else ({0: b, 1: s}, {0: b, 1: s})
            enc_axis = {0: b} if features else {0: b, 1: s}
            enc_axis_2 = {0: b} if features else {0: b, 2: s}  # the cross-attention cache
            mask_in = [] if features else ["encoder_attention_mask"]
            with_past = with_past_cls(layers).eval()
            exports = [
                (ENCODER, encoder, (x,) if features else (x, mask), enc_shapes, enc_in,
                 ["last_hidden_state"]),
                (DECODER, decoder, (ids, hidden) + (() if features else (mask,)),
                 ({0: b, 1: d}, enc_axis) + (() if features else ({0: b, 1: s},)),
                 ["input_ids", "encoder_hidden_states", *mask_in],
                 ["logits", *own_names, *cross_names]),
                (DECODER_WITH_PAST, with_past,
                 (ids[:, :1], *([] if features else [mask]), *first[1:]),
                 ({0: b, 1: new}, tuple(([] if features else [{0: b, 1: s}])
                  + [{0: b, 2: p}] * (2 * layers) + [enc_axis_2] * (2 * layers))),
                 ["input_ids", *mask_in,
                  *[n.replace("present.", "past_key_values.") for n in own_names + cross_names]],
                 ["logits", *own_names]),
            ]  # fmt: skip
            for name, module, args, shapes, inputs, outputs in exports:

                def run(exporter: str, module: Any = module, args: Any = args, shapes: Any = shapes,
                        inputs: Any = inputs, outputs: Any = outputs, name: str = name) -> Any:  # fmt: skip
                    return torch.onnx.export(
                        module, args, str(tmp / name), dynamo=True, dynamic_shapes=shapes,
                        opset_version=opset, input_names=inputs, output_names=outputs,
                        external_data=external, verbose=False,
                    )  # fmt: skip

                run_captured(run, "dynamo", [])
        folder = hf_folder(spec_or_model) if isinstance(spec_or_model, str) else None
        if folder is not None:
            for extra in ("config.json", "generation_config.json", "preprocessor_config.json"):
                if (folder / extra).is_file():
                    shutil.copy2(folder / extra, tmp / extra)
        else:
            model.config.to_json_file(tmp / "config.json")
        seconds = time.perf_counter() - start
        # the check: greedy tokens on a padded batch, no EOS stop (every step compared)
        check = encoder_example(model, CHECK_ROWS, seed=1)
        want = hf_seq2seq_greedy(model, check, CHECK_TOKENS, None)
        got = Seq2SeqGenerator(tmp).greedy(check, CHECK_TOKENS, None)
        same = sum(w == g for w, g in zip(want, got, strict=True))
        files = {f.name: f.stat().st_size for f in sorted(tmp.iterdir()) if ".onnx" in f.name}
        result = Seq2SeqExport(
            str(out), layers, files, seconds, "input_features" if features else "input_ids",
            same, len(want),
        )  # fmt: skip
        if not result.ok:
            raise ExportError(
                result.summary() + f"\ntransformers: {want}\nONNX: {got}\nthe exported "
                "encoder-decoder does not generate transformers' tokens; nothing written"
            )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
