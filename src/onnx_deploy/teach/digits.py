"""A small CNN trained on real data that ships with scikit-learn, for accuracy questions.

Random-weight torchvision models are fine for export and speed studies but say nothing
about accuracy. ``sklearn.datasets.load_digits`` holds 1,797 real 8x8 handwritten digits
and needs no download, so the package ships a small CNN trained on it (checkpoint in
``onnx_deploy/data/digits_cnn.pt``, loaded with ``torch.load(weights_only=True)``).

Retrain it reproducibly (about 10 s on 2 cores)::

    python -m onnx_deploy.teach.digits --output src/onnx_deploy/data/digits_cnn.pt --force
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from onnx_deploy.core.extras import require
from onnx_deploy.core.files import PACKAGE_DATA
from onnx_deploy.infer.compare import top1_accuracy

torch = require("torch", "onnx_deploy.teach.digits (the digits CNN)")
nn = torch.nn

CHECKPOINT = PACKAGE_DATA / "digits_cnn.pt"
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10
SPLIT_SEED = 0


class DigitsCNN(nn.Module):
    """Three conv blocks with batch norm, global pooling, dropout and a linear head."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.features = nn.Sequential(
            block(1, 16), block(16, 32), nn.MaxPool2d(2), block(32, 64), nn.AdaptiveAvgPool2d(1)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class DigitsData:
    """Images as float32 (N, 1, 8, 8) scaled to [0, 1]; labels as int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_fraction: float = 0.25, seed: int = SPLIT_SEED) -> DigitsData:
    """The fixed, stratified train/test split every notebook and test uses."""
    load_digits = require("sklearn.datasets", "the digits dataset").load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return DigitsData(x_tr, y_tr, x_te, y_te)


def load_digits_model(checkpoint: str | Path = CHECKPOINT) -> DigitsCNN:
    """The shipped, trained CNN in eval mode (weights only, no pickled code)."""
    from onnx_deploy.convert.checkpoints import apply_checkpoint

    return apply_checkpoint(DigitsCNN(), checkpoint).eval()


def train(
    data: DigitsData | None = None, epochs: int = 30, seed: int = 0, lr: float = 3e-3
) -> DigitsCNN:
    """Train from scratch, deterministically on the CPU."""
    data = data or load_digits_split()
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * ((len(data.x_train) + 63) // 64)
    )
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(64):
            # light augmentation: shift by up to one pixel
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(x[idx], shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    from onnx_deploy.convert.checkpoints import train_command

    def fit(epochs: int, seed: int) -> tuple[DigitsCNN, str]:
        data = load_digits_split()
        model = train(data, epochs=epochs, seed=seed)
        with torch.no_grad():
            acc = top1_accuracy(model(torch.from_numpy(data.x_test)).numpy(), data.y_test)
        return model, f"test accuracy {100 * acc:.2f}% on {len(data.y_test)} images"

    return train_command(
        argv, description="Train the digits CNN and save its state dict.",
        checkpoint=CHECKPOINT, epochs=30, fit=fit,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
