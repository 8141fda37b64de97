from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from onnx_deploy.infer.compare import top1_accuracy as accuracy
from onnx_deploy.teach.digits import CHECKPOINT
from onnx_deploy.teach.digits import load_digits_model
from onnx_deploy.teach.digits import load_digits_split
from onnx_deploy.teach.digits import main
from onnx_deploy.teach.digits import train


def test_split_is_fixed_and_real() -> None:
    a, b = load_digits_split(), load_digits_split()
    assert a.x_test.shape == (450, 1, 8, 8) and a.x_train.shape == (1347, 1, 8, 8)
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    assert set(np.unique(a.y_test)) == set(range(10))


def test_shipped_checkpoint_is_trained() -> None:
    data = load_digits_split()
    model = load_digits_model()
    assert not model.training
    with torch.no_grad():
        acc = accuracy(model(torch.from_numpy(data.x_test)).numpy(), data.y_test)
    assert acc >= 0.97, acc
    assert CHECKPOINT.stat().st_size < 200_000


def test_training_reproduces_the_checkpoint_accuracy(tmp_path: Path, capsys) -> None:
    data = load_digits_split()
    shipped = load_digits_model()
    retrained = train(data, epochs=30, seed=0)
    with torch.no_grad():
        acc_shipped = accuracy(shipped(torch.from_numpy(data.x_test)).numpy(), data.y_test)
        acc_new = accuracy(retrained(torch.from_numpy(data.x_test)).numpy(), data.y_test)
    assert abs(acc_new - acc_shipped) <= 0.01
    out = tmp_path / "w.pt"
    assert main(["--output", str(out), "--epochs", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert set(torch.load(out, weights_only=True)) == set(shipped.state_dict())
