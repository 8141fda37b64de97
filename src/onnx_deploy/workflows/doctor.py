"""What this machine can really do: versions, working providers, GPU, TensorRT, INT8 CPU features."""

from __future__ import annotations

import importlib
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from onnx_deploy.core.cpu import cpu_info
from onnx_deploy.core.cpu import int8_profile
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.extras import install_hint
from onnx_deploy.core.extras import onnxruntime_wheel
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table
from onnx_deploy.infer.bench import package_version

ORT_WHEELS = ("onnxruntime-gpu", "onnxruntime")  # one module, two wheels: never both
PACKAGES = (
    "torch",
    "torchvision",
    "onnx",
    "onnxscript",
    "onnx-ir",
    "onnxslim",
    *ORT_WHEELS,
    "numpy",
    "matplotlib",
    "openvino",
)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn", "missing", "info"
    detail: str


@dataclass(frozen=True)
class DoctorReport(Result):
    COMPUTED = ("ok",)

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != "error" for c in self.checks)

    def summary(self) -> str:
        width = max(len(c.name) for c in self.checks)
        rows = [(c.status, c.name, c.detail) for c in self.checks]
        table = format_table(("", "", ""), rows, widths=(8, width + 2, None), sep="")
        return table.split("\n", 1)[1]  # no header

    def to_dict(self) -> dict[str, Any]:
        return {c.name: {"status": c.status, "detail": c.detail} for c in self.checks} | {
            "ok": self.ok
        }


def _gpu() -> Check:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return Check("gpu", "info", "no NVIDIA GPU (nvidia-smi not found): CPU only")
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except Exception as e:
        return Check("gpu", "warn", f"nvidia-smi failed: {e}")
    return Check("gpu", "ok", out.replace("\n", "; "))


def _torch_cuda() -> Check:
    try:
        import torch
    except Exception as e:
        return Check(
            "torch cuda", "missing", f"torch does not import ({e}); {install_hint('torch')}"
        )
    if torch.cuda.is_available():
        return Check(
            "torch cuda", "ok", f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
        )
    return Check(
        "torch cuda",
        "info",
        f"not available (torch {torch.__version__}, CUDA build {torch.version.cuda})",
    )


def _tensorrt() -> Check:
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as e:
        return Check(
            "tensorrt",
            "missing",
            f"does not import ({type(e).__name__}: {first_line(e, 80)}). Optional: on an NVIDIA GPU "
            "host with CUDA 13, pip install tensorrt-cu13 (its wheels fetch TensorRT's "
            "libraries from NVIDIA's index); not needed for CPU work.",
        )
    version = str(trt.__version__)
    how = (
        "strongly typed: precision from the graph"
        if int(version.split(".")[0]) >= 11
        else ("10.x: builder flags FP16/INT8 still exist")
    )
    return Check("tensorrt", "ok", f"TensorRT {version} ({how})")


def _cpu_checks() -> list[Check]:
    """The CPU, and what INT8 will do on it (the same table ``quantize`` chooses from)."""
    cpu = cpu_info()
    profile = int8_profile()
    features = ", ".join(profile.features) or "none of VNNI/AMX/dot-product"
    status = "warn" if profile.u8s8_saturates else "ok"
    return [
        Check("cpu", "info", f"{cpu['model']} ({cpu['arch']}, {cpu['logical_cpus']} logical CPUs)"),
        Check(
            "cpu int8",
            status,
            f"{profile.isa} ({features}): quantize with {profile.types}; {profile.reason}",
        ),
        Check("int8 speed", "warn" if profile.u8s8_saturates else "info", profile.expectation),
    ]


def _openvino_check() -> Check:
    """What OpenVINO's CPU plugin computes in when nobody sets a precision."""
    try:
        from onnx_deploy.infer.runners.openvino import cpu_capabilities

        caps = cpu_capabilities()
    except Exception as e:
        return Check("openvino cpu", "warn", f"OpenVINO's CPU plugin does not start: {e}")
    if "BF16" in caps:
        return Check(
            "openvino cpu", "info",
            f"capabilities {', '.join(caps)}: its default precision here is bf16 (a silent "
            "precision change); onnx-deploy's OpenVINO runner sets f32 unless asked for "
            "openvino-bf16",
        )  # fmt: skip
    return Check("openvino cpu", "info", f"capabilities {', '.join(caps)}: its default is f32")


def _peak_check(refresh: bool = False) -> Check:
    """This machine's FP32/INT8 peak and memory bandwidth (``machine_peak``: measured in
    about 5 s the first time, then cached per machine)."""
    from onnx_deploy.infer.peak import machine_peak

    try:
        peak = machine_peak(refresh=refresh)
    except Exception as e:
        return Check("peak", "warn", f"the throughput probe did not run: {e}")
    src = "cached" if peak.cached else "measured now"
    return Check(
        "peak",
        "info",
        f"FP32 {peak.fp32_gflops:.0f} GFLOP/s, INT8 {peak.int8_gops:.0f} GOP/s, memory "
        f"{peak.memory_gbps:.0f} GB/s ({src} {peak.measured}; `profile` and `bench` give "
        "% of it; doctor --refresh-peak measures again)",
    )


def platform_checks(
    versions: dict[str, str | None],
    sys_platform: str | None = None,
    machine: str | None = None,
) -> list[Check]:
    """The platform, the ONNX Runtime wheel this project installs on it, and the wheel that
    is installed (``versions``: distribution -> version or None)."""
    wheel = onnxruntime_wheel(sys_platform, machine)
    where = sys_platform or sys.platform
    system = {"linux": "Linux", "darwin": "macOS", "win32": "Windows"}.get(where, where)
    arch = machine or platform.machine()
    if wheel == "onnxruntime-gpu":
        what = "the GPU wheel: CUDA where an NVIDIA GPU and its driver work, the CPU otherwise"
    elif where == "darwin":
        what = "the CPU wheel (onnxruntime-gpu has no macOS wheel); CoreML is its Apple provider"
    elif where == "linux" and arch.lower() in ("aarch64", "arm64"):
        what = (
            "the CPU wheel (onnxruntime-gpu's aarch64 wheels need glibc 2.34 or newer; on such "
            "an NVIDIA host: pip uninstall -y onnxruntime && pip install onnxruntime-gpu)"
        )
    else:
        what = "the CPU wheel (onnxruntime-gpu has no wheel for this platform)"
    checks = [Check("platform", "info", f"{system} {arch}: this project installs {wheel}, {what}")]
    installed = [w for w in ORT_WHEELS if versions.get(w)]
    if len(installed) == 2:
        checks.append(
            Check(
                "onnxruntime",
                "warn",
                "both onnxruntime and onnxruntime-gpu are installed; they share one module and "
                f"overwrite each other: pip uninstall -y onnxruntime onnxruntime-gpu && pip install {wheel}",
            )
        )
    elif not installed:
        checks.append(Check(wheel, "missing", f"pip install {wheel} (or pip install onnx-deploy)"))
    return checks


def run_doctor(
    probe_torch: bool = True, peak: bool = True, refresh_peak: bool = False
) -> DoctorReport:
    """Collect every check. ``probe_torch=False`` skips importing torch (faster);
    ``peak=False`` skips the machine-peak probe (cached after its first run)."""
    checks = []
    versions = {pkg: package_version(pkg) for pkg in PACKAGES}
    for pkg, v in versions.items():
        if v:
            checks.append(Check(pkg, "ok", v))
        elif pkg not in ORT_WHEELS:
            checks.append(Check(pkg, "missing", install_hint(pkg.replace("-", "_"))))
    checks += platform_checks(versions)
    try:
        import onnxruntime as ort

        from onnx_deploy.infer.sessions import working_providers

        available = list(ort.get_available_providers())
        working = list(working_providers())
        checks.append(Check("providers listed", "info", ", ".join(available)))
        not_running = [p for p in available if p not in working]
        checks.append(
            Check(
                "providers working",
                "ok",
                ", ".join(working)
                + (f"  (listed but not running: {', '.join(not_running)})" if not_running else ""),
            )
        )
    except Exception as e:
        checks.append(Check("providers working", "error", f"onnxruntime does not run: {e}"))
    checks.append(_gpu())
    if probe_torch:
        checks.append(_torch_cuda())
    checks.append(_tensorrt())
    checks += _cpu_checks()
    if package_version("openvino"):
        checks.append(_openvino_check())
    if peak:
        checks.append(_peak_check(refresh_peak))
    return DoctorReport(tuple(checks))
