"""``onnx-deploy export``: a model spec to ONNX with the dynamo exporter, validated."""

from __future__ import annotations

import argparse
from pathlib import Path

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import add_force
from onnx_deploy.cli._common import add_signature
from onnx_deploy.cli._common import batch_range
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.cli._common import ints
from onnx_deploy.cli._common import model_source
from onnx_deploy.cli._common import step
from onnx_deploy.core.defaults import DEFAULT_MAX_BATCH
from onnx_deploy.core.defaults import DEFAULT_OPSET

HELP = "export a PyTorch model to ONNX (dynamo exporter) and validate it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        help="model spec: torchvision:NAME, path/to/file.py:factory or hf:DIR (a Hugging "
        "Face save_pretrained folder: inputs, dims and output names come from the model)",
    )
    p.add_argument("-o", "--output", help="output .onnx path (default: NAME.onnx)")
    p.add_argument(
        "--weights", help="state-dict checkpoint, loaded with torch.load(weights_only=True)"
    )
    p.add_argument(
        "--pretrained", action="store_true", help="torchvision's published weights (downloads)"
    )
    p.add_argument(
        "--input-shape",
        type=ints,
        help="one float input: one sample's shape without batch, e.g. 3,224,224 (several "
        "inputs, integer inputs, dynamic dims beyond the batch: --input/--dim/--example)",
    )
    add_signature(p, data_flag="example")
    p.add_argument(
        "--batch",
        type=batch_range,
        default=(1, DEFAULT_MAX_BATCH),
        help=f"dynamic batch range MIN:MAX (default 1:{DEFAULT_MAX_BATCH}); with --input, the "
        "range of a dim named batch",
    )
    p.add_argument(
        "--static", action="store_true", help="fixed batch of MIN instead of a dynamic batch"
    )
    p.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail when the dynamo exporter fails (default: try the TorchScript exporter, "
        "say so, and validate its result)",
    )
    p.add_argument("--report", metavar="DIR", help="keep torch's export report in DIR")
    cache = p.add_mutually_exclusive_group()
    cache.add_argument(
        "--with-cache",
        action="store_true",
        help="hf: causal LMs (the default for them): export with past_key_values inputs and "
        "present outputs (one graph for prefill and decode; run it with onnx-deploy generate); "
        "encoder-decoders (T5, BART, Whisper): a folder -o DIR with encoder_model.onnx, "
        "decoder_model.onnx and decoder_with_past_model.onnx",
    )
    cache.add_argument(
        "--no-cache",
        action="store_true",
        help="hf: causal LMs: export one forward pass without a cache (logits only)",
    )
    p.add_argument(
        "--no-validate", action="store_true", help="skip the PyTorch vs ONNX Runtime check"
    )
    add_force(p)


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.sources import spec_name
    from onnx_deploy.workflows.pipeline import export_spec

    output = args.output or f"{Path(spec_name(args.model)).stem}.onnx"
    if args.with_cache and _is_seq2seq(args.model):
        from onnx_deploy.convert.seq2seq import export_seq2seq

        folder = args.output or Path(spec_name(args.model)).stem + "_onnx"
        emit(args, export_seq2seq(args.model, folder, opset=args.opset, force=args.force))
        return EXIT_OK
    if args.with_cache or (not args.no_cache and _is_causal_lm(args.model)):
        from onnx_deploy.convert.hf import export_decoder
        from onnx_deploy.convert.hf import is_hf_spec

        if not is_hf_spec(args.model):
            return fail("--with-cache takes an hf:DIR causal LM (a save_pretrained folder)")
        decoder = export_decoder(args.model, output, opset=args.opset, force=args.force)
        emit(args, decoder)
        return EXIT_OK
    result = export_spec(
        model_source(args), output, batch=args.batch, static=args.static,
        exporter=args.exporter, opset=args.opset, fallback=not args.no_fallback,
        report_dir=args.report, validate=not args.no_validate, force=args.force,
        log=step(args),
    )  # fmt: skip
    if args.json:
        emit(args, result)
    if not result.ok:
        return fail("the exported model does not match PyTorch (see above)")
    return EXIT_OK


def _is_seq2seq(spec: str) -> bool:
    """An ``hf:`` folder holding an encoder-decoder that generates (T5, BART, Whisper):
    with --with-cache it exports to a folder in optimum's layout."""
    from onnx_deploy.convert.hf import is_hf_spec
    from onnx_deploy.convert.hf import load_config
    from onnx_deploy.convert.seq2seq import is_seq2seq

    return is_hf_spec(spec) and is_seq2seq(load_config(spec))


def _is_causal_lm(spec: str) -> bool:
    """An ``hf:`` folder whose config names a causal LM: it exports with its cache, as
    optimum exports text generation (``--no-cache`` for one forward pass)."""
    from onnx_deploy.convert.hf import is_decoder
    from onnx_deploy.convert.hf import is_hf_spec
    from onnx_deploy.convert.hf import load_config

    return is_hf_spec(spec) and is_decoder(load_config(spec))
