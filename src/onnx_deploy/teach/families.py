"""Tiny Hugging Face models across the families people deploy, as ``save_pretrained`` folders.

Each entry of ``FAMILIES`` is one architecture (the class ``config.architectures`` names)
with a config small enough to export in seconds: two layers, a hidden size of 32, a short
position table, small images and short audio. Weights are random (built from the config
with a fixed seed), which is what an export's correctness check needs: PyTorch and ONNX
Runtime on the same inputs. ``save_family(name, folder)`` writes the folder that
``export hf:FOLDER`` takes; ``SUBSET`` is the eleven that ``make test`` runs (one per
task but causal LMs), ``make test-families`` runs them all.

Where a family cannot pass, ``Family.reason`` says why; the check expects it to fail.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

# the sizes every text config shares (small: a family exports in seconds)
VOCAB = 99
TEXT = {"vocab_size": VOCAB, "max_position_embeddings": 64}
BERTLIKE = TEXT | {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 37,
}  # fmt: skip
DECODER = TEXT | {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 37, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
}  # fmt: skip
BART = TEXT | {
    "d_model": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 2,
    "decoder_attention_heads": 2, "encoder_ffn_dim": 37, "decoder_ffn_dim": 37,
}  # fmt: skip
WAV2VEC2 = {
    "vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 37, "conv_dim": (16, 16, 16), "conv_stride": (5, 2, 2),
    "conv_kernel": (10, 3, 3), "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 2,
}  # fmt: skip
WHISPER = {
    "vocab_size": VOCAB, "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
    "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 37,
    "decoder_ffn_dim": 37, "num_mel_bins": 16, "max_source_positions": 50,
    "max_target_positions": 40, "decoder_start_token_id": 3, "pad_token_id": 0,
    "bos_token_id": 1, "eos_token_id": 2,
}  # fmt: skip
VISION = {"image_size": 32, "num_channels": 3}
VIT = VISION | {
    "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 37,
}  # fmt: skip


@dataclass(frozen=True)
class Family:
    """One architecture: its task, its class, its config class and the config's sizes."""

    name: str
    task: str
    model_class: str
    config_class: str
    config: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why it cannot pass, where it cannot (the check expects a failure)

    def build(self) -> Any:
        """The model, with random weights from a fixed seed."""
        import torch
        import transformers

        config = getattr(transformers, self.config_class)(**self.config)
        config.architectures = [self.model_class]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return getattr(transformers, self.model_class)(config).eval()


def _f(name: str, task: str, model: str, config: str, reason: str = "", **sizes: Any) -> Family:
    return Family(name, task, model, config, sizes, reason)


FAMILIES: tuple[Family, ...] = (
    # sequence classification
    _f("bert", "sequence-classification", "BertForSequenceClassification", "BertConfig", **BERTLIKE),
    _f("distilbert", "sequence-classification", "DistilBertForSequenceClassification",
       "DistilBertConfig", vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=37,
       max_position_embeddings=64),
    _f("albert", "sequence-classification", "AlbertForSequenceClassification", "AlbertConfig",
       embedding_size=16, **BERTLIKE),
    _f("deberta-v2", "sequence-classification", "DebertaV2ForSequenceClassification",
       "DebertaV2Config", **BERTLIKE),
    _f("bart-classifier", "sequence-classification", "BartForSequenceClassification",
       "BartConfig", **BART),
    _f("modernbert", "sequence-classification", "ModernBertForSequenceClassification",
       "ModernBertConfig", global_attn_every_n_layers=2, local_attention=16, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2, **BERTLIKE),
    _f("camembert", "sequence-classification", "CamembertForSequenceClassification",
       "CamembertConfig", **BERTLIKE),
    _f("bigbird", "sequence-classification", "BigBirdForSequenceClassification", "BigBirdConfig",
       attention_type="original_full", **BERTLIKE),
    _f("data2vec-text", "sequence-classification", "Data2VecTextForSequenceClassification",
       "Data2VecTextConfig", **BERTLIKE),
    _f("funnel", "sequence-classification", "FunnelForSequenceClassification", "FunnelConfig",
       "the exporter fixes seq at the example's length: Funnel's pooling reads the length as a "
       "Python int", vocab_size=VOCAB, block_sizes=[1, 1], d_model=32, n_head=2, d_head=16,
       d_inner=37),
    # token classification, question answering
    _f("roberta-tokens", "token-classification", "RobertaForTokenClassification",
       "RobertaConfig", **BERTLIKE),
    _f("electra-tokens", "token-classification", "ElectraForTokenClassification",
       "ElectraConfig", embedding_size=16, **BERTLIKE),
    _f("convbert-tokens", "token-classification", "ConvBertForTokenClassification",
       "ConvBertConfig", embedding_size=32, **BERTLIKE),
    _f("esm-tokens", "token-classification", "EsmForTokenClassification", "EsmConfig",
       pad_token_id=1, mask_token_id=2, **BERTLIKE),
    _f("xlm-roberta-qa", "question-answering", "XLMRobertaForQuestionAnswering",
       "XLMRobertaConfig", **BERTLIKE),
    _f("distilbert-qa", "question-answering", "DistilBertForQuestionAnswering",
       "DistilBertConfig", vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=37,
       max_position_embeddings=64),
    # masked LM
    _f("bert-mlm", "masked-lm", "BertForMaskedLM", "BertConfig", **BERTLIKE),
    _f("mpnet-mlm", "masked-lm", "MPNetForMaskedLM", "MPNetConfig", **BERTLIKE),
    _f("roberta-mlm", "masked-lm", "RobertaForMaskedLM", "RobertaConfig", **BERTLIKE),
    # causal LM (exported with the KV cache)
    _f("gpt2", "causal-lm", "GPT2LMHeadModel", "GPT2Config", vocab_size=VOCAB, n_embd=32,
       n_layer=2, n_head=2, n_positions=64, bos_token_id=1, eos_token_id=2),
    _f("llama", "causal-lm", "LlamaForCausalLM", "LlamaConfig", num_key_value_heads=2,
       **DECODER),
    _f("qwen2", "causal-lm", "Qwen2ForCausalLM", "Qwen2Config", num_key_value_heads=2,
       **DECODER),
    _f("mistral", "causal-lm", "MistralForCausalLM", "MistralConfig", num_key_value_heads=2,
       sliding_window=None, **DECODER),
    _f("phi", "causal-lm", "PhiForCausalLM", "PhiConfig", **DECODER),
    _f("gpt-neox", "causal-lm", "GPTNeoXForCausalLM", "GPTNeoXConfig", **DECODER),
    _f("opt", "causal-lm", "OPTForCausalLM", "OPTConfig", vocab_size=VOCAB,
       max_position_embeddings=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
       ffn_dim=37, word_embed_proj_dim=32, bos_token_id=1, eos_token_id=2, pad_token_id=0),
    _f("gemma", "causal-lm", "GemmaForCausalLM", "GemmaConfig", num_key_value_heads=2,
       head_dim=8, **DECODER),
    # sequence to sequence (one pass: encoder and decoder, teacher-forced)
    _f("t5", "seq2seq", "T5ForConditionalGeneration", "T5Config", vocab_size=VOCAB,
       d_model=32, d_kv=16, d_ff=37, num_layers=2, num_heads=2, decoder_start_token_id=0,
       pad_token_id=0, eos_token_id=1),
    _f("bart", "seq2seq", "BartForConditionalGeneration", "BartConfig", **BART),
    _f("marian", "seq2seq", "MarianMTModel", "MarianConfig", decoder_start_token_id=0,
       pad_token_id=0, eos_token_id=2, **BART),
    _f("mbart", "seq2seq", "MBartForConditionalGeneration", "MBartConfig", **BART),
    _f("pegasus", "seq2seq", "PegasusForConditionalGeneration", "PegasusConfig",
       decoder_start_token_id=0, **BART),
    _f("m2m100", "seq2seq", "M2M100ForConditionalGeneration", "M2M100Config",
       decoder_start_token_id=2, **BART),
    _f("blenderbot-small", "seq2seq", "BlenderbotSmallForConditionalGeneration",
       "BlenderbotSmallConfig", decoder_start_token_id=1, **BART),
    # image classification, segmentation, detection
    _f("vit", "image-classification", "ViTForImageClassification", "ViTConfig", **VIT),
    _f("deit", "image-classification", "DeiTForImageClassification", "DeiTConfig", **VIT),
    _f("beit", "image-classification", "BeitForImageClassification", "BeitConfig", **VIT),
    _f("dinov2", "image-classification", "Dinov2ForImageClassification", "Dinov2Config", **VIT),
    _f("mobilenet-v2", "image-classification", "MobileNetV2ForImageClassification",
       "MobileNetV2Config", image_size=32, depth_multiplier=0.25),
    _f("resnet", "image-classification", "ResNetForImageClassification", "ResNetConfig",
       embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1]),
    _f("convnext", "image-classification", "ConvNextForImageClassification", "ConvNextConfig",
       hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=32),
    _f("swin", "image-classification", "SwinForImageClassification", "SwinConfig",
       image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
       window_size=4),
    _f("mobilevit", "image-classification", "MobileViTForImageClassification",
       "MobileViTConfig", image_size=32, patch_size=2, hidden_sizes=[16, 24, 32],
       neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 48], num_attention_heads=2),
    _f("segformer", "semantic-segmentation", "SegformerForSemanticSegmentation",
       "SegformerConfig", image_size=32, num_encoder_blocks=2, depths=[1, 1],
       sr_ratios=[2, 1], hidden_sizes=[16, 32], num_attention_heads=[1, 2],
       decoder_hidden_size=32, patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2]),
    _f("yolos", "object-detection", "YolosForObjectDetection", "YolosConfig",
       image_size=[32, 32], patch_size=8, hidden_size=32, num_hidden_layers=2,
       num_attention_heads=2, intermediate_size=37, num_detection_tokens=5),
    _f("detr", "object-detection", "DetrForObjectDetection", "DetrConfig",
       use_timm_backbone=False, use_pretrained_backbone=False, backbone_config={
           "model_type": "resnet", "embedding_size": 16, "hidden_sizes": [16, 32],
           "depths": [1, 1], "out_features": ["stage2"]},
       d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
       decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, num_queries=5),
    # audio: CTC, classification, speech to text
    _f("wav2vec2-ctc", "ctc", "Wav2Vec2ForCTC", "Wav2Vec2Config", **WAV2VEC2),
    _f("hubert-ctc", "ctc", "HubertForCTC", "HubertConfig", **WAV2VEC2),
    _f("wavlm-ctc", "ctc", "WavLMForCTC", "WavLMConfig", **WAV2VEC2),
    _f("data2vec-audio-ctc", "ctc", "Data2VecAudioForCTC", "Data2VecAudioConfig", **WAV2VEC2),
    _f("sew-ctc", "ctc", "SEWForCTC", "SEWConfig", **WAV2VEC2),
    _f("unispeech-sat-audio", "audio-classification", "UniSpeechSatForSequenceClassification",
       "UniSpeechSatConfig", **WAV2VEC2),
    _f("wav2vec2-audio", "audio-classification", "Wav2Vec2ForSequenceClassification",
       "Wav2Vec2Config", **WAV2VEC2),
    _f("whisper-audio", "audio-classification", "WhisperForAudioClassification",
       "WhisperConfig", **WHISPER),
    _f("ast-audio", "audio-classification", "ASTForAudioClassification", "ASTConfig",
       hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
       patch_size=8, frequency_stride=8, time_stride=8, max_length=32, num_mel_bins=16),
    _f("whisper", "speech-seq2seq", "WhisperForConditionalGeneration", "WhisperConfig",
       **WHISPER),
    _f("speech2text", "speech-seq2seq", "Speech2TextForConditionalGeneration",
       "Speech2TextConfig", input_feat_per_channel=16, input_channels=1, conv_channels=16,
       max_source_positions=64, max_target_positions=64, **BART),
)  # fmt: skip

# one per task but causal LMs (tests/test_hf.py generates with GPT-2 and Llama), the ones
# ``make test`` runs; ``make test-families`` runs all
SUBSET = (
    "bart-classifier", "roberta-tokens", "xlm-roberta-qa", "mpnet-mlm", "t5", "vit",
    "segformer", "yolos", "wav2vec2-ctc", "whisper-audio", "whisper",
)  # fmt: skip


def family(name: str) -> Family:
    for f in FAMILIES:
        if f.name == name:
            return f
    raise KeyError(f"no family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def save_family(name: str, folder: str | os.PathLike[str]) -> str:
    """Build ``name``'s tiny model and ``save_pretrained`` it into ``folder``; the spec
    (``hf:FOLDER``) that ``export`` takes."""
    model = family(name).build()
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    save_feature_extractor(model, folder)
    return f"hf:{folder}"


def save_feature_extractor(model: Any, folder: str | os.PathLike[str]) -> None:
    """A Whisper model's feature extractor (``preprocessor_config.json``), sized for its
    config: ``num_mel_bins`` filters, and a window of ``2 x max_source_positions`` frames
    of 10 ms (Whisper's 30 s for 1500 positions; a tiny config's 1 s for 50). Other
    models: nothing."""
    import transformers

    config = model.config
    if config.model_type != "whisper":
        return
    frames = 2 * int(config.max_source_positions)
    seconds, rest = divmod(frames * 160, 16_000)
    if rest:
        raise ValueError(f"{frames} frames of 10 ms are not whole seconds of audio")
    transformers.WhisperFeatureExtractor(
        feature_size=int(config.num_mel_bins), chunk_length=seconds
    ).save_pretrained(folder)
