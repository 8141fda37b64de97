"""The CPU's INT8 profile: one row per instruction set, chosen from the flags."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from onnx_deploy.core.cpu import ISAS
from onnx_deploy.core.cpu import PROFILES
from onnx_deploy.core.cpu import classify_isa
from onnx_deploy.core.cpu import cpu_flags
from onnx_deploy.core.cpu import cpu_info
from onnx_deploy.core.cpu import int8_profile
from onnx_deploy.core.cpu import merge_flags

# /proc/cpuinfo flags of the machines this project has run on (abridged)
SAPPHIRE_RAPIDS = "avx2 fma avx512f avx512bw avx512_vnni avx_vnni avx512_bf16 amx_bf16 amx_int8"
ZEN4 = "avx2 fma avx512f avx512bw avx512_vnni avx512_bf16"
ZEN2_AVX2 = "sse4_1 avx2 fma"
SKYLAKE_SP = "avx2 fma avx512f avx512bw"  # AVX-512 without VNNI: VPMADDUBSW too
ALDER_LAKE = "avx2 fma avx_vnni"  # VEX-encoded VNNI, no AVX-512
OLD_X86 = "sse4_1 ssse3"
GRAVITON3 = "fp asimd asimddp i8mm sve"


@pytest.mark.parametrize(
    ("flags", "machine", "isa", "types"),
    [
        (SAPPHIRE_RAPIDS, "x86_64", "x86-amx", "u8/s8"),
        (ZEN4, "x86_64", "x86-vnni", "u8/s8"),
        (ALDER_LAKE, "AMD64", "x86-vnni", "u8/s8"),
        (ZEN2_AVX2, "x86_64", "x86-no-vnni", "u8/s8, reduce_range"),
        (SKYLAKE_SP, "x86_64", "x86-no-vnni", "u8/s8, reduce_range"),
        (OLD_X86, "x86_64", "x86-no-vnni", "u8/s8, reduce_range"),
        (GRAVITON3, "aarch64", "arm64", "s8/s8"),
        ("asimd", "arm64", "arm64", "s8/s8"),
        ("", "riscv64", "other", "s8/s8"),
    ],
)
def test_profile_per_feature_set(flags: str, machine: str, isa: str, types: str) -> None:
    profile = int8_profile(flags=flags.split(), machine=machine)
    assert profile.isa == isa == classify_isa(flags.split(), machine)
    assert profile.types == types
    assert profile.u8s8_saturates == (isa == "x86-no-vnni")
    assert profile.reduce_range == profile.u8s8_saturates
    assert profile.isa in profile.summary() or profile.title in profile.summary()
    json.dumps(profile.to_dict())


def test_features_that_decided_are_named() -> None:
    assert int8_profile(flags=ZEN2_AVX2.split(), machine="x86_64").features == (
        "avx2",
        "no VNNI",
    )
    assert "amx_int8" in int8_profile(flags=SAPPHIRE_RAPIDS.split(), machine="x86_64").features
    assert int8_profile(flags=GRAVITON3.split(), machine="aarch64").features == (
        "asimddp",
        "i8mm",
    )


def test_every_profile_explains_itself() -> None:
    assert set(ISAS) == set(PROFILES)
    for profile in PROFILES.values():
        assert profile.reason and profile.expectation
    # every x86 speed figure names the machine it was measured on
    # every figure quoted names where it was measured
    assert "MEASUREMENTS.md" in PROFILES["x86-vnni"].expectation
    assert "MEASUREMENTS.md" in PROFILES["x86-amx"].expectation
    assert "notebook 05" in PROFILES["x86-no-vnni"].expectation
    assert "not measured" in PROFILES["arm64"].expectation
    assert "VPMADDUBSW" in PROFILES["x86-no-vnni"].reason


def test_named_target_and_unknown_target() -> None:
    assert int8_profile("x86-no-vnni").reduce_range
    with pytest.raises(ValueError, match="x86-no-vnni"):
        int8_profile("avx2")


def test_runtime_detection_corrects_proc_cpuinfo() -> None:
    # an emulator or hypervisor that hides AVX-512: NumPy's cpuid view wins
    host = set(ZEN4.split())
    seen = merge_flags(host, {"AVX2": True, "AVX512F": False, "AVX512VNNI": False})
    assert "avx512_vnni" not in seen and "avx2" in seen
    assert classify_isa(seen, "x86_64") == "x86-no-vnni"
    # flags NumPy does not know (AMX, AVX-VNNI) come from /proc/cpuinfo
    assert "amx_int8" in merge_flags({"amx_int8"}, {"AVX512VNNI": True})
    # no runtime view: /proc/cpuinfo as it is
    assert merge_flags(host, {}) == frozenset(host)


def test_this_machine() -> None:
    info = cpu_info()
    assert info["int8_isa"] in ISAS
    assert set(info["int8_features"]) <= cpu_flags()
    # the row from the kernel's own flags, read here without onnx_deploy.core.cpu
    flags = set()
    if Path("/proc/cpuinfo").is_file() and not os.environ.get("ONNX_DEPLOY_EMULATED"):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    if "avx2" in flags:  # an x86-64 host
        expected = (
            "x86-amx" if "amx_int8" in flags
            else "x86-vnni" if {"avx512_vnni", "avx_vnni"} & flags
            else "x86-no-vnni"
        )  # fmt: skip
        assert info["int8_isa"] == expected, (
            info,
            sorted(flags & {"amx_int8", "avx512_vnni", "avx_vnni"}),
        )
