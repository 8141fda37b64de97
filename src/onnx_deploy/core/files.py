"""Output-path safety: no silent overwrite, atomic writes of files, JSON and folders,
readable sizes, and saving ONNX with the external-data rule and the 2 GB limit."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from onnx_deploy.core.errors import OutputExistsError

# where the package's own files are: the installed package, its data, and (for an editable
# install) the checkout it came from, which holds node_modules/ and .venv-serve/
PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE_DATA = PACKAGE_DIR / "data"
CHECKOUT = PACKAGE_DIR.parents[1]


def human_size(num_bytes: int | float) -> str:
    """``46843392`` -> ``'44.7 MB'`` (binary units, one decimal)."""
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def check_output_path(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Return ``path`` as a Path, or raise if it exists and ``force`` is False."""
    out = Path(path)
    if out.exists() and not force:
        raise OutputExistsError(
            f"{out} already exists; choose another output path or pass force=True "
            "(CLI: --force) to replace it."
        )
    if out.is_dir():
        raise OutputExistsError(f"{out} is a directory; give a file path such as {out}/model.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temporary path with the same file name, then move it into place.

    The temporary file lives in a hidden folder beside ``path`` so the final rename is
    atomic and side files the writer creates next to it (ONNX external data such as
    ``model.onnx.data``) keep the names that the model refers to. If the block raises,
    nothing at ``path`` changes and the temporary folder is removed.
    """
    out = check_output_path(path, force)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        tmp_path = tmp_dir / out.name
        yield tmp_path
        if not tmp_path.exists():
            raise FileNotFoundError(f"the writer did not create {tmp_path}")
        # Re-check: another process may have created the file meanwhile.
        check_output_path(out, force)
        for produced in sorted(tmp_dir.iterdir(), key=lambda p: p == tmp_path):
            # Side files first, the model last, so a reader never sees a model whose
            # external data is not there yet.
            os.replace(produced, out.parent / produced.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_json(path: str | os.PathLike[str], payload: Any, force: bool = False) -> Path:
    """Write ``payload`` as indented JSON atomically (values JSON lacks go through ``str``);
    a reader never sees half a file. Refuses an existing file unless ``force``."""
    with atomic_output(path, force=force) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))
    return Path(path)


@contextlib.contextmanager
def staged_folder(
    path: str | os.PathLike[str], force: bool = False, *, merge: bool = False,
    last: tuple[str, ...] = (),
) -> Iterator[Path]:  # fmt: skip
    """Yield an empty folder with ``path``'s name, in a hidden folder beside it, to build
    into; when the block succeeds, it takes ``path``'s place. ``merge``: its entries replace the entries of the same name in
    ``path`` (others stay), the ``last`` ones last (a web page after its files). If the
    block raises, nothing at ``path`` changes and the staging folder is removed."""
    out = Path(path)
    if out.exists() and not force and not merge:
        raise OutputExistsError(f"{out} already exists; choose another path or pass force=True")
    out.parent.mkdir(parents=True, exist_ok=True)
    hidden = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staging = hidden / out.name
    staging.mkdir()
    try:
        yield staging
        if not merge:
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
            return
        out.mkdir(exist_ok=True)
        for item in sorted(staging.iterdir(), key=lambda p: p.name in last):
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def file_size(path: str | os.PathLike[str]) -> int:
    """Size of an ONNX model on disk including an external-data file beside it."""
    p = Path(path)
    total = p.stat().st_size
    data = p.with_name(p.name + EXTERNAL_DATA_SUFFIX)
    if data.exists():
        total += data.stat().st_size
    return total


# protobuf cannot serialise a message of 2 GiB or more; keep a margin for the graph itself.
PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2
EXTERNAL_DATA_SUFFIX = ".data"  # model.onnx -> model.onnx.data, as torch's exporter names it


def over_protobuf_limit(model: Any) -> bool:
    """Whether ``model`` (an ``onnx.ModelProto``) is too large to save as one file."""
    try:
        return int(model.ByteSize()) > PROTOBUF_LIMIT
    except Exception:  # ByteSize itself can overflow past 2 GiB
        return True


def write_onnx(model: Any, path: str | os.PathLike[str], external_data: bool | None = None) -> bool:
    """Save ``model`` to ``path`` (no existence checks: use inside ``atomic_output``).

    The one external-data rule: weights go to ``NAME.onnx.data`` beside the file when
    ``external_data`` is True, or when it is None and the model is over the protobuf
    limit. Returns whether external data was written.
    """
    import onnx

    p = Path(path)
    if external_data is None:
        external_data = over_protobuf_limit(model)
    if external_data:
        onnx.save_model(
            model,
            str(p),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=p.name + EXTERNAL_DATA_SUFFIX,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(p))
    return bool(external_data)


def save_onnx(
    model: Any,
    path: str | os.PathLike[str],
    force: bool = False,
    external_data: bool | None = None,
) -> str:
    """Save an ONNX model atomically, never overwriting without ``force``; see
    ``write_onnx`` for when the weights go to an external ``.data`` file."""
    with atomic_output(path, force=force) as tmp:
        write_onnx(model, tmp, external_data)
    return str(path)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a model file and its external data files (the weights are the model)."""
    import hashlib

    h = hashlib.sha256()
    p = Path(path)
    for f in [p, *sorted(p.parent.glob(p.name + EXTERNAL_DATA_SUFFIX))]:
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def has_external_data(path: str | os.PathLike[str]) -> bool:
    """Whether any initializer of the file at ``path`` keeps its data in another file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


COPY_CHUNK = 64 * 1024**2


def copy_external_data(
    model: Any,
    source_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    convert: Mapping[str, Callable[[bytes], bytes]] | None = None,
) -> None:
    """Save ``model`` (whose large initializers refer to data files in ``source_dir``) at
    ``path``, its external tensors copied one chunk at a time into ``path.name + '.data'``
    beside it: memory stays at one chunk, whatever the model's size. ``convert`` maps a
    tensor's name to a function applied to each chunk of its stored bytes on the way
    (FP32 to FP16: the tensor's proto already says the new type); chunks are whole
    multiples of 8 bytes."""
    import numpy as np
    import onnx

    path, source_dir = Path(path), Path(source_dir)
    data_name = path.name + EXTERNAL_DATA_SUFFIX
    with open(path.parent / data_name, "wb") as out:
        for tensor in model.graph.initializer:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                continue
            info = {e.key: e.value for e in tensor.external_data}
            offset = int(info.get("offset", 0))
            length = info.get("length")
            if length is None:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
                length = int(np.prod(tensor.dims, dtype=np.int64)) * np.dtype(dtype).itemsize
            length = int(length)
            start = out.tell()
            change = (convert or {}).get(tensor.name)
            with open(source_dir / info["location"], "rb") as src:
                src.seek(offset)
                left = length
                while left:
                    chunk = src.read(min(COPY_CHUNK, left))
                    if not chunk:
                        raise OSError(f"{info['location']} ends before {tensor.name}'s data")
                    out.write(change(chunk) if change else chunk)
                    left -= len(chunk)
            del tensor.external_data[:]
            written = out.tell() - start
            for key, value in (("location", data_name), ("offset", start), ("length", written)):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
    onnx.save_model(model, str(path))
