"""Output-path safety: no silent overwrite, atomic writes, readable sizes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from onnx_deploy.errors import OutputExistsError


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


def file_size(path: str | os.PathLike[str]) -> int:
    """Size of an ONNX model on disk including an external-data file beside it."""
    p = Path(path)
    total = p.stat().st_size
    data = p.with_name(p.name + ".data")
    if data.exists():
        total += data.stat().st_size
    return total
