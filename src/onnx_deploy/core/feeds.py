"""User data -> feeds: the one place that turns arrays, dicts, tuples and files into
``{input_name: array}`` for a model, and checks them against its specs.

Every backend, the comparison, the benchmark, calibration and the CLI go through here, so
"which input is this array for" and "why does this input not fit" have one answer:

- ``as_feeds(data, specs)``: one batch: an array (single-input models), a tuple or list of
  arrays in input order, or a dict by input name;
- ``as_batches(data, specs)``: several batches: a list of the above, or one array/dict
  split into batches of ``batch_size``;
- ``load_data(path)``: ``.npy``, ``.npz`` or a ``.pt`` of tensors (loaded with
  ``torch.load(weights_only=True)``);
- ``check_inputs(specs, feeds)``: every problem with names, rank, fixed dims and dtype
  in one message;
- ``random_inputs(specs, ...)``: arrays that fit, symbolic dims chosen by name.

numpy only (torch is imported only to read a ``.pt`` file or convert a tensor).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnx_deploy.core.errors import InputMismatchError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.signature import Signature
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import describe_all

Feeds = dict[str, np.ndarray]


def to_numpy(value: Any, name: str = "input") -> np.ndarray:
    """An array from a numpy array or a torch tensor (detached, on the CPU; bfloat16,
    which numpy cannot hold, becomes float32)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        t = value.detach().cpu()
        return (t.float() if str(t.dtype) == "torch.bfloat16" else t).numpy()
    if isinstance(value, np.generic):
        return np.asarray(value)
    raise InputMismatchError(
        f"{name!r} is a {type(value).__name__}, expected a numpy array (or a torch tensor): "
        "convert with np.asarray(x, dtype=...)"
    )


def as_feeds(data: Any, specs: Sequence[TensorSpec]) -> Feeds:
    """One batch of ``data`` as ``{input_name: array}`` for a model with ``specs``.

    Shapes and dtypes are not changed here; ``check_inputs`` says what does not fit.
    """
    names = [s.name for s in specs]
    if isinstance(data, Mapping):
        return {str(k): to_numpy(v, str(k)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        if len(specs) == 1 and len(data) != 1 and not all(_array_like(v) for v in data):
            return {names[0]: to_numpy(data, names[0])}  # a nested list: say what to pass
        if len(data) != len(specs):
            raise InputMismatchError(
                f"the model takes {len(specs)} input(s) ({describe_all(specs)}), got {len(data)}"
            )
        return {n: to_numpy(v, n) for n, v in zip(names, data, strict=True)}
    if len(specs) != 1:
        raise InputMismatchError(
            f"the model takes {len(specs)} inputs ({describe_all(specs)}); pass a dict by "
            "name or a tuple in this order"
        )
    return {names[0]: to_numpy(data, names[0])}


def _array_like(value: Any) -> bool:
    return isinstance(value, np.ndarray) or hasattr(value, "detach")


def batch_size_of(feeds: Mapping[str, np.ndarray]) -> int | None:
    """The common size of axis 0, or None when inputs disagree or are scalars."""
    sizes = {v.shape[0] for v in feeds.values() if getattr(v, "ndim", 0)}
    return sizes.pop() if len(sizes) == 1 else None


def split(feeds: Mapping[str, np.ndarray], batch_size: int) -> list[Feeds]:
    """Split along axis 0 into batches of at most ``batch_size``."""
    total = batch_size_of(feeds)
    if total is None:
        return [dict(feeds)]
    return [
        {k: v[i : i + batch_size] for k, v in feeds.items()} for i in range(0, total, batch_size)
    ]


def split_sizes(feeds: Mapping[str, np.ndarray], sizes: Sequence[int]) -> list[Feeds]:
    """Split along axis 0 into consecutive batches whose sizes cycle through ``sizes``
    (``[1, 8]``: 1, 8, 1, 8, ... until the samples run out; the last may be smaller)."""
    total = batch_size_of(feeds)
    if total is None or not sizes:
        return [dict(feeds)]
    out, start, i = [], 0, 0
    while start < total:
        size = max(int(sizes[i % len(sizes)]), 1)
        out.append({k: v[start : start + size] for k, v in feeds.items()})
        start, i = start + size, i + 1
    return out


def as_batches(
    data: Any, specs: Sequence[TensorSpec], batch_size: int | None = None
) -> list[Feeds]:
    """Several batches from ``data``: a list of batches (each as ``as_feeds`` takes), or
    one array / dict, split into ``batch_size`` pieces when given."""
    if isinstance(data, (str, os.PathLike)):
        data = load_data(data)
    if isinstance(data, (np.ndarray, Mapping)) or hasattr(data, "detach"):
        feeds = as_feeds(data, specs)
        return split(feeds, batch_size) if batch_size else [feeds]
    if isinstance(data, tuple) and len(data) == len(specs) and len(specs) > 1:
        feeds = as_feeds(data, specs)  # one batch of several inputs
        return split(feeds, batch_size) if batch_size else [feeds]
    if not isinstance(data, Iterable):
        raise InputMismatchError(f"cannot make batches from a {type(data).__name__}")
    batches = [as_feeds(item, specs) for item in data]
    if not batches:
        raise InputMismatchError("no data: pass at least one batch")
    return batches


def concatenate(batches: Sequence[Mapping[str, np.ndarray]]) -> Feeds:
    """Batches joined along axis 0 into one feed dict."""
    if not batches:
        return {}
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def load_data(path: str | os.PathLike[str]) -> Any:
    """Arrays from a file: ``.npy`` -> array; ``.npz`` -> its only array, or a dict by
    name; ``.pt`` -> a tensor, a tuple or a dict of tensors as numpy (weights_only)."""
    p = Path(path)
    if not p.is_file():
        raise InputMismatchError(f"{p}: no such data file")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return np.load(p, allow_pickle=False)
    if suffix == ".npz":
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return next(iter(arrays.values())) if len(arrays) == 1 else arrays
    if suffix in (".pt", ".pth"):
        from onnx_deploy.core.extras import require

        torch = require("torch", "load a .pt data file")
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise InputMismatchError(
                f"{p} cannot be loaded with torch.load(weights_only=True): "
                f"{first_line(e)}; save tensors only (torch.save(tensor_or_dict))"
            ) from e
        if isinstance(obj, Mapping):
            return {str(k): to_numpy(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return tuple(to_numpy(v) for v in obj)
        return to_numpy(obj)
    raise InputMismatchError(f"{p}: data must be a .npy, .npz or .pt file")


def fill_defaults(
    feeds: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    defaults: Mapping[str, float],
) -> tuple[Feeds, tuple[str, ...]]:
    """``feeds`` with the inputs they lack that have a default (a contract's ``defaults``:
    BERT's ``token_type_ids`` = 0, as transformers fills them when a tokenizer gives only
    ``input_ids`` and ``attention_mask``), each shaped by the inputs given that share its
    dims; and the names filled. An input whose dims nothing given shares stays missing
    (``check_inputs`` names it)."""
    out = dict(feeds)
    sizes: dict[str, int] = {}
    for spec in specs:
        value = feeds.get(spec.name)
        if isinstance(value, np.ndarray) and value.ndim == len(spec.shape):
            for dim, size in zip(spec.shape, value.shape, strict=True):
                if isinstance(dim, str):
                    sizes.setdefault(dim, int(size))
    filled = []
    for spec in specs:
        if spec.name in feeds or spec.name not in defaults or spec.numpy_dtype is None:
            continue
        shape = [d if isinstance(d, int) else sizes.get(str(d)) for d in spec.shape]
        if any(d is None for d in shape):
            continue
        out[spec.name] = np.full(shape, defaults[spec.name], dtype=spec.numpy_dtype)
        filled.append(spec.name)
    return out, tuple(filled)


def check_inputs(specs: Sequence[TensorSpec], feeds: Mapping[str, Any]) -> None:
    """Raise ``InputMismatchError`` naming every problem with ``feeds``."""
    expected = {s.name for s in specs}
    problems = []
    missing = [s.name for s in specs if s.name not in feeds]
    unknown = [k for k in feeds if k not in expected]
    if missing or unknown:
        problems.append(
            f"model inputs are {sorted(expected)}; missing {missing}, unknown {unknown}"
        )
    for spec in specs:
        if spec.name not in feeds:
            continue
        value = feeds[spec.name]
        if not isinstance(value, np.ndarray):
            hint = (
                " (a torch tensor? use t.detach().cpu().numpy())" if hasattr(value, "numpy") else ""
            )
            problems.append(
                f"{spec.name!r} is a {type(value).__name__}, expected a numpy array{hint}"
            )
            continue
        want = spec.numpy_dtype
        if want is not None and value.dtype != want:
            problems.append(
                f"{spec.name!r} has dtype {value.dtype}, the model expects {want.name}: "
                f"convert with x.astype(np.{want.name})"
            )
        if len(value.shape) != len(spec.shape):
            hint = ""
            if len(value.shape) + 1 == len(spec.shape):
                hint = " (missing batch axis? use x[None])"
            problems.append(
                f"{spec.name!r} has shape {tuple(value.shape)} ({value.ndim} dims), the model "
                f"expects {len(spec.shape)} dims {spec.dtype}{spec.shape_text}{hint}"
            )
            continue
        for axis, (want_dim, got) in enumerate(zip(spec.shape, value.shape, strict=True)):
            if isinstance(want_dim, int) and want_dim != got:
                problems.append(
                    f"{spec.name!r} axis {axis} is {got}, the model needs {want_dim} "
                    f"(expected {spec.describe()}, got shape {tuple(value.shape)})"
                )
    if problems:
        raise InputMismatchError("input mismatch: " + "; ".join(problems))


def random_inputs(
    specs: Sequence[TensorSpec],
    batch_size: int = 2,
    seed: int = 0,
    dim_values: Mapping[str, int] | None = None,
) -> Feeds:
    """Random arrays for ``specs``.

    Symbolic dims take ``dim_values[name]`` if given, else ``batch_size`` on axis 0 and an
    error elsewhere (a size the caller must decide). The values are the signature's
    (``Signature.examples``): floats standard normal, integers 0-9, padding masks.
    """
    dim_values = dict(dim_values or {})
    named = []  # every dim a name, so that the signature generates the data
    for spec in specs:
        shape: list[int | str] = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int) or (isinstance(d, str) and d in dim_values):
                shape.append(d)
            elif axis == 0:
                name = d if isinstance(d, str) else f"{spec.name}_batch"
                dim_values.setdefault(name, batch_size)
                shape.append(name)
            else:
                raise InputMismatchError(
                    f"input {spec.name!r} axis {axis} is dynamic ({d!r}); pass "
                    f"dim_values={{{d!r}: N}} to choose its size"
                )
        if spec.numpy_dtype is None:
            raise InputMismatchError(
                f"input {spec.name!r} is {spec.dtype}, which numpy cannot hold; feed it "
                "through a backend that takes tensors (PyTorch) or cast it in the model"
            )
        named.append(TensorSpec(spec.name, spec.dtype, tuple(shape)))
    sig = Signature.from_specs(named)
    return sig.examples({d.name: dim_values[d.name] for d in sig.dims}, seed)
