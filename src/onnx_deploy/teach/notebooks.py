"""Run the learning-path notebooks: papermill into artifacts/, or refresh them in place.

    python -m onnx_deploy.teach.notebooks run [--device auto|cpu|cuda]   # make run
    python -m onnx_deploy.teach.notebooks refresh                        # make notebooks-refresh

``run`` executes every ``notebooks/NN_*.ipynb`` with papermill into
``artifacts/executed/`` (never back into ``notebooks/``), passing ``device="cuda"`` when
a GPU is present, then prints a table (notebook, status, seconds, device, key figures) and
writes it as JSON. A notebook publishes key figures by printing one JSON object in a
cell tagged ``key-figures``. ``refresh`` re-executes the notebooks in place on the CPU
with their default parameters, so the committed outputs come from a top-to-bottom run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from onnx_deploy.core.errors import first_line
from onnx_deploy.core.results import Result
from onnx_deploy.core.tables import format_table

KEY_FIGURES_TAG = "key-figures"
KERNEL = "python3"


@dataclass(frozen=True)
class NotebookRun(Result):
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    device: str
    key_figures: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def find_notebooks(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb") if p.is_file())


def detect_device() -> str:
    """``cuda`` where torch sees a GPU, else ``cpu`` (``torch_device``)."""
    from onnx_deploy.convert.runners.pytorch import torch_device

    return torch_device("auto")


def key_figures(nb: Any) -> dict[str, Any]:
    """The JSON object printed by the cell tagged ``key-figures`` (empty if none)."""
    for cell in nb.cells:
        if cell.cell_type != "code" or KEY_FIGURES_TAG not in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            text = out.get("text") if out.get("output_type") == "stream" else None
            if text:
                try:
                    return dict(json.loads(text.strip().splitlines()[-1]))
                except (ValueError, TypeError):
                    return {}
    return {}


def _failure(exc: Exception) -> str:
    cell = getattr(exc, "exec_count", None) or getattr(exc, "cell_index", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = first_line(str(getattr(exc, "evalue", exc)), 200) if str(exc) else ""
    where = f"cell {cell}: " if cell is not None else ""
    return f"{where}{ename}: {evalue}"


class LineProgress:
    """A file for tqdm: on a terminal the bar redraws in place; in a log (CI, a pipe) each
    change becomes one line, without the carriage returns a log cannot show."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").replace("\x1b[A", "").rstrip()
        if line.strip() and line != self._last:
            self._last = line
            self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        elif not line and "\n" in text and self.tty:
            self.stream.write("\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_options(stream: Any = None) -> dict[str, Any]:
    """papermill's ``progress_bar`` options: cell k of N and elapsed time, per notebook."""
    return {
        "file": LineProgress(stream),
        "bar_format": "  cell {n_fmt}/{total_fmt}, {elapsed} elapsed",
        "mininterval": 1.0,
        "ascii": True,
    }


def kernel_manager_class() -> type:
    """Kernels on IPC sockets where the OS has them: ipykernel's "running over TCP
    without encryption" warning, printed once per notebook, goes away with its cause."""
    import uuid

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import CaselessStrEnum
    from traitlets import default

    if os.name == "nt":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self) -> str:
            # an absolute socket path: the kernel's working directory is the notebook's
            # folder, the client's is not, so a relative one would not meet
            folder = Path(jupyter_runtime_dir())
            folder.mkdir(parents=True, exist_ok=True)
            return str(folder / f"onnx-deploy-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


def run_one(
    path: Path, out_dir: Path, device: str, parameters: dict[str, Any], progress: bool = True
) -> NotebookRun:
    import nbformat
    import papermill as pm

    out_path = out_dir / path.name
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(out_path),
            parameters={"device": device, **parameters},
            kernel_name=KERNEL,
            cwd=str(path.parent),
            progress_bar=progress_options() if progress else False,
            log_output=False,
            kernel_manager_class=kernel_manager_class(),
        )
    except Exception as e:  # papermill wraps the failing cell's error
        return NotebookRun(
            path.name, "failed", time.perf_counter() - start, device, {}, _failure(e)
        )
    seconds = time.perf_counter() - start
    return NotebookRun(path.name, "ok", seconds, device, key_figures(nbformat.read(out_path, 4)))


def summary_table(runs: list[NotebookRun]) -> str:
    """One row per notebook: status, seconds, device and its key figures (or its error)."""
    rows = [
        (r.notebook, r.status, f"{r.seconds:.1f}", r.device,
         r.error or ", ".join(f"{k}={v}" for k, v in r.key_figures.items()))
        for r in runs
    ]  # fmt: skip
    return format_table(
        ("notebook", "status", "seconds", "device", "key figures"), rows,
        widths=(23, 7, 7, 7, None), align="<<><<", rule="-",
    )  # fmt: skip


def run_all(
    folder: Path, out_dir: Path, device: str = "auto", parameters: dict[str, Any] | None = None
) -> list[NotebookRun]:
    from onnx_deploy.core.files import write_json

    if device == "auto":
        device = detect_device()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for nb in find_notebooks(folder):
        print(f"running {nb.name} (device={device}) ...", flush=True)
        runs.append(run_one(nb, out_dir, device, parameters or {}))
    write_json(out_dir / "summary.json", [asdict(r) for r in runs], force=True)
    return runs


def refresh(folder: Path, timeout: int = 600, only: str | None = None) -> None:
    """Execute each notebook in place, top to bottom, with its default parameters
    (``only``: just the notebooks whose file name contains it, e.g. ``"01_"``)."""
    import nbformat
    from nbclient import NotebookClient

    for path in find_notebooks(folder):
        if only and only not in path.name:
            continue
        start = time.perf_counter()
        nb = nbformat.read(path, 4)
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name=KERNEL,
            kernel_manager_class=kernel_manager_class(),
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        nb.metadata.pop("papermill", None)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
            cell.metadata.pop("papermill", None)
        nbformat.write(nb, path)
        print(f"refreshed {path.name} in {time.perf_counter() - start:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m onnx_deploy.teach.notebooks", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute with papermill into --out-dir and print a summary")
    r.add_argument("--notebooks", default="notebooks")
    r.add_argument("--out-dir", default="artifacts/executed")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "JSON")
    )
    f = sub.add_parser("refresh", help="re-execute notebooks in place on the CPU")
    f.add_argument("--notebooks", default="notebooks")
    f.add_argument("--only", help="just the notebooks whose file name contains this (01_)")
    args = parser.parse_args(argv)
    if args.command == "refresh":
        refresh(Path(args.notebooks), only=args.only)
        return 0
    params = {name: json.loads(value) for name, value in args.parameter}
    runs = run_all(Path(args.notebooks), Path(args.out_dir), args.device, params)
    if not runs:
        print(f"no notebooks found in {args.notebooks}", file=sys.stderr)
        return 1
    print()
    print(summary_table(runs))
    print(f"\nexecuted notebooks and summary.json are in {args.out_dir}/")
    failed = [r for r in runs if r.status != "ok"]
    for r in failed:
        print(f"FAILED {r.notebook}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
