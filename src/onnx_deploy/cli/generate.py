"""``onnx-deploy generate``: tokens from a decoder exported with its KV cache."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.cli._common import token_ids

HELP = "generate tokens with a decoder exported with --with-cache (ONNX Runtime, KV cache)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".onnx from `onnx-deploy export hf:DIR --with-cache`")
    p.add_argument("--prompt-ids", type=token_ids, help="the prompt as token ids: 5,17,99")
    p.add_argument(
        "--prompt", help="the prompt as text: needs --tokenizer (a folder with a saved tokenizer)"
    )
    p.add_argument("--tokenizer", help="a save_pretrained folder holding the tokenizer")
    p.add_argument("--max-new-tokens", type=int, default=32, help="default 32")
    p.add_argument("--eos-token-id", type=int, help="stop at this token (default: never)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample; default 1.0")
    p.add_argument("--top-k", type=int, default=0, help="with --sample: the k best (0: all)")
    p.add_argument("--seed", type=int, default=0, help="with --sample; default 0")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.infer.generate import generate
    from onnx_deploy.infer.generate import load_tokenizer

    if (args.prompt_ids is None) == (args.prompt is None):
        return fail("give the prompt once: --prompt-ids 5,17,99 or --prompt TEXT --tokenizer DIR")
    tokenizer = None
    prompt = args.prompt_ids
    if args.prompt is not None:
        if not args.tokenizer:
            return fail("--prompt needs --tokenizer DIR (a folder with a saved tokenizer)")
        tokenizer = load_tokenizer(args.tokenizer)
        prompt = tokenizer.encode(args.prompt)
    result = generate(
        args.model, prompt, max_new_tokens=args.max_new_tokens, eos_token_id=args.eos_token_id,
        do_sample=args.sample, temperature=args.temperature, top_k=args.top_k, seed=args.seed,
        device=args.device, threads=args.threads,
    )  # fmt: skip
    if tokenizer is not None:
        from dataclasses import replace

        result = replace(result, text=tokenizer.decode(list(result.tokens)))
    emit(args, result)
    return EXIT_OK
