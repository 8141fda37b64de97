"""The committed notebooks are executed, shaped as the guide asks, and the runner works."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell
from nbformat.v4 import new_markdown_cell
from nbformat.v4 import new_notebook

from onnx_deploy.teach.notebooks import LineProgress
from onnx_deploy.teach.notebooks import find_notebooks
from onnx_deploy.teach.notebooks import kernel_manager_class
from onnx_deploy.teach.notebooks import key_figures
from onnx_deploy.teach.notebooks import main
from onnx_deploy.teach.notebooks import run_all
from onnx_deploy.teach.notebooks import summary_table

NOTEBOOKS = find_notebooks(Path(__file__).resolve().parents[1] / "notebooks")
IGNORE = re.compile(r"^\s*#\s*NBVAL_(IGNORE_OUTPUT|SKIP)\s*$", re.M)


def test_the_learning_path_exists() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert names[:5] == [
        "01_export.ipynb",
        "02_slim.ipynb",
        "03_validate.ipynb",
        "04_runtime.ipynb",
        "05_quantization.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_a_full_top_to_bottom_run(path: Path) -> None:
    nb = nbformat.read(path, 4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: unexecuted cells; run `make notebooks-refresh`"
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: not one top-to-bottom run: {counts}"
    )
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: committed with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path: Path) -> None:
    nb = nbformat.read(path, 4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].source.startswith(f"# {path.name[:2]} ·"), "title first"
    for heading in (
        "**You will learn**",
        "**Prerequisites:**",
        "## What you learned",
        "## Exercises",
    ):
        assert heading in text, f"{path.name} lacks {heading}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'device = "auto"' in params[0].source
    assert any("key-figures" in c.metadata.get("tags", []) for c in code)
    ignored = [c for c in code if IGNORE.search(c.source)]
    assert len(ignored) / len(code) <= 0.4, f"{path.name}: {len(ignored)}/{len(code)} cells ignored"
    asserts = sum(c.source.count("assert ") for c in code)
    assert asserts >= 2, f"{path.name}: key claims must be asserted in code"


def _tiny_notebook(path: Path, fail: bool) -> None:
    cells = [
        new_markdown_cell("# tiny"),
        new_code_cell('device = "auto"\nvalue = 2', metadata={"tags": ["parameters"]}),
        new_code_cell("result = value * 21"),
        new_code_cell("raise ValueError('boom')" if fail else "print('fine')"),
        new_code_cell(
            'import json\nprint(json.dumps({"answer": result, "device": device}))',
            metadata={"tags": ["key-figures"]},
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_runner_summarises_and_names_the_failing_cell(tmp_path: Path, capsys) -> None:
    src = tmp_path / "nbs"
    src.mkdir()
    _tiny_notebook(src / "01_ok.ipynb", fail=False)
    _tiny_notebook(src / "02_bad.ipynb", fail=True)
    out = tmp_path / "executed"
    runs = run_all(src, out, device="cpu", parameters={"value": 1})
    assert [r.status for r in runs] == ["ok", "failed"]
    assert runs[0].key_figures == {"answer": 21, "device": "cpu"}
    assert "ValueError" in runs[1].error and "boom" in runs[1].error and "cell" in runs[1].error
    summary = json.loads((out / "summary.json").read_text())
    assert [s["notebook"] for s in summary] == ["01_ok.ipynb", "02_bad.ipynb"]
    assert (out / "01_ok.ipynb").exists() and not list(src.glob("*.out*"))
    table = summary_table(runs)
    assert "01_ok.ipynb" in table and "answer=21" in table
    assert key_figures(nbformat.read(out / "01_ok.ipynb", 4)) == {"answer": 21, "device": "cpu"}
    capsys.readouterr()
    assert main(["run", "--notebooks", str(src), "--out-dir", str(out), "--device", "cpu"]) == 1
    printed = capsys.readouterr()
    assert "notebook" in printed.out and "FAILED 02_bad.ipynb" in printed.err


def test_progress_and_no_kernel_noise(tmp_path: Path, capfd) -> None:
    src = tmp_path / "nbs"
    src.mkdir()
    _tiny_notebook(src / "01_ok.ipynb", fail=False)
    run_all(src, tmp_path / "executed", device="cpu")
    out, err = capfd.readouterr()
    assert re.search(r"cell (\d+)/\1, \d\d:\d\d elapsed", out), out  # the last cell of N
    assert "without encryption" not in err + out


def test_progress_in_a_log_is_one_line_per_change() -> None:
    log = io.StringIO()  # not a terminal
    progress = LineProgress(log)
    for text in (
        "\r  cell 1/5, 00:00 elapsed",
        "\r  cell 1/5, 00:00 elapsed",
        "\r  cell 3/5, 00:02 elapsed",
        "\n",
    ):
        progress.write(text)
    assert log.getvalue() == "  cell 1/5, 00:00 elapsed\n  cell 3/5, 00:02 elapsed\n"


def test_kernels_use_ipc_sockets_at_an_absolute_path() -> None:
    manager = kernel_manager_class()(kernel_name="python3")
    if os.name != "nt":
        assert manager.transport == "ipc" and os.path.isabs(manager.ip)
