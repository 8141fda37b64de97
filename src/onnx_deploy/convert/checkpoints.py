"""Safe checkpoint loading: ``torch.load(weights_only=True)``, tensors and no code."""

from __future__ import annotations

import argparse
import os
import pickle
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from onnx_deploy.core.errors import CheckpointError
from onnx_deploy.core.errors import first_line

if TYPE_CHECKING:
    import torch

__all__ = ["apply_checkpoint", "load_checkpoint", "train_command"]


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a state dict with ``torch.load(weights_only=True)``: tensors, no code.

    A checkpoint that pickles arbitrary objects (a whole ``nn.Module``, custom classes)
    is refused, because unpickling it could run any code it carries.
    """
    from onnx_deploy.core.extras import require

    torch = require("torch", "loading a checkpoint")

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{p} needs unsafe unpickling (it stores Python objects, not just tensors), so it "
            "was not loaded. If you trust its source, re-save only the weights: "
            "torch.save(model.state_dict(), 'weights.pt'), then pass that file. "
            f"(torch said: {first_line(e)})"
        ) from e
    except Exception as e:
        raise CheckpointError(
            f"{p} is not a readable torch checkpoint ({type(e).__name__}: {e})"
        ) from e
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(
            f"{p} holds a {type(obj).__name__}, not a state dict; save model.state_dict()"
        )
    return obj


def apply_checkpoint(model: torch.nn.Module, path: str | os.PathLike[str]) -> torch.nn.Module:
    """Load safe weights into ``model``; strips a ``module.`` (DataParallel) prefix."""
    state = load_checkpoint(path)
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path} does not fit the model: {first_line(e)} ... "
            "Check that the checkpoint belongs to this architecture and number of classes."
        ) from e
    return model


def train_command(
    argv: Sequence[str] | None,
    *,
    description: str,
    checkpoint: str | os.PathLike[str],
    epochs: int,
    fit: Callable[[int, int], tuple[Any, str]],
) -> int:
    """The ``python -m`` entry of a shipped model: ``--output`` (default ``checkpoint``),
    ``--epochs``, ``--seed``, ``--force``; ``fit(epochs, seed)`` returns the trained model
    and a line saying how it scores; the state dict is written atomically."""
    from onnx_deploy.core.extras import require
    from onnx_deploy.core.files import atomic_output

    torch = require("torch", "training a model")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", default=str(checkpoint))
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model, score = fit(args.epochs, args.seed)
    with atomic_output(args.output, force=args.force) as tmp:
        torch.save(model.state_dict(), tmp)
    print(f"trained in {time.perf_counter() - start:.1f} s; {score}; saved {args.output}")
    return 0
