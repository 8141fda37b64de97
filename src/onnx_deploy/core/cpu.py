"""The CPU's instruction set, and what it means for INT8 with ONNX Runtime.

One place for both questions: which INT8 features this CPU has (``cpu_flags``,
``cpu_info``), and which quantization types to use on it (``int8_profile``). The
answer differs between the machines this project runs on:

- **x86-64 with VNNI** (AVX-512 VNNI or AVX-VNNI; AMX on newer Xeons): ONNX Runtime's
  U8S8 kernels multiply uint8 activations by int8 weights and accumulate in 32 bits
  (``VPDPBUSD``). uint8 activations + int8 weights is the fast, exact choice.
- **x86-64 without VNNI** (AVX2, or AVX-512 without VNNI): the U8S8 kernels use
  ``VPMADDUBSW``, which adds each *pair* of uint8 x int8 products into a 16-bit sum that
  saturates at 32,767 (255 x 127 x 2 = 64,770 does not fit). Accuracy drops. 7-bit
  weights (``reduce_range``: 255 x 64 x 2 = 32,640 fits) keep the fast kernel and
  remove the saturation; uint8 weights (U8U8) also avoid it, on a slower kernel.
- **ARM64**: int8/int8 (S8S8), as onnxruntime's quantization docs recommend.

Every figure quoted in ``PROFILES`` was measured by this project; the machine is named
next to it. The table is a declaration, so tests and ``onnx-deploy doctor`` read the
same rows.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from onnx_deploy.core.results import Result

X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
ARM64_MACHINES = frozenset({"aarch64", "arm64", "armv8l"})

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
AMX_FLAGS = ("amx_int8",)
INT8_FLAGS = (
    "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16", "asimddp", "i8mm",
)  # fmt: skip
CPU_FLAGS = ("sse4_1", "avx2", "fma", "avx512f", "avx512bw", *INT8_FLAGS)

# NumPy's runtime dispatcher reads cpuid and the OS's xgetbv, as ONNX Runtime's MLAS
# does, so its view is what this process can really use (an emulator or a hypervisor
# can hide features that /proc/cpuinfo of the host would list). Names: NumPy -> Linux.
_NUMPY_FEATURES = {
    "SSE41": "sse4_1",
    "AVX2": "avx2",
    "FMA3": "fma",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512VNNI": "avx512_vnni",
    "AVX512BF16": "avx512_bf16",
    "ASIMDDP": "asimddp",
}


def types_label(activation_type: str, weight_type: str, reduce_range: bool) -> str:
    """``("uint8", "int8", True)`` -> ``"u8/s8, reduce_range"``."""
    short = {"uint8": "u8", "int8": "s8"}
    text = f"{short[activation_type]}/{short[weight_type]}"
    return text + (", reduce_range" if reduce_range else "")


@dataclass(frozen=True)
class Int8Profile(Result):
    """What INT8 means on one kind of CPU: the types to quantize with, and why.

    ``u8s8_saturates``: int8 weights without ``reduce_range`` can saturate here.
    ``features``: the flags that decided it (filled in for the CPU that was detected).
    """

    COMPUTED = ("types",)

    isa: str
    title: str
    activation_type: str
    weight_type: str
    reduce_range: bool
    u8s8_saturates: bool
    reason: str
    expectation: str
    features: tuple[str, ...] = ()

    @property
    def types(self) -> str:
        """Short form, e.g. ``u8/s8`` or ``u8/s8, reduce_range``."""
        return types_label(self.activation_type, self.weight_type, self.reduce_range)

    def summary(self) -> str:
        features = f" ({', '.join(self.features)})" if self.features else ""
        return (
            f"INT8 on {self.title}{features}: quantize with {self.types}\n"
            f"  why     {self.reason}\n"
            f"  expect  {self.expectation}"
        )


_TYPES = (  # isa, title, activations, weights, reduce_range, u8s8_saturates
    ("x86-amx", "x86-64 with AMX and VNNI", "uint8", "int8", False, False),
    ("x86-vnni", "x86-64 with VNNI", "uint8", "int8", False, False),
    ("x86-no-vnni", "x86-64 without VNNI", "uint8", "int8", True, True),
    ("arm64", "ARM64", "int8", "int8", False, False),
    ("other", "an unrecognised CPU", "int8", "int8", False, False),
)
_WHY: dict[str, tuple[str, str]] = {  # isa: (reason, expectation)
    "x86-amx": (
        "AMX and VNNI accumulate uint8 x int8 products in 32 bits (no saturation), and "
        "U8S8 is ONNX Runtime's fast x86 path; int8 activations ran slower",
        "static INT8 ran resnet18 3.05x faster than FP32 with 1 thread, mobilenet_v3_small "
        "0.73x (notebooks/MEASUREMENTS.md, 'INT8 speed by type on x86'): measure "
        "depthwise-heavy nets",
    ),
    "x86-vnni": (
        "VNNI (VPDPBUSD) accumulates uint8 x int8 products in 32 bits (no saturation), "
        "and U8S8 is ONNX Runtime's fast x86 path; int8 activations and uint8 weights "
        "ran slower",
        "measured on the x86-amx row's machine, which also accumulates in 32 bits: resnet18 "
        "3.05x FP32 with 1 thread (notebooks/MEASUREMENTS.md, 'INT8 speed by type on x86'); "
        "benchmark on this CPU",
    ),
    "x86-no-vnni": (
        "without VNNI the U8S8 kernels use VPMADDUBSW, whose 16-bit pair sums saturate;"
        " 7-bit weights (reduce_range) keep every sum in range on the same fast kernel",
        "U8S8 can saturate: digits INT8 u8/s8 fell to 97.6% (FP32 98.2%, 99.1% "
        "agreement), 98.2% with reduce_range (notebook 05, on an emulated AMD EPYC-Rome, "
        "AVX2). INT8 speed on such a CPU is not measured by this project: benchmark INT8 "
        "against FP32 before you ship it",
    ),
    "arm64": (
        "onnxruntime's quantization docs recommend S8S8 on ARM; SDOT/SMMLA (asimddp, "
        "i8mm) accumulate in 32 bits",
        "not measured by this project (no ARM machine): benchmark INT8 against FP32 on the target",
    ),
    "other": (
        "no measured row for this architecture: onnxruntime's default types",
        "not measured by this project: benchmark INT8 against FP32 on the target",
    ),
}
PROFILES: dict[str, Int8Profile] = {row[0]: Int8Profile(*row, *_WHY[row[0]]) for row in _TYPES}
ISAS = tuple(PROFILES)


def classify_isa(flags: Iterable[str], machine: str) -> str:
    """The ``PROFILES`` key for a CPU with these Linux-style flags (lower case)."""
    flags = {f.lower() for f in flags}
    machine = machine.lower()
    if machine in X86_MACHINES:
        if flags & set(AMX_FLAGS):
            return "x86-amx"
        if flags & set(VNNI_FLAGS):
            return "x86-vnni"
        return "x86-no-vnni"
    if machine in ARM64_MACHINES:
        return "arm64"
    return "other"


def _decisive(isa: str, flags: frozenset[str]) -> tuple[str, ...]:
    if isa.startswith("x86"):
        present = [f for f in ("amx_int8", *VNNI_FLAGS, "avx512bw", "avx2") if f in flags]
        return (*present, *(["no VNNI"] if isa == "x86-no-vnni" else []))
    return tuple(f for f in ("asimddp", "i8mm") if f in flags)


def int8_profile(
    isa: str | None = None,
    *,
    flags: Iterable[str] | None = None,
    machine: str | None = None,
) -> Int8Profile:
    """The INT8 profile for a target: ``isa`` names one of ``ISAS``; without it, the CPU
    described by ``flags`` and ``machine`` (default: this CPU)."""
    if isa is not None:
        if isa not in PROFILES:
            raise ValueError(f"unknown target ISA {isa!r}; use one of {', '.join(ISAS)}")
        return PROFILES[isa]
    found = frozenset(f.lower() for f in flags) if flags is not None else cpu_flags()
    name = classify_isa(found, machine or platform.machine())
    return replace(PROFILES[name], features=_decisive(name, found))


def _proc_cpuinfo() -> tuple[str | None, set[str]]:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware") and value.strip() and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags.update(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return model, flags


def _numpy_features() -> Mapping[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # numpy >= 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__  # numpy 1.x
        except ImportError:
            return {}
    return dict(__cpu_features__)


def merge_flags(proc_flags: Iterable[str], runtime: Mapping[str, bool]) -> frozenset[str]:
    """/proc/cpuinfo's flags, corrected by NumPy's runtime detection where it has an
    answer (it sees what this process can use; /proc/cpuinfo cannot see, say, AMX or
    AVX-VNNI on other systems, so both are read)."""
    flags = {f.lower() for f in proc_flags}
    for numpy_name, linux_name in _NUMPY_FEATURES.items():
        if numpy_name in runtime:
            if runtime[numpy_name]:
                flags.add(linux_name)
            else:
                flags.discard(linux_name)
    return frozenset(flags)


# Set in processes that run under QEMU's user-mode emulator (onnx_deploy.convert.emulate): there
# /proc/cpuinfo is the host's, and the flags NumPy cannot confirm (AVX-VNNI, AMX) would
# make an emulated AVX2 CPU on an Intel host with AMX look like the host.
EMULATED_ENV = "ONNX_DEPLOY_EMULATED"
UNCONFIRMED_FLAGS = frozenset({"avx_vnni", "amx_int8", "amx_bf16"})


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, in Linux's lower-case names (``avx512_vnni``, ...)."""
    proc = _proc_cpuinfo()[1]
    if os.environ.get(EMULATED_ENV):
        proc = {f for f in proc if f not in UNCONFIRMED_FLAGS}
    return merge_flags(proc, _numpy_features())


def cpu_info() -> dict[str, Any]:
    """CPU model, core counts, the flags that decide INT8/BF16 speed, and the INT8 ISA."""
    model, _ = _proc_cpuinfo()
    flags = cpu_flags()
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        pass
    return {
        "model": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical,
        "flags": sorted(f for f in CPU_FLAGS if f in flags),
        "int8_features": sorted(f for f in INT8_FLAGS if f in flags),
        "int8_isa": classify_isa(flags, platform.machine()),
    }
