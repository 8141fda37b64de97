"""INT8 on a CPU without VNNI, checked on any x86 machine through QEMU's emulated AVX2 CPU.

The arithmetic is deterministic, so the emulated EPYC-Rome reproduces what a real AVX2-only
AMD EPYC computes (the digits figures matched to every printed digit). On a VNNI machine
this is the only test that exercises the AVX2 kernels; it skips, saying what to install,
where QEMU is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from onnx_deploy.convert import emulate
from onnx_deploy.convert.emulate import EmulationError
from onnx_deploy.convert.emulate import emulator_available
from onnx_deploy.convert.emulate import emulator_command
from onnx_deploy.convert.emulate import run_emulated
from onnx_deploy.convert.emulate import write_kernelspec
from onnx_deploy.convert.export import export_model
from onnx_deploy.convert.quantize import QuantizationWarning
from onnx_deploy.convert.quantize import quantize_static_model
from onnx_deploy.teach.digits import load_digits_model
from onnx_deploy.teach.digits import load_digits_split

needs_qemu = pytest.mark.skipif(
    not emulator_available(),
    reason=f"no x86-64 emulator: {emulate.INSTALL_HINT}",
)


def test_missing_emulator_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EmulationError, match="apt-get install qemu-user"):
        emulator_command()
    assert not emulator_available()
    with pytest.raises(EmulationError, match="no AVX-512/VNNI"):
        emulator_command("x86-vnni")


def test_kernelspec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/qemu-x86_64")
    monkeypatch.setattr(emulate.platform, "machine", lambda: "x86_64")
    spec = json.loads((write_kernelspec(tmp_path) / "kernel.json").read_text())
    assert spec["argv"][:3] == ["/usr/bin/qemu-x86_64", "-cpu", "EPYC-Rome"]
    assert "{connection_file}" in spec["argv"]


@needs_qemu
def test_saturation_on_an_emulated_avx2_cpu_and_the_per_isa_fix(tmp_path: Path) -> None:
    data = load_digits_split()
    fp32 = export_model(load_digits_model(), torch.zeros(2, 1, 8, 8), tmp_path / "d.onnx").path
    with pytest.warns(QuantizationWarning, match="saturate"):
        plain = quantize_static_model(
            fp32, tmp_path / "plain.onnx", data.x_train, calibration_size=200,
            reduce_range=False, target_isa="x86-no-vnni", validate=False,
        )  # fmt: skip
    fixed = quantize_static_model(
        fp32, tmp_path / "fixed.onnx", data.x_train, calibration_size=200,
        target_isa="x86-no-vnni", validate=False,
    )  # fmt: skip
    assert fixed.types.reduce_range and not fixed.types.saturates
    import onnxruntime as ort

    name = ort.InferenceSession(fp32).get_inputs()[0].name
    feeds = {name: data.x_test}
    ref = next(iter(run_emulated(fp32, feeds).values()))
    native = ort.InferenceSession(fp32).run(None, feeds)[0]
    np.testing.assert_allclose(ref, native, atol=1e-4)  # FP32 agrees across ISAs

    def score(path: str) -> tuple[float, float, float]:
        out = next(iter(run_emulated(path, feeds).values()))
        return (
            float((out.argmax(1) == ref.argmax(1)).mean()),
            float((out.argmax(1) == data.y_test).mean()),
            float(np.abs(out - ref).max()),
        )

    fp32_acc = float((ref.argmax(1) == data.y_test).mean())
    agree, acc, max_abs = score(plain.output_path)
    # the saturation is reproduced (measured: 99.1% agreement, 97.6%, max abs 2.95) ...
    assert agree < 0.995 and max_abs > 1.0 and acc < fp32_acc
    # ... and the per-ISA choice removes it (measured: 99.6%, 98.2%, 0.55)
    agree, acc, max_abs = score(fixed.output_path)
    assert agree >= 0.99 and fp32_acc - acc <= 0.005 and max_abs < 1.0


def test_emulated_run_refuses_a_missing_model(tmp_path: Path) -> None:
    if not emulator_available():
        with pytest.raises(EmulationError, match="qemu"):
            run_emulated(tmp_path / "none.onnx", {})
    else:
        with pytest.raises(EmulationError, match="does not exist"):
            run_emulated(tmp_path / "none.onnx", {})
