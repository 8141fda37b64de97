from __future__ import annotations

from pathlib import Path

import pytest

from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.infer.bench import summarize
from onnx_deploy.present.plots import plot_latency
from onnx_deploy.present.plots import plot_op_histogram
from onnx_deploy.present.plots import save_figure


def test_latency_plot(tmp_path: Path) -> None:
    results = [
        summarize("m", backend, "cpu", b, 1, 0, [ms * b, ms * b * 1.1], environment={})
        for backend, ms in (("torch", 4.0), ("onnxruntime", 2.0))
        for b in (1, 2, 4)
    ]
    fig = plot_latency(results)
    lat, thr = fig.axes
    assert len(thr.lines) == 2 and lat.get_xlabel() == "batch size"
    out = save_figure(fig, tmp_path / "lat.png")
    assert Path(out).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(OutputExistsError):
        save_figure(fig, tmp_path / "lat.png")


def test_op_histogram_plot() -> None:
    fig = plot_op_histogram({"Conv": 3, "Identity": 4}, {"Conv": 3}, labels=("raw", "slim"))
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["Conv", "Identity"]
    widths = [p.get_width() for p in ax.patches]
    assert widths == [3, 4, 3, 0]
    assert "raw (7)" in [t.get_text() for t in ax.get_legend().get_texts()]
