from __future__ import annotations

from pathlib import Path

import pytest
import torch

from onnx_deploy.convert.checkpoints import load_checkpoint
from onnx_deploy.core.errors import CheckpointError
from onnx_deploy.core.errors import ModelSpecError
from onnx_deploy.sources import load_model
from onnx_deploy.sources.torchvision import recalibrate_batchnorm


class Payload:
    """Any class makes a pickle that weights_only=True refuses."""

    def __init__(self) -> None:
        self.x = 1


def test_torchvision_spec_is_eval() -> None:
    m = load_model("torchvision:mobilenet_v3_small")
    assert not m.training
    assert m.classifier[-1].out_features == 1000


def test_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="not understood"):
        load_model("resnet18")
    with pytest.raises(ModelSpecError, match="no classification or detection model"):
        load_model("torchvision:resnet19")
    with pytest.raises(ModelSpecError, match="no such file"):
        load_model(f"{tmp_path}/none.py:make")
    src = tmp_path / "m.py"
    src.write_text("def notamodel():\n    return 3\n")
    with pytest.raises(ModelSpecError, match=r"not an nn\.Module"):
        load_model(f"{src}:notamodel")
    with pytest.raises(ModelSpecError, match="has no 'missing'"):
        load_model(f"{src}:missing")


def test_file_spec_with_safe_weights(tiny_source: Path, tmp_path: Path) -> None:
    a = load_model(f"{tiny_source}:tiny")
    with torch.no_grad():
        for p in a.parameters():
            p.add_(1.0)
    torch.save({"state_dict": a.state_dict()}, tmp_path / "w.pt")
    b = load_model(f"{tiny_source}:tiny", weights=tmp_path / "w.pt")
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_unsafe_checkpoint_is_refused(tiny_source: Path, tmp_path: Path) -> None:
    bad = tmp_path / "pickled.pt"
    torch.save({"state_dict": {}, "extra": Payload()}, bad)
    before = bad.read_bytes()
    with pytest.raises(CheckpointError, match="unsafe unpickling"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="unsafe unpickling"):
        load_model(f"{tiny_source}:tiny", weights=bad)
    assert bad.read_bytes() == before


def test_checkpoint_that_does_not_fit(tiny_source: Path, tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(f"{tiny_source}:tiny", weights=tmp_path / "w.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")


def test_recalibrated_batchnorm_gives_realistic_scale() -> None:
    torch.manual_seed(0)
    m = load_model("torchvision:mobilenet_v3_small")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        before = m(x).abs().max().item()
        recalibrate_batchnorm(m, (3, 224, 224), steps=2, batch_size=4)
        after = m(x).abs().max().item()
    assert not m.training
    assert before < 1e-6 < 1e-2 < after, (before, after)


def test_project_models_and_their_shapes() -> None:
    from onnx_deploy.sources import ModelSource

    loaded = ModelSource("project:shapes_detector").load()
    model, shape, note = loaded.model, loaded.sample_shape, loaded.note
    assert type(model).__name__ == "OneStageDetector" and not model.training
    assert shape == (3, 160, 160) and note == ""  # trained weights: no random-weights note
    with pytest.raises(ModelSpecError, match="no project model 'yolo'"):
        load_model("project:yolo")
