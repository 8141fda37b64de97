"""Weight-only quantization: 4- or 8-bit weights in blocks, activations in float.

A decoder generating one token at a time reads every weight once per token: its decode
speed is bounded by the bytes of weights over the memory read rate, so 4-bit weights
(an eighth of FP32's bytes) raise the bound where INT8 activations do not help. ONNX
Runtime's ``MatMulNBits`` (``com.microsoft``) holds the weights of a ``MatMul`` as ``bits``
integers in blocks of ``block_size`` along the input dimension, each with its scale (and a
zero point unless ``symmetric``); ``accuracy_level`` 4 lets the CPU kernel quantize the
activations to int8 on the fly for its integer dot products. ``GatherBlockQuantized`` does
the same for an embedding table (4 bits only). The raw call this wraps::

    from onnxruntime.quantization import matmul_nbits_quantizer as m
    cfg = m.DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True,
                                         accuracy_level=4, bits=4)
    q = m.MatMulNBitsQuantizer(onnx.load("model.onnx"), algo_config=cfg)
    q.process(); q.model.save_model_to_file("model.int4.onnx", True)

RTN (round to nearest) needs no data; HQQ (``algorithm="hqq"``, 4 bits) fits the scales to
the weights, also without data. A decoder (a file with ``past_key_values`` inputs) is
validated by its greedy tokens against its parent (``infer.tokens``); any other model by the
``int8`` tolerance preset. Past 2 GB the weights go to external data, as the input's did.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnx_deploy.core.errors import QuantizeError
from onnx_deploy.core.errors import first_line
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import file_size
from onnx_deploy.core.files import over_protobuf_limit
from onnx_deploy.infer.tokens import check_against_parent
from onnx_deploy.infer.tokens import is_cached_decoder

ALGORITHMS = ("rtn", "hqq")


def quantize_weight_only(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    bits: int = 4,
    block_size: int = 32,
    symmetric: bool = True,
    accuracy_level: int | None = 4,
    embeddings: bool = True,
    algorithm: str = "rtn",
    nodes_to_exclude: Sequence[str] = (),
    validate: bool = True,
    validation_inputs: Any = None,
    labels: Any = None,
    force: bool = False,
) -> Any:
    """``MatMulNBits`` weights (the module docstring); ``embeddings``: the token embedding
    as ``GatherBlockQuantized`` too (4 bits). The file is written only when its check
    passes (a decoder: ``infer.tokens.check_against_parent``; else the ``int8`` preset)."""
    from onnxruntime.quantization import matmul_nbits_quantizer as nbits
    from onnxruntime.quantization.quant_utils import QuantFormat

    from onnx_deploy.convert.quantize import QuantizeResult
    from onnx_deploy.convert.quantize import is_quantized
    from onnx_deploy.infer.modelinfo import load_onnx

    if bits not in (4, 8):
        raise QuantizeError(f"weight-only quantization takes 4 or 8 bits, got {bits}")
    if algorithm not in ALGORITHMS:
        raise QuantizeError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if block_size < 16 or block_size & (block_size - 1):
        raise QuantizeError(f"block_size must be a power of 2, at least 16; got {block_size}")
    parent = load_onnx(input_path)
    if is_quantized(parent) or any(n.op_type == "MatMulNBits" for n in parent.graph.node):
        raise QuantizeError(f"{input_path} is quantized already; start from the float model")
    decoder = is_cached_decoder(parent)
    # onnxruntime's HQQ quantizes MatMul weights only ("Gather quantization is not
    # supported yet in HQQ"): with it the embedding stays float, and the result says so
    hqq_embedding = algorithm == "hqq" and embeddings and bits == 4
    embed = embeddings and bits == 4 and algorithm != "hqq"
    ops: tuple[str, ...] = ("MatMul", "Gather") if embed else ("MatMul",)
    axes = (("MatMul", 0), ("Gather", 1))
    if algorithm == "hqq":
        if bits != 4:
            raise QuantizeError("HQQ in onnxruntime takes 4 bits; use --algorithm rtn for 8")
        config: Any = nbits.HQQWeightOnlyQuantConfig(
            block_size=block_size, bits=bits, op_types_to_quantize=ops, quant_axes=axes
        )
    else:
        config = nbits.DefaultWeightOnlyQuantConfig(
            block_size=block_size, is_symmetric=symmetric, accuracy_level=accuracy_level,
            quant_format=QuantFormat.QOperator, op_types_to_quantize=ops, quant_axes=axes,
            bits=bits,
        )  # fmt: skip
    start = time.perf_counter()
    try:
        quantizer = nbits.MatMulNBitsQuantizer(
            parent, bits=bits, block_size=block_size, is_symmetric=symmetric,
            accuracy_level=accuracy_level, nodes_to_exclude=list(nodes_to_exclude),
            op_types_to_quantize=ops, quant_axes=axes, algo_config=config,
        )  # fmt: skip
        with _quiet_quantizer():
            quantizer.process()
    except Exception as e:
        raise QuantizeError(
            f"onnxruntime's MatMulNBitsQuantizer failed on {input_path}: {first_line(e)}"
        ) from e
    model = quantizer.model.model
    del parent  # the float weights: the quantized model holds its own
    quantized = sum(n.op_type in ("MatMulNBits", "GatherBlockQuantized") for n in model.graph.node)
    if not quantized:
        raise QuantizeError(
            f"{input_path}: no MatMul with a constant weight to quantize (weight-only "
            "quantization suits transformers and decoders)"
        )
    seconds = time.perf_counter() - start
    counts: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type in ("MatMulNBits", "GatherBlockQuantized"):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    details: dict[str, Any] = {
        "bits": bits, "block_size": block_size, "symmetric": symmetric,
        "accuracy_level": accuracy_level, "algorithm": algorithm,
        "nodes": ", ".join(f"{v} {k}" for k, v in counts.items()),
    }  # fmt: skip
    with atomic_output(output_path, force=force) as tmp:
        external = over_protobuf_limit(model)
        quantizer.model.save_model_to_file(str(tmp), use_external_data_format=external)
        del model, quantizer
        report = tokens = None
        notes: list[str] = []
        if validate and decoder:
            tokens = check_against_parent(input_path, tmp, str(output_path))
            if not tokens.ok:
                raise QuantizeError(
                    tokens.summary() + f"\n{bits}-bit weights change the greedy tokens; "
                    "nothing was written. Try --block-size 16, 8 bits, or --algorithm hqq."
                )
        elif validate:
            from onnx_deploy.convert.quantize import check_quantized

            report, _ = check_quantized(
                input_path, tmp, output_path, "int8", True, validation_inputs, labels
            )
        if external:
            notes.append("weights in external data beside the file (past protobuf's 2 GB)")
        if bits == 4:
            notes.append("opset raised to 21 (the int4 type); ONNX Runtime 1.20 or newer loads it")
        if hqq_embedding:
            notes.append("the token embedding stays float: onnxruntime's HQQ quantizes MatMul only")
        size = file_size(tmp)
    result = QuantizeResult(
        str(input_path), str(output_path), f"int{bits}-weight", details,
        file_size(input_path), size, seconds, report, {}, tuple(notes), None,
    )  # fmt: skip
    if tokens is not None:
        from dataclasses import replace

        result = replace(result, tokens=tokens)
    return result


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Silence the quantizer's warnings: that it raises the opset to 21 for the int4
    type (said in the result's notes) and numpy's division by an all-zero block's scale
    (the block is stored as zeros, which is what it holds)."""
    import logging
    import warnings

    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
