"""Tensor specs and the one dtype table every backend reads.

A ``TensorSpec`` is one model input or output: a name, a dtype by name (``"float32"``,
``"int64"``, ``"bfloat16"``) and a shape whose dims are ints (fixed), strings (symbolic,
such as ``"batch"``) or ``None`` (unknown). ONNX files, ONNX Runtime sessions and PyTorch
modules describe their tensors in different vocabularies; ``DTYPES`` maps them (and Triton's names) to one
another, so a new backend adds a column here rather than a table of its own.

Standard library and numpy only: the inference side imports this without onnx or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Dim = int | str | None


@dataclass(frozen=True)
class DType:
    """One element type in each vocabulary. ``numpy`` is None where numpy has no such
    type (bfloat16, the float8 types): arrays of it cannot be fed from numpy."""

    name: str
    onnx: int  # onnx.TensorProto.DataType value
    ort: str  # onnxruntime's NodeArg.type
    numpy: str | None
    torch: str | None  # attribute of the torch module
    triton: str | None = (
        None  # Triton's data type (config TYPE_<it>; the wire says BYTES for STRING)
    )


DTYPES: tuple[DType, ...] = (
    DType("float32", 1, "tensor(float)", "float32", "float32", "FP32"),
    DType("uint8", 2, "tensor(uint8)", "uint8", "uint8", "UINT8"),
    DType("int8", 3, "tensor(int8)", "int8", "int8", "INT8"),
    DType("uint16", 4, "tensor(uint16)", "uint16", "uint16", "UINT16"),
    DType("int16", 5, "tensor(int16)", "int16", "int16", "INT16"),
    DType("int32", 6, "tensor(int32)", "int32", "int32", "INT32"),
    DType("int64", 7, "tensor(int64)", "int64", "int64", "INT64"),
    DType("string", 8, "tensor(string)", "object", None, "STRING"),
    DType("bool", 9, "tensor(bool)", "bool", "bool", "BOOL"),
    DType("float16", 10, "tensor(float16)", "float16", "float16", "FP16"),
    DType("float64", 11, "tensor(double)", "float64", "float64", "FP64"),
    DType("uint32", 12, "tensor(uint32)", "uint32", "uint32", "UINT32"),
    DType("uint64", 13, "tensor(uint64)", "uint64", "uint64", "UINT64"),
    DType("bfloat16", 16, "tensor(bfloat16)", None, "bfloat16", "BF16"),
    DType("float8e4m3fn", 17, "tensor(float8e4m3fn)", None, "float8_e4m3fn"),
    DType("float8e5m2", 19, "tensor(float8e5m2)", None, "float8_e5m2"),
)
_BY_NAME = {d.name: d for d in DTYPES}
_BY_ONNX = {d.onnx: d for d in DTYPES}
_BY_ORT = {d.ort: d for d in DTYPES}
_BY_NUMPY = {d.numpy: d for d in DTYPES if d.numpy}
_BY_TORCH = {d.torch: d for d in DTYPES if d.torch}
_BY_TRITON = {d.triton: d for d in DTYPES if d.triton} | {"BYTES": _BY_NAME["string"]}


def dtype(name: str) -> DType:
    """The table row for a dtype name (``"float32"``), or ``ValueError``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; known: {', '.join(_BY_NAME)}") from None


def from_onnx(elem_type: int) -> str:
    """``onnx.TensorProto.FLOAT`` (1) -> ``"float32"``; unknown types keep their number."""
    row = _BY_ONNX.get(int(elem_type))
    return row.name if row else f"onnx_type_{int(elem_type)}"


def from_ort(type_string: str) -> str:
    """``"tensor(float)"`` -> ``"float32"``; non-tensor types come back as they are."""
    row = _BY_ORT.get(type_string)
    return row.name if row else type_string


def from_numpy(value: Any) -> str:
    """A numpy dtype (or anything ``np.dtype`` takes) -> ``"float32"``."""
    name = np.dtype(value).name
    if name.startswith("str") or name.startswith("bytes"):
        return "string"
    return _BY_NUMPY[name].name if name in _BY_NUMPY else name


def from_torch(value: Any) -> str:
    """``torch.float32`` -> ``"float32"`` (no torch import needed)."""
    name = str(value).removeprefix("torch.")
    row = _BY_TORCH.get(name)
    return row.name if row else name


def to_triton(name: str) -> str | None:
    """``"float32"`` -> ``"FP32"``: Triton's data type (None where Triton has none)."""
    row = _BY_NAME.get(name)
    return row.triton if row else None


def from_triton(datatype: str) -> str:
    """Triton's ``"FP32"`` (or the wire's ``"BYTES"``) -> ``"float32"``, or ``ValueError``."""
    try:
        return _BY_TRITON[datatype.removeprefix("TYPE_")].name
    except KeyError:
        raise ValueError(f"unknown Triton data type {datatype!r}") from None


def numpy_dtype(name: str) -> np.dtype | None:
    """The numpy dtype for a dtype name, or None where numpy has none (bfloat16)."""
    row = _BY_NAME.get(name)
    if row is None or row.numpy is None:
        return None
    return np.dtype(row.numpy)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. A ``str`` dim is symbolic (dynamic), ``None`` unknown."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    @property
    def numpy_dtype(self) -> np.dtype | None:
        return numpy_dtype(self.dtype)

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.shape) if not isinstance(d, int))

    @property
    def shape_text(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}{self.shape_text}"

    def __str__(self) -> str:
        return self.describe()


def describe_all(specs: tuple[TensorSpec, ...] | list[TensorSpec]) -> str:
    """``"x: float32[batch, 3], mask: bool[batch, seq]"``."""
    return ", ".join(s.describe() for s in specs)
