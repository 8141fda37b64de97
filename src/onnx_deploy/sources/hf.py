"""``hf:DIR``: a Hugging Face ``save_pretrained`` folder, loaded offline.

The class comes from ``config.architectures`` (what was saved, head included); the
signature from the model (``convert.hf.signature_for``: token ids below the vocabulary,
a padding mask, segment ids where the config has them, ``seq`` up to the position table);
the contract from the head: a ``*For...Classification`` model is a classifier judged by
top-1, a base model gives features (judged elementwise), a causal LM generates tokens.
Without a weights file in the folder the model is built from its config (random weights).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.core.contract import ModelContract
from onnx_deploy.sources import RANDOM_WEIGHTS
from onnx_deploy.sources import LoadedModel
from onnx_deploy.sources import ModelSource
from onnx_deploy.sources import Source
from onnx_deploy.sources import load_model

if TYPE_CHECKING:
    import torch

    from onnx_deploy.core.signature import Signature

# what each input of a transformer is, for the contract
INPUT_ROLES = {
    "input_ids": "token_ids",
    "attention_mask": "padding_mask",
    "token_type_ids": "segment_ids",
    "pixel_values": "pixels",
}
# inputs a caller may leave out: transformers fills them with these values
INPUT_DEFAULTS = {"token_type_ids": 0.0}
CLASSIFIER_HEADS = ("ForSequenceClassification", "ForImageClassification", "ForTokenClassification")


class HuggingFaceSource(Source):
    name = "hf"
    example = "hf:path/to/saved_folder"
    help = "a Hugging Face save_pretrained folder (offline; random weights without a weights file)"

    def short_name(self, spec: str) -> str:
        return Path(spec.removeprefix("hf:").rstrip("/\\")).name or "model"

    def load_module(self, spec: str, **options: Any) -> torch.nn.Module:
        from onnx_deploy.convert.hf import load_hf_model

        options.pop("pretrained", None)  # a folder holds its own weights
        options.pop("image_size", None)
        return load_hf_model(spec, **options)

    def trained(self, source: ModelSource) -> bool:
        from onnx_deploy.convert.hf import has_weights
        from onnx_deploy.convert.hf import hf_folder

        return source.weights is not None or has_weights(hf_folder(source.target))

    def load(self, source: ModelSource, signature: Signature | None) -> LoadedModel:
        from onnx_deploy.convert.hf import signature_for

        model = load_model(source.target, weights=source.weights)
        trained = self.trained(source)
        note = "" if trained else RANDOM_WEIGHTS.replace("--weights", "weights file in the folder")
        sig = signature or signature_for(model, source.dims)
        return LoadedModel(model, (), note, sig, trained)

    def contract(self, source: ModelSource, loaded: LoadedModel) -> ModelContract:
        from onnx_deploy.convert.hf import is_decoder

        base = super().contract(source, loaded)
        config = loaded.model.config
        heads = tuple(getattr(config, "architectures", None) or ())
        names = {i.name for i in base.inputs}
        roles = {n: r for n, r in INPUT_ROLES.items() if n in names}
        defaults = {n: v for n, v in INPUT_DEFAULTS.items() if n in names}
        if is_decoder(config):
            kind = {"family": "decoder", "task": "generation", "judge": "tokens"}
        elif any(h.endswith(CLASSIFIER_HEADS) for h in heads):
            kind = {"family": "classifier", "task": "classification", "judge": "top1"}
        else:
            kind = {"family": "encoder", "task": "features", "judge": "elementwise"}
        generation: dict[str, Any] = {}
        if kind["family"] == "decoder":
            gen = getattr(loaded.model, "generation_config", None)
            eos = getattr(gen, "eos_token_id", None) if gen is not None else None
            generation = {"eos_token_id": eos} if eos is not None else {}
        return replace(
            base, **kind, roles=roles | {"logits": "logits"}, defaults=defaults,
            generation=generation,
        )  # fmt: skip
