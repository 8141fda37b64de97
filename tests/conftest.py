"""Shared fixtures: a tiny CNN exported once per session, so tests stay fast."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# `make test` runs the unit tests in two pytest-xdist workers on a 2-core machine. PyTorch's
# OpenMP threads wait for each other by spinning: two workers with two threads each made the
# tests that train a model about 3x slower (notebooks/MEASUREMENTS.md, "The test command's
# time"). Each worker, and every command it starts, runs PyTorch on one thread instead.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_MODEL_SOURCE = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """A small classifier with the layers that matter for export: conv, BN, dropout."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(self.drop(x.mean(dim=(2, 3))))


def tiny(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return TinyNet(num_classes)
'''

INPUT_SHAPE = (3, 16, 16)


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "tiny_model.py"
    path.write_text(TINY_MODEL_SOURCE)
    return path


@pytest.fixture(scope="session")
def tiny_module(tiny_source: Path):
    from onnx_deploy.sources import load_model

    return load_model(f"{tiny_source}:tiny")


@pytest.fixture(scope="session")
def tiny_onnx_session(tmp_path_factory: pytest.TempPathFactory, tiny_module) -> Path:
    import torch

    from onnx_deploy.convert.export import export_model

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_model(tiny_module, torch.randn(2, *INPUT_SHAPE), out)
    return out


@pytest.fixture
def tiny_onnx(tiny_onnx_session: Path, tmp_path: Path) -> Path:
    """A private copy per test, so a test may damage or overwrite it."""
    dst = tmp_path / "tiny.onnx"
    shutil.copy(tiny_onnx_session, dst)
    return dst
