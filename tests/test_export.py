from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from onnx_deploy.convert.export import export_model
from onnx_deploy.core.errors import ExportError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.infer.modelinfo import describe
from onnx_deploy.infer.predictor import Predictor


class DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # a Python branch on a tensor's value
            return x * 2
        return x - 1


class NoOnnxOp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.kthvalue(x, 2, dim=1).values


class PinsBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.view(2, -1))  # hard-codes the batch size


def test_dynamic_batch_is_symbolic_and_runs(tiny_module, tmp_path: Path) -> None:
    res = export_model(tiny_module, torch.randn(3, 3, 16, 16), tmp_path / "m.onnx")
    assert res.exporter == "dynamo"
    assert res.opset == 20 and res.ir_version >= 8
    assert isinstance(res.inputs[0].shape[0], str)
    assert isinstance(res.outputs[0].shape[0], str)
    assert res.size_bytes == (tmp_path / "m.onnx").stat().st_size
    assert not (tmp_path / "m.onnx.data").exists(), "single file by default"
    assert res.warnings == (), f"a plain conv net exports without warnings: {res.warnings}"
    pred = Predictor(res.path, device="cpu")
    for b in (1, 5, 17):
        x = torch.randn(b, 3, 16, 16)
        np.testing.assert_allclose(pred(x.numpy()), tiny_module(x).detach().numpy(), atol=1e-5)
    json.dumps(res.to_dict())
    assert "batch" in res.summary() and "opset 20" in res.summary()


def test_batch_of_one_is_widened(tiny_module, tmp_path: Path) -> None:
    res = export_model(tiny_module, torch.randn(1, 3, 16, 16), tmp_path / "m.onnx")
    assert any("repeated to 2" in n for n in res.notes)
    assert isinstance(describe(res.path).inputs[0].shape[0], str)


def test_training_mode_warns_exports_eval_and_restores(tiny_module, tmp_path: Path) -> None:
    tiny_module.train()
    try:
        with pytest.warns(UserWarning, match="training mode"):
            res = export_model(tiny_module, torch.randn(2, 3, 16, 16), tmp_path / "m.onnx")
        assert tiny_module.training, "the caller's mode is restored"
    finally:
        tiny_module.eval()
    x = torch.randn(4, 3, 16, 16)
    onnx_out = Predictor(res.path, device="cpu")(x.numpy())
    np.testing.assert_allclose(onnx_out, tiny_module(x).detach().numpy(), atol=1e-5)
    assert "Dropout" not in describe(res.path).op_histogram


def test_data_dependent_control_flow_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export_model(DataDependent().eval(), torch.randn(2, 3), tmp_path / "m.onnx")
    msg = str(info.value)
    assert "data-dependent control flow" in msg
    assert "test_export.py" in msg and "x.sum() > 0" in msg
    assert "torch.cond" in msg and "torch.where" in msg
    assert info.value.details, "the exporter's full report is kept"
    assert not (tmp_path / "m.onnx").exists()
    assert list(tmp_path.iterdir()) == [], "no temporary files left behind"


def test_unsupported_operator_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"aten\.kthvalue has no ONNX translation") as info:
        export_model(NoOnnxOp().eval(), torch.randn(2, 4), tmp_path / "m.onnx")
    assert "custom_translation_table" in str(info.value)


def test_pinned_batch_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"flatten\(1\)"):
        export_model(PinsBatch().eval(), torch.randn(2, 3, 4), tmp_path / "m.onnx")
    # A static export of the same model works.
    res = export_model(
        PinsBatch().eval(), torch.randn(2, 3, 4), tmp_path / "m.onnx", dynamic_batch=False
    )
    assert res.inputs[0].shape == (2, 3, 4)


def test_existing_output_is_not_overwritten(tiny_module, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        export_model(tiny_module, torch.randn(2, 3, 16, 16), out)
    assert out.read_bytes() == b"keep me"
    export_model(tiny_module, torch.randn(2, 3, 16, 16), out, force=True)
    assert describe(out).num_nodes > 0


def test_torchscript_exporter(tiny_module, tmp_path: Path) -> None:
    res = export_model(
        tiny_module, torch.randn(2, 3, 16, 16), tmp_path / "ts.onnx", exporter="torchscript"
    )
    assert res.exporter == "torchscript"
    assert res.inputs[0].name == "input" and res.outputs[0].name == "output"
    assert isinstance(res.inputs[0].shape[0], str)


def test_bad_arguments(tiny_module, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="opset 11 is too old"):
        export_model(tiny_module, torch.randn(2, 3, 16, 16), tmp_path / "m.onnx", opset=11)
    with pytest.raises(ExportError, match=r"nn\.Module"):
        export_model(lambda x: x, torch.randn(2, 3), tmp_path / "m.onnx")  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="a tensor, a tuple of tensors or a dict"):
        export_model(tiny_module, np.zeros((2, 3, 16, 16)), tmp_path / "m.onnx")


def test_external_data_moves_with_the_model(tiny_module, tmp_path: Path) -> None:
    res = export_model(
        tiny_module, torch.randn(2, 3, 16, 16), tmp_path / "ext.onnx", external_data=True
    )
    assert res.external_data
    assert (tmp_path / "ext.onnx.data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", "ext.onnx.data"]
    assert Predictor(res.path, device="cpu")(np.zeros((2, 3, 16, 16), np.float32)).shape == (2, 5)


def test_numpy_strides_do_not_change_the_graph(tmp_path: Path) -> None:
    """images[:, None] from numpy has odd strides; the raw exporter emits extra nodes."""
    from onnx_deploy.teach.digits import load_digits_model
    from onnx_deploy.teach.digits import load_digits_split

    model = load_digits_model()
    odd = torch.from_numpy(load_digits_split().x_test[:2])
    assert odd.stride()[1] != 64  # the size-1 channel axis does not have the dense stride
    res = export_model(model, odd, tmp_path / "m.onnx")
    ref = export_model(model, torch.zeros(2, 1, 8, 8), tmp_path / "ref.onnx")
    assert res.num_nodes == ref.num_nodes
    assert "Gather" not in describe(res.path).op_histogram


class _Warns(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import warnings

        warnings.warn("this layer is deprecated", DeprecationWarning, stacklevel=1)
        return x * 2


def test_exporter_warnings_are_collected(tmp_path: Path) -> None:
    res = export_model(_Warns().eval(), torch.randn(2, 3), tmp_path / "w.onnx")
    assert any("DeprecationWarning: this layer is deprecated" in w for w in res.warnings)
    assert "exporter warning(s)" in res.summary()


def test_exporter_messages_are_cleaned_and_their_cause_surfaced() -> None:
    from onnx_deploy.convert.export import clean
    from onnx_deploy.convert.export import exception_summary
    from onnx_deploy.convert.export import explain_failure

    raw = (
        "Failed to export the model with torch.export. \x1b[96mThis is step 1/3\x1b[0m of "
        "exporting the model to ONNX. Next steps:\n- Modify the model code\n\n"
        "## Exception summary\n\n<class 'torch._dynamo.exc.Unsupported'>: something odd "
        "happened in forward\n\n(Refer to the full stack trace above for more information.)"
    )
    assert "\x1b" not in clean(raw)
    assert exception_summary(clean(raw)) == "Unsupported: something odd happened in forward"
    err = explain_failure(RuntimeError(raw), "")
    assert err.step == 1 and err.kind == "other" and "\x1b" not in str(err)
    assert "step 1/3: torch.export could not capture the model" in str(err)
    assert "Unsupported: something odd happened in forward" in str(err)
    assert "Next steps:." not in str(err)


class _TakesObject(nn.Module):
    def forward(self, x: torch.Tensor, cfg: object) -> torch.Tensor:
        return x * 2


def test_unsupported_input_type_is_explained(tmp_path: Path) -> None:
    class Cfg:
        pass

    with pytest.raises(ExportError, match="an input of type Cfg cannot be exported") as info:
        export_model(_TakesObject().eval(), (torch.randn(2, 3), Cfg()), tmp_path / "m.onnx")
    assert info.value.kind == "input_type" and "register_dataclass" in str(info.value)


def test_data_dependent_models_do_not_fall_back(tmp_path: Path) -> None:
    """TorchScript would trace one branch and bake it in: a wrong graph."""
    with pytest.raises(ExportError, match="data-dependent"):
        export_model(DataDependent().eval(), torch.randn(2, 3), tmp_path / "m.onnx", fallback=True)
    assert not (tmp_path / "m.onnx").exists()


def test_stack_traces_carry_no_machine_paths(tiny_module, tmp_path: Path) -> None:
    """torch writes each node's Python stack trace with absolute paths; the shipped file
    keeps the traces (they say which line made a node) but not this machine's folders, so
    the same export is the same bytes in CI's folder and in the learner's."""
    import re

    import onnx

    from onnx_deploy.core.contract import STACK_TRACE_KEY

    res = export_model(tiny_module, torch.randn(3, 3, 16, 16), tmp_path / "m.onnx")
    traces = [
        p.value
        for n in onnx.load(res.path).graph.node
        for p in n.metadata_props
        if p.key == STACK_TRACE_KEY
    ]
    files = [f for t in traces for f in re.findall(r'File "([^"]+)"', t)]
    assert files, "the exporter wrote stack traces to check"
    assert not [f for f in files if f.startswith("/")], files
    assert any(f.startswith("torch/") for f in files), files
