"""Models users bring, small enough for CI: each is a factory for a ``file.py:factory`` spec.

- ``image_meta``: an image and a metadata vector; its metadata branch is named ``meta``,
  which the dynamo exporter cannot export (a name torch.fx uses for itself);
- ``image_meta_renamed``: the same model with the branch renamed, the fix;
- ``two_heads``: one input, a dict of two outputs (logits and an embedding);
- ``text``: an int64-token transformer encoder with a boolean padding mask, dynamic
  batch and sequence length;
- ``segmenter``: a fully convolutional segmentation model for any image size.
"""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 1000


class ImageMeta(nn.Module):
    def __init__(self, branch: str = "meta") -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.branch = branch
        setattr(self, branch, nn.Linear(5, 8))
        self.head = nn.Linear(16, 3)

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        side = torch.relu(getattr(self, self.branch)(meta))
        return self.head(torch.cat([self.cnn(image), side], dim=1))


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 32), nn.ReLU())
        self.classify = nn.Linear(32, 5)
        self.embed = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {"logits": self.classify(h), "embedding": nn.functional.normalize(self.embed(h))}


class TextClassifier(nn.Module):
    def __init__(self, vocab: int = VOCAB, dim: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 4, 64, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``mask``: True marks padding (PyTorch's src_key_padding_mask convention)."""
        h = self.enc(self.emb(ids), src_key_padding_mask=mask)
        keep = (~mask).unsqueeze(-1).to(h.dtype)
        return self.head((h * keep).sum(1) / keep.sum(1).clamp(min=1.0))


class Segmenter(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.out = nn.Conv2d(8 + 3, classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y = self.up(self.mid(self.down(image)))
        return self.out(torch.cat([y, image], dim=1))  # needs even sizes: h, w in 2k


def _seeded(module: nn.Module) -> nn.Module:
    return module.eval()


def image_meta() -> nn.Module:
    torch.manual_seed(0)
    return _seeded(ImageMeta("meta"))


def image_meta_renamed() -> nn.Module:
    torch.manual_seed(0)
    return _seeded(ImageMeta("meta_net"))


def two_heads() -> nn.Module:
    torch.manual_seed(0)
    return _seeded(TwoHeads())


def text() -> nn.Module:
    torch.manual_seed(0)
    return _seeded(TextClassifier())


def segmenter() -> nn.Module:
    torch.manual_seed(0)
    return _seeded(Segmenter())
