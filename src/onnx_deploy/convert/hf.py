"""Hugging Face transformers: a ``save_pretrained`` folder as a model spec, its signature
read from the model, and decoders exported with their KV cache.

``hf:PATH`` names a local folder (``config.json`` plus ``model.safetensors``); nothing is
downloaded (``local_files_only=True``). The class comes from ``config.architectures``
(``DistilBertForSequenceClassification``, ``GPT2LMHeadModel``), so the folder loads the
model that was saved, head included. The signature comes from the model:

- text models: ``input_ids`` int64 ``[batch, seq]`` with values below ``vocab_size``,
  ``attention_mask`` as a padding mask (ones, then zeros: never a fully masked row), and
  ``token_type_ids`` below ``type_vocab_size`` where the config has one (BERT);
- vision models: ``pixel_values`` float32 ``[batch, C, H, W]`` at the config's size;
- ``seq`` ranges over ``1:max_position_embeddings``, exported and timed at a quarter of
  it (at most 128); ``batch`` over ``1:64``.

Decoders (``*ForCausalLM``, ``GPT2LMHeadModel``) export with their cache
(``export_decoder``): inputs ``input_ids``, ``attention_mask [batch, total]`` and
``past_key_values.<i>.key/value [batch, kv_heads, past, head_dim]``; outputs ``logits``
and ``present.<i>.key/value``. One graph serves the prefill (past length 0) and every
decode step. The cache is rebuilt inside ``forward`` as transformers' ``DynamicCache``
from the flat tensors, the form torch 2.14's exporter traces (a ``DynamicCache`` as an
input would need pytree registration, which transformers 4.56+ dropped).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.extras import require
from onnx_deploy.core.results import Result
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.signature import InputSpec
from onnx_deploy.core.signature import Signature

if TYPE_CHECKING:
    import torch

PREFIX = "hf:"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
HF_MAX_BATCH = 64
HF_OPT_SEQ = 128  # the sequence length exported and timed, at most
RANDOM_WEIGHTS_SEED = 0  # a config-only folder's weights: the same model on every load
DEFAULT_MAX_SEQ = 512  # for configs without max_position_embeddings (T5)


def is_hf_spec(text: str) -> bool:
    return text.startswith(PREFIX)


def hf_folder(spec: str) -> Path:
    """The folder an ``hf:PATH`` spec names, checked: it exists and has a config."""
    path = Path(spec.removeprefix(PREFIX))
    if not path.is_dir():
        looks_like_hub = len(path.parts) <= 2 and not str(path).startswith((".", "/", "~"))
        hint = (
            " It looks like a hub id: nothing is downloaded here. On a machine with access, "
            "run AutoModelFor...from_pretrained(id).save_pretrained('folder') (and the "
            "tokenizer's), copy the folder over and pass hf:folder."
            if looks_like_hub
            else ""
        )
        raise ModelSpecError(f"{spec}: {path} is not a folder.{hint}")
    if not (path / "config.json").is_file():
        raise ModelSpecError(
            f"{spec}: {path} has no config.json; pass a folder written by save_pretrained"
        )
    return path


def has_weights(folder: str | os.PathLike[str]) -> bool:
    return any((Path(folder) / f).is_file() for f in WEIGHT_FILES)


def load_config(spec: str) -> Any:
    transformers = require("transformers", f"loading {spec}")
    folder = hf_folder(spec)
    return transformers.AutoConfig.from_pretrained(folder, local_files_only=True)


def model_class(config: Any) -> Any:
    """The class ``config.architectures`` names (what was saved), else ``AutoModel``."""
    import transformers

    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


# The attention code exported. transformers' default ("sdpa") traces into a masked
# softmax with NaN guards (IsNaN/Where per layer) that ONNX Runtime's load-time fusions do
# not recognise; "eager" is the classic MatMul-Softmax-MatMul pattern they and onnxscript's
# ort_fusions match. Measured on BERT-base at seq 128 (notebooks/MEASUREMENTS.md): dynamic
# INT8 1.14-1.18x faster from "eager", FP32 1.01-1.07x; the same outputs within 1e-6.
EXPORT_ATTENTION = "eager"


def load_hf_model(
    spec: str, *, use_cache: bool = False, attn_implementation: str | None = EXPORT_ATTENTION
) -> torch.nn.Module:
    """The model a ``save_pretrained`` folder holds, in eval mode, offline, with the
    attention code to export (``EXPORT_ATTENTION``; None: transformers' default). Without
    a weights file the model is built from the config: random weights, the same on every
    load (``RANDOM_WEIGHTS_SEED``)."""
    torch = require("torch", f"loading {spec}")
    config = load_config(spec)
    folder = hf_folder(spec)
    cls = model_class(config)
    _quiet_transformers()
    attention = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        if has_weights(folder):
            model = cls.from_pretrained(folder, local_files_only=True, **attention)
        else:
            # random weights drawn from a fixed seed, so that every command that loads
            # the folder (export, then validate or generate --reference) gets the same
            # model; the caller's random state is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_WEIGHTS_SEED)
                if cls.__name__ == "AutoModel":
                    model = cls.from_config(config, **attention)
                else:
                    if attn_implementation:
                        config._attn_implementation = attn_implementation
                    model = cls(config)
    except Exception as e:
        first = first_line(e)
        raise ModelSpecError(f"{spec}: transformers could not load {cls.__name__}: {first}") from e
    # every config the model holds: T5's decoder stack has its own copy, and with its cache
    # on the exporter meets an EncoderDecoderCache in the outputs
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "use_cache"):
            config.use_cache = use_cache
    return model.eval()


def _quiet_transformers() -> None:
    """No progress bars or advice lines from transformers while loading."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def is_decoder(config: Any) -> bool:
    """A causal LM: the kind that generates tokens with a KV cache."""
    names = getattr(config, "architectures", None) or []
    return any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names)


def _text_config(config: Any) -> Any:
    return config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config


def max_sequence(config: Any) -> int:
    cfg = _text_config(config)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value >= 2:
            return value
    return DEFAULT_MAX_SEQ


def position_limit(model: Any) -> int | None:
    """The longest sequence a model's learned position table takes, where it numbers
    positions from an offset: RoBERTa, XLM-RoBERTa and MPNet count from ``padding_idx +
    1``, so a table of 514 takes 512 tokens (transformers fails with "index out of range in
    self" past it). None where no such table is found."""
    import torch

    limits = [
        m.num_embeddings - m.padding_idx - 1
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Embedding)
        and name.rsplit(".", 1)[-1] in ("position_embeddings", "embed_positions")
        and m.padding_idx is not None
        and getattr(model.config, "position_embedding_type", "absolute") == "absolute"
    ]
    return min(limits) if limits else None


def _sequence_dim(model: Any, name: str, top: int) -> DimRange:
    limit = position_limit(model)
    top = min(top, limit) if limit else top
    return DimRange(name, 1, top, opt=min(HF_OPT_SEQ, max(2, top // 4)))


def _needs_end_token(model: Any) -> int | None:
    """The ``<eos>`` id a BART-style classifier needs once in every example (it reads the
    hidden state there: "Each example must contain at least one <eos> token"), else None."""
    config = model.config
    if type(model).__name__.endswith("ForSequenceClassification") and getattr(
        config, "is_encoder_decoder", False
    ):
        eos = getattr(config, "eos_token_id", None)
        return eos if isinstance(eos, int) else None
    return None


# audio: a waveform's sample rate and length where the config gives none (16 kHz speech,
# exported at one second, valid up to the 30 s window Whisper and most CTC models take)
SAMPLE_RATE = 16_000
MAX_AUDIO_SECONDS = 30


def _audio_inputs(model: Any, params: Sequence[str]) -> tuple[list[InputSpec], list[DimRange]]:
    """Speech inputs from the config: Whisper's log-mel ``input_features`` ``[batch,
    num_mel_bins, 2 * max_source_positions]`` (its encoder takes exactly that many frames),
    Speech2Text's filter banks ``[batch, frames, features]`` (any length),
    AST's spectrogram ``input_values`` ``[batch, max_length, num_mel_bins]``, else a
    waveform ``input_values`` ``[batch, samples]`` in [-1, 1] at least one convolution
    window long (wav2vec2, HuBERT: any length)."""
    config = model.config
    mels = getattr(config, "num_mel_bins", None)
    per_channel = getattr(config, "input_feat_per_channel", None)
    if "input_features" in params and isinstance(per_channel, int):
        # Speech2Text: filter-bank frames of any length, [batch, frames, features]; its
        # convolutions halve the length once per layer
        halvings = len(getattr(config, "conv_kernel_sizes", None) or (5, 5))
        top = int(getattr(config, "max_source_positions", 6000)) * 2**halvings
        feats = per_channel * int(getattr(config, "input_channels", 1) or 1)
        frames = DimRange("frames", 2**halvings, top, opt=min(top, 100 * 2**halvings // 4))
        return [InputSpec("input_features", "float32", ("batch", "frames", feats))], [frames]
    if "input_features" in params:
        frames = 2 * int(getattr(config, "max_source_positions", 1500))
        if not isinstance(mels, int):
            raise ModelSpecError(
                f"{type(model).__name__} takes input_features but its config has no "
                "num_mel_bins; declare the input with --input input_features:float32:..."
            )
        return [InputSpec("input_features", "float32", ("batch", mels, frames))], []
    if isinstance(mels, int) and isinstance(getattr(config, "max_length", None), int):
        shape = ("batch", int(config.max_length), mels)
        return [InputSpec("input_values", "float32", shape)], []
    kernels = getattr(config, "conv_kernel", None) or (1,)
    strides = getattr(config, "conv_stride", None) or (1,)
    window, step = 1, 1
    for k, s in zip(kernels, strides, strict=False):
        window += (int(k) - 1) * step
        step *= int(s)
    # SEW pools the frames by its squeeze factor before the transformer: that many at least
    window += (int(getattr(config, "squeeze_factor", 1) or 1) - 1) * step
    rate = int(getattr(config, "sampling_rate", SAMPLE_RATE) or SAMPLE_RATE)
    samples = DimRange("samples", window, rate * MAX_AUDIO_SECONDS, opt=max(window, rate))
    spec = InputSpec("input_values", "float32", ("batch", "samples"), -1.0, 1.0)
    return [spec], [samples]


def signature_for(model: Any, dims: Sequence[DimRange] = ()) -> Signature:
    """The inputs ``model.forward`` takes, from its config (the module docstring), with
    ``dims`` replacing the default ranges by name."""
    from onnx_deploy.convert.runners.pytorch import forward_parameters

    config = model.config
    params, _ = forward_parameters(model)
    inputs: list[InputSpec] = []
    default_dims: list[DimRange] = [DimRange("batch", 1, HF_MAX_BATCH)]
    cfg = _text_config(config)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    if "input_ids" in params:
        if vocab < 2:
            raise ModelSpecError(f"{type(model).__name__}: the config has no vocab_size")
        end = _needs_end_token(model)
        inputs.append(InputSpec("input_ids", "int64", ("batch", "seq"), 0, vocab, end=end))
        if "attention_mask" in params:
            inputs.append(InputSpec("attention_mask", "int64", ("batch", "seq"), kind="mask"))
        types = getattr(cfg, "type_vocab_size", None)
        if "token_type_ids" in params and isinstance(types, int) and types >= 2:
            inputs.append(InputSpec("token_type_ids", "int64", ("batch", "seq"), 0, types))
        default_dims.append(_sequence_dim(model, "seq", max_sequence(config)))
    elif "pixel_values" in params:
        vision = getattr(config, "vision_config", config)
        size = getattr(vision, "image_size", 224)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        channels = int(getattr(vision, "num_channels", 3))
        inputs.append(InputSpec("pixel_values", "float32", ("batch", channels, h, w)))
    elif "input_features" in params or "input_values" in params:
        audio, audio_dims = _audio_inputs(model, params)
        inputs += audio
        default_dims += audio_dims
    else:
        raise ModelSpecError(
            f"{type(model).__name__}.forward({', '.join(params[:6])}, ...) takes none of "
            "input_ids, pixel_values, input_features or input_values; declare its inputs "
            "with --input"
        )
    # a classifier or extractive QA head makes its decoder's ids from input_ids (BART)
    derives = type(model).__name__.endswith(("ForSequenceClassification", "ForQuestionAnswering"))
    if (
        getattr(config, "is_encoder_decoder", False)
        and "decoder_input_ids" in params
        and not derives
    ):
        # one teacher-forced pass: the decoder's tokens so far, next-token logits for each
        if vocab < 2:
            raise ModelSpecError(f"{type(model).__name__}: the config has no vocab_size")
        inputs.append(InputSpec("decoder_input_ids", "int64", ("batch", "dec_seq"), 0, vocab))
        top = getattr(config, "max_target_positions", None) or max_sequence(config)
        default_dims.append(_sequence_dim(model, "dec_seq", int(top)))
    given = {d.name: d for d in dims}
    names = {d.name for d in default_dims}
    unknown = [n for n in given if n not in names]
    if unknown:
        raise ModelSpecError(f"--dim {unknown}: this model's dims are {', '.join(sorted(names))}")
    chosen = [given.get(d.name, d) for d in default_dims]
    used = {s for i in inputs for s in i.symbols}
    return Signature(tuple(inputs), tuple(d for d in chosen if d.name in used))


# --- decoders with a KV cache ------------------------------------------------------------


@dataclass(frozen=True)
class CacheLayout:
    """The shape of a decoder's cache: layers, key/value heads and head size."""

    layers: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int

    @classmethod
    def from_config(cls, config: Any) -> CacheLayout:
        cfg = _text_config(config)
        heads = int(cfg.num_attention_heads)
        kv = int(getattr(cfg, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
        return cls(
            int(cfg.num_hidden_layers), kv, head_dim, int(cfg.vocab_size), max_sequence(config)
        )

    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def present_names(self) -> list[str]:
        return [f"present.{i}.{kv}" for i in range(self.layers) for kv in ("key", "value")]


# generation settings a contract carries: what transformers' ``generate`` applies from
# ``generation_config.json`` beyond greedy decoding (the token check applies or names each)
GENERATION_KEYS = (
    "eos_token_id", "bos_token_id", "pad_token_id", "forced_bos_token_id",
    "forced_eos_token_id", "suppress_tokens", "begin_suppress_tokens", "repetition_penalty",
    "no_repeat_ngram_size", "bad_words_ids", "min_length", "min_new_tokens",
    "max_length", "do_sample", "num_beams", "temperature", "top_k", "top_p",
)  # fmt: skip


def generation_settings(model: Any) -> dict[str, Any]:
    """The settings of ``model.generation_config`` that differ from transformers' defaults
    (and ``eos_token_id`` always), as JSON values."""
    gen = getattr(model, "generation_config", None)
    if gen is None:
        return {}
    diff = gen.to_diff_dict() if hasattr(gen, "to_diff_dict") else {}
    out = {k: diff[k] for k in GENERATION_KEYS if k in diff and diff[k] is not None}
    if getattr(gen, "eos_token_id", None) is not None:
        out["eos_token_id"] = gen.eos_token_id
    return out


def decoder_contract(model: Any, layout: CacheLayout, source: str, trained: bool) -> Any:
    """The contract ``export_decoder`` writes into its file: token ids below the
    vocabulary, a padding mask over the cache and the new tokens (``total = past + seq``),
    the position limit, judged by its tokens, with the generation config."""
    from onnx_deploy.core.contract import ModelContract

    top = layout.max_positions
    past_shape = ("batch", layout.kv_heads, "past", layout.head_dim)
    inputs = (
        InputSpec("input_ids", "int64", ("batch", "seq"), 0, layout.vocab_size),
        InputSpec("attention_mask", "int64", ("batch", "total"), kind="mask"),
        *(InputSpec(n, "float32", past_shape) for n in layout.past_names()),
    )
    dims = (
        DimRange("batch", 1, HF_MAX_BATCH),
        DimRange("seq", 1, top, opt=min(HF_OPT_SEQ, max(2, top // 4))),
        DimRange("total", 2, top),
        DimRange("past", 1, top - 1, opt=min(HF_OPT_SEQ, max(2, top // 4))),
    )
    roles = {"input_ids": "token_ids", "attention_mask": "padding_mask", "logits": "logits"}
    roles |= {n: "past_cache" for n in layout.past_names()}
    roles |= {n: "present_cache" for n in layout.present_names()}
    return ModelContract(
        source=source, family="decoder", task="generation", judge="tokens",
        weights="trained" if trained else "random", inputs=inputs, dims=dims, roles=roles,
        relations=("total = past + seq",), generation=generation_settings(model),
    )  # fmt: skip


def reference_module(model: Any, input_names: Sequence[str]) -> Any:
    """The PyTorch module to hold an ONNX file with ``input_names`` against: a causal LM
    wrapped to take and return its cache as flat tensors when the file has
    ``past_key_values.*`` inputs (``export_decoder``'s form), else ``model`` itself."""
    if not any(n.startswith("past_key_values.") for n in input_names):
        return model
    if not hasattr(model, "config") or not is_decoder(model.config):
        raise ModelSpecError(
            f"the ONNX file takes a KV cache (past_key_values.*) but {type(model).__name__} "
            "is not a causal LM; pass the hf:DIR it was exported from"
        )
    return _cache_module(model, CacheLayout.from_config(model.config))


def _cache_module(model: Any, layout: CacheLayout) -> Any:
    """``model`` as a module of flat tensors: (input_ids, attention_mask, *past) ->
    (logits, *present); the cache is a ``DynamicCache`` inside."""
    import inspect

    import torch
    from transformers import DynamicCache

    # transformers 5.x names the argument ``cache`` (``past_key_values`` is deprecated);
    # 4.x knows only ``past_key_values``.
    params = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values"
    # positions come from the padding mask, as transformers' ``generate`` makes them
    # (``_prepare_position_ids_for_generation``): a left-padded row starts at position 0
    # after its padding, and the file needs no position input.
    with_positions = "position_ids" in params

    class WithCache(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, *past: Any) -> tuple[Any, ...]:
            pairs = [(past[2 * i], past[2 * i + 1]) for i in range(layout.layers)]
            cache = DynamicCache(ddp_cache_data=pairs, config=self.model.config)
            extra: dict[str, Any] = {cache_arg: cache}
            if with_positions:
                positions = attention_mask.cumsum(-1) - 1
                positions = positions.masked_fill(attention_mask == 0, 0)
                extra["position_ids"] = positions[:, -input_ids.shape[1] :]
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, use_cache=True, **extra
            )
            new = getattr(out, "cache", None) or out.past_key_values
            flat = [t for layer in new.layers for t in (layer.keys, layer.values)]
            return (out.logits, *flat)

    return WithCache().eval()


@dataclass(frozen=True)
class DecoderExport(Result):
    """A decoder exported with its cache, and how it was checked."""

    COMPUTED = ("ok",)

    path: str
    layout: CacheLayout
    seconds: float
    size_bytes: int
    max_abs_prefill: float
    max_abs_decode: float
    ok: bool  # every output within the fp32 preset (``compare_results``)
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        from onnx_deploy.core.files import human_size

        lay = self.layout
        lines = [
            f"export    {self.path}  {human_size(self.size_bytes)}  {self.seconds:.1f} s  "
            f"(decoder with KV cache: {lay.layers} layers, {lay.kv_heads} kv heads x "
            f"{lay.head_dim})",
            "  input   input_ids int64[batch, seq], attention_mask int64[batch, total], "
            f"past_key_values.<0..{lay.layers - 1}>.key/value float32[batch, {lay.kv_heads}, "
            f"past, {lay.head_dim}]",
            f"  output  logits float32[batch, seq, {lay.vocab_size}], present.<i>.key/value",
            f"  check   vs PyTorch: prefill max abs {self.max_abs_prefill:.2e}, decode step "
            f"max abs {self.max_abs_decode:.2e}: {'PASS' if self.ok else 'FAIL'}",
        ]
        lines += [f"  note    {n}" for n in self.notes]
        return "\n".join(lines)


def export_decoder(
    spec_or_model: str | Any,
    output: str | os.PathLike[str],
    *,
    opset: int | None = None,
    force: bool = False,
) -> DecoderExport:
    """Export a causal LM with ``past_key_values`` inputs and ``present`` outputs
    (dynamic batch, sequence and past length), then check it against PyTorch on a
    prefill with an empty cache and on a decode step. A check that fails leaves no file."""
    import numpy as np
    import onnx

    from onnx_deploy.convert.export import run_captured
    from onnx_deploy.core.defaults import DEFAULT_OPSET
    from onnx_deploy.core.files import atomic_output
    from onnx_deploy.core.files import check_output_path
    from onnx_deploy.core.files import file_size
    from onnx_deploy.infer.compare import compare_results
    from onnx_deploy.infer.runners.onnxrt import OnnxRuntimeRunner

    torch = require("torch", "exporting a decoder")
    from onnx_deploy.core.contract import stamp_file
    from onnx_deploy.core.files import PROTOBUF_LIMIT

    check_output_path(output, force=force)
    model = load_hf_model(spec_or_model) if isinstance(spec_or_model, str) else spec_or_model
    if not is_decoder(model.config):
        raise ModelSpecError(
            f"{type(model).__name__} is not a causal LM (config.architectures "
            f"{getattr(model.config, 'architectures', None)}); export it without --with-cache"
        )
    layout = CacheLayout.from_config(model.config)
    source = spec_or_model if isinstance(spec_or_model, str) else type(model).__name__
    trained = isinstance(spec_or_model, str) and has_weights(hf_folder(spec_or_model))
    contract = decoder_contract(model, layout, source, trained)
    # past 2 GB the weights go to one external file beside the graph (protobuf's limit)
    tensors = [*model.parameters(), *model.buffers()]
    external = sum(t.numel() * t.element_size() for t in tensors) > PROTOBUF_LIMIT
    wrapper = _cache_module(model, layout)
    top = layout.max_positions
    gen = torch.Generator().manual_seed(0)
    batch, seq, past = 2, 3, 4
    ids = torch.randint(0, layout.vocab_size, (batch, seq), generator=gen)
    mask = torch.ones(batch, past + seq, dtype=torch.int64)
    cache = [
        torch.randn(batch, layout.kv_heads, past, layout.head_dim, generator=gen)
        for _ in range(2 * layout.layers)
    ]
    Dim = torch.export.Dim
    b = Dim("batch", min=1, max=HF_MAX_BATCH)
    s = Dim("seq", min=1, max=top)
    p = Dim("past", min=1, max=top - 1)
    shapes = (
        {0: b, 1: s},
        {0: b, 1: Dim("total", min=2, max=top)},
        tuple({0: b, 2: p} for _ in cache),  # forward's *past: one tuple
    )
    start = time.perf_counter()
    with atomic_output(output, force=force) as tmp, torch.no_grad():

        def run(exporter: str) -> Any:
            return torch.onnx.export(
                wrapper, (ids, mask, *cache), str(tmp), dynamo=True,
                dynamic_shapes=shapes, opset_version=opset or DEFAULT_OPSET,
                input_names=["input_ids", "attention_mask", *layout.past_names()],
                output_names=["logits", *layout.present_names()],
                external_data=external, verbose=False,
            )  # fmt: skip

        run_captured(run, "dynamo", [])
        onnx.checker.check_model(str(tmp), full_check=True)
        stamp_file(tmp, contract)
        seconds = time.perf_counter() - start
        # the check, before the file is moved into place: a prefill with an empty cache
        # (past length 0, which the graph takes though it was traced with 4), then one step
        with OnnxRuntimeRunner(tmp, "cpu", name="onnx") as ort_runner:
            prompt = torch.randint(0, layout.vocab_size, (1, 5), generator=gen)
            empty = np.zeros((1, layout.kv_heads, 0, layout.head_dim), np.float32)
            feeds = {"input_ids": prompt.numpy(), "attention_mask": np.ones((1, 5), np.int64)}
            feeds |= {n: empty for n in layout.past_names()}
            got = ort_runner.infer(feeds)
            want = model(input_ids=prompt, use_cache=False).logits.numpy()
            first = compare_results({"logits": want}, {"logits": got["logits"]}, "fp32")
            step = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
            step |= {n: t.numpy() for n, t in zip(layout.past_names(), cache, strict=True)}
            got_step = ort_runner.infer(step)
            names = ["logits", *layout.present_names()]
            want_step = dict(
                zip(names, (w.numpy() for w in wrapper(ids, mask, *cache)), strict=True)
            )
            second = compare_results(want_step, {n: got_step[n] for n in names}, "fp32")
        ok = first.ok and second.ok
        result = DecoderExport(
            str(output), layout, seconds, file_size(tmp), first.max_abs, second.max_abs, ok
        )
        if not result.ok:
            from onnx_deploy.core.errors import ExportError

            raise ExportError(result.summary() + "\nthe exported decoder does not match PyTorch")
    return result


def hf_generate(
    model: Any, prompt_ids: Sequence[int], max_new_tokens: int, *, use_cache: bool = True,
    eos_token_id: int | None = None,
) -> list[int]:  # fmt: skip
    """Greedy tokens from transformers' own ``generate`` (the reference)."""
    import torch

    ids = torch.tensor([list(prompt_ids)], dtype=torch.int64)
    with torch.no_grad():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
            min_new_tokens=0 if eos_token_id is not None else max_new_tokens,
            do_sample=False, use_cache=use_cache, eos_token_id=eos_token_id,
            pad_token_id=eos_token_id if eos_token_id is not None else 0,
        )  # fmt: skip
    return [int(t) for t in out[0, len(prompt_ids) :]]


class HfTokens:
    """transformers' own greedy ``generate`` as a ``infer.tokens.TokenSource``: plain
    greedy decoding (``do_sample=False``, ``num_beams=1``) stopping at ``eos_token_id``,
    with a clean generation config so that no other setting of the folder's config
    (repetition penalty, suppressed tokens) is applied on this side only."""

    def __init__(self, spec_or_model: str | Any, threads: int | None = None) -> None:
        torch = require("torch", "the transformers reference")
        if threads:
            torch.set_num_threads(threads)
        self.model = (
            load_hf_model(spec_or_model) if isinstance(spec_or_model, str) else spec_or_model
        )
        self.name = spec_or_model if isinstance(spec_or_model, str) else type(self.model).__name__

    @property
    def vocab(self) -> int:
        return int(self.model.config.get_text_config().vocab_size)

    def greedy(
        self, prompt: Sequence[int], max_new_tokens: int, eos_token_id: int | None
    ) -> tuple[list[int], list[Any]]:
        import torch
        import transformers

        ids = torch.tensor([list(prompt)], dtype=torch.int64)
        config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
            eos_token_id=eos_token_id,
            pad_token_id=eos_token_id if eos_token_id is not None else 0,
        )  # fmt: skip
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), generation_config=config,
                output_logits=True, return_dict_in_generate=True,
            )  # fmt: skip
        tokens = [int(t) for t in out.sequences[0, len(prompt) :]]
        logits = [step[0].float().numpy() for step in out.logits]
        if eos_token_id is not None and eos_token_id in tokens:  # nothing after the stop
            stop = tokens.index(eos_token_id) + 1
            tokens, logits = tokens[:stop], logits[:stop]
        return tokens, logits

    def greedy_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_token_id: int | None
    ) -> list[tuple[list[int], list[Any]]]:
        """``generate`` on one left-padded batch (padding masked, as a tokenizer with
        ``padding_side="left"`` makes it; the pad id is the EOS, else 0)."""
        import torch
        import transformers

        from onnx_deploy.infer.generate import left_pad

        pad = eos_token_id if eos_token_id is not None else 0
        width = max(len(p) for p in prompts)
        ids, mask = (torch.from_numpy(a) for a in left_pad(prompts, pad))
        config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
            eos_token_id=eos_token_id, pad_token_id=pad,
        )  # fmt: skip
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=mask, generation_config=config,
                output_logits=True, return_dict_in_generate=True,
            )  # fmt: skip
        rows = []
        for i in range(len(prompts)):
            tokens = [int(t) for t in out.sequences[i, width:]]
            logits = [step[i].float().numpy() for step in out.logits]
            if eos_token_id is not None and eos_token_id in tokens:  # nothing after the stop
                stop = tokens.index(eos_token_id) + 1
                tokens, logits = tokens[:stop], logits[:stop]
            rows.append((tokens, logits))
        return rows

    def sample(self, first: int, length: int, seed: int, eos_token_id: int | None) -> list[int]:
        import torch
        import transformers

        if length < 2:
            return [first]
        torch.manual_seed(seed)
        ids = torch.tensor([[first]], dtype=torch.int64)
        config = transformers.GenerationConfig(
            max_new_tokens=length - 1, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
            eos_token_id=eos_token_id,
            pad_token_id=eos_token_id if eos_token_id is not None else 0,
        )  # fmt: skip
        with torch.no_grad():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), generation_config=config
            )
        return [first, *(int(t) for t in out[0, 1:] if int(t) != eos_token_id)]

    def score(self, ids: Sequence[int]) -> Any:
        import torch

        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([list(ids)], dtype=torch.int64))
        return out.logits[0].float().numpy()

    def close(self) -> None:
        pass
