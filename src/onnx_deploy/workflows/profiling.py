"""``onnx-deploy profile``: ONNX Runtime's per-op profile of one model (``profile_model``),
on real samples or valid random inputs from its signature, with an optional plot."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from onnx_deploy.core.files import check_output_path
from onnx_deploy.infer.profile import ProfileResult
from onnx_deploy.infer.profile import profile_model


def profile_report(
    model: str | os.PathLike[str],
    *,
    batch_size: int = 1,
    data: str | os.PathLike[str] | None = None,
    dims: Sequence[Any] = (),
    inputs: Sequence[Any] = (),
    runs: int = 20,
    warmup: int = 5,
    threads: int | None = None,
    peak: bool = True,
    plot: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> ProfileResult:
    """Profile ``model`` at ``batch_size``: on the first samples of ``data`` (a
    ``.npz``/``.npy``/``.pt`` file), else on random inputs valid for its signature (``dims``
    and ``inputs`` as ``--dim``/``--input`` give them: token ids in range, padding masks);
    the plot (``plot_profile``) goes to ``plot``, refused before any work if it exists."""
    from onnx_deploy.core.feeds import load_data
    from onnx_deploy.core.signature import Signature
    from onnx_deploy.infer.modelinfo import describe
    from onnx_deploy.workflows.pipeline import batch_feeds

    if plot:
        check_output_path(plot, force=force)
    specs = describe(model).inputs
    real = load_data(data) if data is not None else None
    sig = Signature.from_specs(specs, dims, inputs)
    feeds = batch_feeds(real, sig, batch_size, specs)
    result = profile_model(
        model, feeds, batch_size=batch_size, runs=runs, warmup=warmup, threads=threads, peak=peak
    )
    if plot:
        from onnx_deploy.present.plots import plot_profile
        from onnx_deploy.present.plots import save_figure

        save_figure(plot_profile(result), plot, force=force)
    return result
