"""Run an ONNX model on a CPU you do not have: an emulated x86-64 without VNNI.

INT8 accuracy depends on the instruction set (``onnx_deploy.core.cpu``): the same u8/s8 file
that is exact on a VNNI machine saturates on an AVX2-only one. The arithmetic is
deterministic, so an emulator reproduces it: QEMU's user-mode ``qemu-x86_64 -cpu
EPYC-Rome`` presents an AMD EPYC with AVX2 and no AVX-512/VNNI, ONNX Runtime picks its
AVX2 kernels there, and the digits model gives the same accuracy (97.6%), agreement
(99.1%) and max abs error (2.95) as a real AVX2-only AMD EPYC did. Timings under
emulation mean nothing; outputs are exact.

QEMU 7.2 (Debian 12's ``qemu-user`` package) emulates AVX2 but not AVX-512, so only the
``x86-no-vnni`` profile can be emulated. The run happens in a child process of this
interpreter under QEMU, with onnxruntime and numpy only (no torch), about 2 s to start::

    outputs = run_emulated("model.int8.onnx", {"input": x})

``python -m onnx_deploy.convert.emulate kernelspec DIR`` writes a Jupyter kernel that runs under
the emulator, to execute notebooks (or ``pytest --nbval``) as on an AVX2-only CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from onnx_deploy.core.cpu import EMULATED_ENV
from onnx_deploy.core.errors import EmulationError

# The QEMU CPU model for each profile of onnx_deploy.core.cpu that user-mode QEMU can present.
EMULATED_CPUS = {"x86-no-vnni": "EPYC-Rome"}
QEMU = "qemu-x86_64"
INSTALL_HINT = (
    "install QEMU's user-mode emulator: `sudo apt-get install qemu-user` (Debian/Ubuntu; "
    "`make test` does this where it runs as root)"
)
_NOISE = "TCG doesn't support requested feature"  # QEMU's notes on CPU-model flags


def emulator_command(isa: str = "x86-no-vnni") -> list[str]:
    """``[qemu-x86_64, -cpu, MODEL]``, or an ``EmulationError`` that says what to install."""
    if isa not in EMULATED_CPUS:
        raise EmulationError(
            f"cannot emulate {isa!r}: QEMU's TCG has no AVX-512/VNNI; "
            f"emulated profiles: {', '.join(EMULATED_CPUS)}"
        )
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise EmulationError(
            f"emulating x86-64 runs this interpreter under QEMU, which needs an x86-64 "
            f"Python; this one is {platform.machine()}"
        )
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise EmulationError(f"{QEMU} not found: {INSTALL_HINT}")
    return [qemu, "-cpu", EMULATED_CPUS[isa]]


def emulator_available(isa: str = "x86-no-vnni") -> bool:
    try:
        emulator_command(isa)
    except EmulationError:
        return False
    return True


def _clean(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if _NOISE not in line).strip()


def run_emulated(
    model: str | os.PathLike[str],
    feeds: Mapping[str, np.ndarray],
    isa: str = "x86-no-vnni",
    timeout: float = 600,
) -> dict[str, np.ndarray]:
    """Outputs of ``model`` on ``feeds`` (a dict of input name -> array), computed by
    ONNX Runtime's CPU provider on an emulated ``isa`` CPU.

    The child checks which INT8 profile it sees (``onnx_deploy.core.cpu``) and the run fails if
    it is not ``isa``, so a result never silently comes from the host's own kernels.
    """
    command = emulator_command(isa)
    model = Path(model)
    if not model.is_file():
        raise EmulationError(f"{model} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(inputs, **{k: np.asarray(v) for k, v in feeds.items()})
        argv = [*command, sys.executable, "-m", "onnx_deploy.convert.emulate", "_worker"]
        argv += [str(model), str(inputs), str(outputs), isa]
        try:
            env = {**os.environ, EMULATED_ENV: "1"}
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise EmulationError(f"the emulated run took longer than {timeout:.0f} s") from None
        if done.returncode != 0:
            err = _clean(done.stderr).splitlines()
            raise EmulationError(
                f"the emulated run failed ({done.returncode}): {err[-1] if err else 'no output'}"
            )
        with np.load(outputs) as npz:
            return {k: npz[k] for k in npz.files}


def _worker(model: str, inputs: str, outputs: str, isa: str) -> int:
    from onnx_deploy.core.cpu import int8_profile
    from onnx_deploy.infer.sessions import create_session

    seen = int8_profile().isa
    if seen != isa:
        print(f"the emulated CPU looks like {seen}, not {isa}", file=sys.stderr)
        return 3
    session = create_session(model, "cpu")  # CPU only: no provider probe under the emulator
    with np.load(inputs) as npz:
        feeds = {k: npz[k] for k in npz.files}
    names = [o.name for o in session.get_outputs()]
    np.savez(outputs, **dict(zip(names, session.run(names, feeds), strict=True)))
    return 0


def write_kernelspec(folder: str | os.PathLike[str], isa: str = "x86-no-vnni") -> Path:
    """A Jupyter kernel named ``onnx-deploy-<isa>`` under ``folder/kernels/`` that runs
    this interpreter under the emulator. Use it with ``JUPYTER_PATH=folder`` and
    ``--nbval-kernel-name`` / papermill's ``kernel_name``."""
    command = emulator_command(isa)
    name = f"onnx-deploy-{isa}"
    spec_dir = Path(folder) / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [*command, sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 on an emulated {isa} CPU ({EMULATED_CPUS[isa]})",
        "language": "python",
        "env": {EMULATED_ENV: "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return spec_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m onnx_deploy.convert.emulate", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("kernelspec", help="write a Jupyter kernel that runs under the emulator")
    k.add_argument("folder")
    k.add_argument("--isa", default="x86-no-vnni", choices=sorted(EMULATED_CPUS))
    w = sub.add_parser("_worker")  # internal: runs under QEMU
    for name in ("model", "inputs", "outputs", "isa"):
        w.add_argument(name)
    args = parser.parse_args(argv)
    if args.command == "_worker":
        return _worker(args.model, args.inputs, args.outputs, args.isa)
    try:
        print(write_kernelspec(args.folder, args.isa))
    except EmulationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
