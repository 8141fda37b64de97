from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from onnx_deploy.convert.verify import compare_torch_onnx
from onnx_deploy.convert.verify import intermediate_differences
from onnx_deploy.core.errors import ValidationError
from onnx_deploy.infer.compare import PRESETS
from onnx_deploy.infer.compare import Tolerance
from onnx_deploy.infer.compare import compare_onnx
from onnx_deploy.infer.compare import compare_outputs
from onnx_deploy.infer.compare import get_tolerance

RNG = np.random.default_rng(0)


def test_identical_arrays_pass() -> None:
    a = RNG.standard_normal((8, 10)).astype(np.float32)
    c = compare_outputs("logits", [a], [a.copy()], PRESETS["fp32"])
    assert (
        c.ok and c.max_abs == 0 and c.min_cosine == pytest.approx(1.0) and c.top1_agreement == 1.0
    )


def test_elementwise_tolerance_fails_with_count() -> None:
    a = RNG.standard_normal((4, 10))
    b = a.copy()
    b[0, 0] += 0.5
    c = compare_outputs("y", [a], [b], PRESETS["fp32"])
    assert not c.ok
    assert "1 of 40 values beyond atol" in c.reason
    assert c.max_abs == pytest.approx(0.5)


def test_top1_and_cosine_for_int8() -> None:
    a = np.tile(np.arange(10.0), (10, 1))
    b = a.copy()
    b[:2, 0] = 100.0  # two of ten rows change their arg-max
    c = compare_outputs("y", [a], [b], PRESETS["int8"])
    assert c.top1_agreement == pytest.approx(0.8)
    assert not c.ok and "top-1 agreement 80.0% < 90.0%" in c.reason and "cosine" in c.reason


def test_shape_mismatch_and_nan() -> None:
    a = np.zeros((2, 3))
    assert "shape" in compare_outputs("y", [a], [np.zeros((2, 4))], PRESETS["fp32"]).reason
    b = a.copy()
    b[0, 0] = np.nan
    assert "NaN" in compare_outputs("y", [a], [b], PRESETS["fp32"]).reason


def test_presets_and_custom() -> None:
    assert get_tolerance("fp16").atol == 1e-2
    custom = Tolerance("loose", atol=1.0, rtol=0.0, min_cosine=None, min_top1=None)
    assert get_tolerance(custom) is custom
    with pytest.raises(ValueError, match="unknown precision"):
        get_tolerance("int4")


def test_torch_vs_onnx_passes(tiny_module, tiny_onnx: Path) -> None:
    report = compare_torch_onnx(tiny_module, tiny_onnx, batch_sizes=(1, 3, 8))
    assert report.ok, report.summary()
    assert report.batch_sizes == (1, 3, 8) and report.num_samples == 12
    assert set(report.max_abs_by_batch) == {1, 3, 8}
    assert report.max_abs < 1e-4
    assert report.raise_for_mismatch() is report
    assert "PASS" in report.summary()
    assert report.to_dict()["ok"] is True


def test_a_loading_reference_is_built_once_and_freed_before_the_candidate_runs(
    tiny_module, tiny_onnx: Path
) -> None:
    """``validate --reference SPEC``: the PyTorch model is built when compare runs it and
    freed before ONNX Runtime runs, so a model of N bytes is held once (the 600M decoder
    peaked at 4.4x its file with both in memory)."""
    import copy
    import weakref

    from onnx_deploy.convert.runners.pytorch import TorchRunner
    from onnx_deploy.infer.compare import compare
    from onnx_deploy.infer.compare import onnx_runner

    built: list[weakref.ref] = []
    alive_when_onnx_ran: list[bool] = []

    def load() -> torch.nn.Module:
        module = copy.deepcopy(tiny_module)
        built.append(weakref.ref(module))
        return module

    candidate = onnx_runner(str(tiny_onnx), "cpu")
    infer = candidate._infer

    def watched(feeds):
        alive_when_onnx_ran.append(built[-1]() is not None)
        return infer(feeds)

    candidate._infer = watched
    ref = TorchRunner.loading(load, candidate.inputs, candidate.output_names)
    report = compare(ref, candidate, batch_sizes=(1, 4))
    assert report.ok and len(built) == 1 and ref.name == "torch:TinyNet"
    assert alive_when_onnx_ran == [False, False] and built[0]() is None


def test_compare_onnx_holds_one_session_at_a_time(tiny_onnx: Path, monkeypatch) -> None:
    """Both files' sessions open at once held a model of N bytes twice (fuse on the 600M
    decoder peaked at 4.0x its file): each runner is opened to read its inputs, closed,
    and opened again only while it runs."""
    import weakref

    from onnx_deploy.infer import sessions

    made: list[weakref.ref] = []
    create = sessions.create_session

    def counted(*args, **kwargs):
        session = create(*args, **kwargs)
        made.append(weakref.ref(session))
        most[0] = max(most[0], sum(r() is not None for r in made))
        return session

    most = [0]
    from onnx_deploy.infer.runners import onnxrt

    monkeypatch.setattr(onnxrt, "create_session", counted)
    report = compare_onnx(tiny_onnx, tiny_onnx, batch_sizes=(1, 2))
    assert report.ok and most[0] == 1, f"{most[0]} sessions open at once"


def test_real_inputs_are_used(tiny_module, tiny_onnx: Path) -> None:
    batches = [np.full((2, 3, 16, 16), v, np.float32) for v in (0.0, 1.0)]
    report = compare_torch_onnx(tiny_module, tiny_onnx, inputs=batches)
    assert report.ok and report.num_samples == 4


def _perturbed(src: Path, dst: Path) -> Path:
    model = onnx.load(str(src))
    init = next(i for i in model.graph.initializer if numpy_helper.to_array(i).ndim == 2)
    arr = numpy_helper.to_array(init).copy()
    arr[0] += 1.0  # change one output row's weights: a "wrong graph"
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(dst))
    return dst


def test_a_wrong_graph_is_caught(tiny_module, tiny_onnx: Path, tmp_path: Path) -> None:
    bad = _perturbed(tiny_onnx, tmp_path / "bad.onnx")
    report = compare_torch_onnx(tiny_module, bad)
    assert not report.ok
    with pytest.raises(ValidationError, match="FAIL"):
        report.raise_for_mismatch()
    assert not compare_onnx(tiny_onnx, bad).ok
    assert compare_onnx(tiny_onnx, tiny_onnx).ok


def test_trivial_scale_is_flagged(tmp_path: Path) -> None:
    from onnx_deploy.convert.export import export_model

    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1e-9

    export_model(Tiny().eval(), torch.randn(2, 4), tmp_path / "t.onnx")
    report = compare_torch_onnx(Tiny().eval(), tmp_path / "t.onnx")
    assert report.ok
    assert "proves little" in report.summary()


class _ConvHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_intermediate_differences(tmp_path: Path) -> None:
    import onnx_ir as ir

    from onnx_deploy.convert.export import export_model

    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    res = export_model(_ConvHead().eval(), x, tmp_path / "m.onnx")
    ranked = intermediate_differences(res.program, x, top=3)
    assert len(ranked) == 3 and ranked == sorted(ranked, key=lambda t: -t[1])
    assert ranked[0][1] < 1e-5, f"a correct export matches everywhere: {ranked}"
    # Break the exported graph after the conv: the verifier must point at the linear layer.
    bias = res.program.model.graph.initializers["fc.bias"]
    bias.const_value = ir.tensor(bias.const_value.numpy() + 1.0)
    broken = dict(intermediate_differences(res.program, x, top=10))
    assert max(broken, key=broken.get) == "linear"
    assert broken["linear"] == pytest.approx(1.0, abs=1e-4) and broken["conv2d"] < 1e-5
    with pytest.raises(ValidationError):
        intermediate_differences(None, x)
