"""``onnx-deploy generate``: tokens from a decoder exported with its KV cache."""

from __future__ import annotations

import argparse

from onnx_deploy.cli._common import EXIT_OK
from onnx_deploy.cli._common import emit
from onnx_deploy.cli._common import fail
from onnx_deploy.cli._common import token_ids

HELP = "generate tokens with a decoder exported with --with-cache (ONNX Runtime, KV cache)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        help=".onnx from `onnx-deploy export hf:DIR --with-cache` (with --reference: also a "
        "folder of onnxruntime-genai's model builder)",
    )
    p.add_argument("--prompt-ids", type=token_ids, help="the prompt as token ids: 5,17,99")
    p.add_argument(
        "--prompt", help="the prompt as text: needs --tokenizer (a folder with a saved tokenizer)"
    )
    p.add_argument("--tokenizer", help="a save_pretrained folder holding the tokenizer")
    p.add_argument(
        "--audio",
        help="speech encoder-decoders (a Whisper folder): a .wav (PCM) or .npy clip, its "
        "log-mel features computed from the folder's preprocessor_config.json",
    )
    p.add_argument("--sample-rate", type=int, help="with --audio FILE.npy: its sample rate")
    p.add_argument("--max-new-tokens", type=int, default=32, help="default 32")
    p.add_argument("--eos-token-id", type=int, help="stop at this token (default: never)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample; default 1.0")
    p.add_argument("--top-k", type=int, default=0, help="with --sample: the k best (0: all)")
    p.add_argument("--seed", type=int, default=0, help="with --sample; default 0")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")
    check = p.add_argument_group(
        "token check", "greedy tokens against a reference over many prompts (with --reference)"
    )
    check.add_argument(
        "--reference",
        help="hf:DIR (transformers' generate) or another decoder .onnx: report identical "
        "prompts, teacher-forced agreement, the first differing step and its margin",
    )
    check.add_argument(
        "--prompts",
        help="prompts file: .npy int rows left-padded with -1, or .npz with input_ids and "
        "attention_mask (default: 64 random prompts)",
    )
    check.add_argument("--num-prompts", type=int, default=64, help="random prompts; default 64")
    check.add_argument(
        "--num-beams",
        type=int,
        help="encoder-decoder folders: 1 compares greedy decoding where the model's generation "
        "config asks for beams (beam search is not run here)",
    )
    check.add_argument(
        "--min-identical",
        type=float,
        default=1.0,
        help="share of prompts that must be identical (a reference near-tie not counted); "
        "default 1.0",
    )
    check.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="decode the prompts in left-padded batches of this size on both sides; default 1",
    )
    check.add_argument(
        "--past-limit", action="store_true", help="run past the model's position limit"
    )
    check.add_argument(
        "--genai",
        metavar="DIR",
        help="with --bench: also time this folder of onnxruntime-genai's model builder on "
        "onnxruntime-genai, in its own block (MODEL itself may be such a folder for the "
        "token check)",
    )
    check.add_argument(
        "--bench",
        action="store_true",
        help="prefill and decode tokens/s over the prompts (and --reference hf:DIR's generate "
        "in its own block), decode against this machine's memory-read bound",
    )


def run(args: argparse.Namespace) -> int:
    from onnx_deploy.infer.genai import is_genai_folder
    from onnx_deploy.infer.generate import generate
    from onnx_deploy.infer.generate import load_tokenizer

    if is_genai_folder(args.model) and (args.reference is None or args.bench):
        return fail(
            f"{args.model} is a folder of onnxruntime-genai's model builder: check its tokens "
            "with --reference hf:DIR, or time it with --bench --genai DIR beside an .onnx"
        )
    if args.genai is not None and not args.bench:
        return fail("--genai DIR is for --bench (a genai folder is checked as MODEL itself)")
    from onnx_deploy.infer.seq2seq import is_seq2seq_folder

    if is_seq2seq_folder(args.model):
        return _seq2seq(args)
    if args.bench:
        return _bench(args)
    if args.reference is not None:
        return _check(args)
    if args.prompts is not None:
        return fail("--prompts is for the token check: add --reference hf:DIR")

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


def _check(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.generation import check_generation

    if args.prompt_ids is not None or args.prompt is not None:
        return fail("the token check takes --prompts FILE (or random prompts), not --prompt")
    result = check_generation(
        args.model, args.reference, prompts=args.prompts, num_prompts=args.num_prompts,
        max_new_tokens=args.max_new_tokens, min_identical=args.min_identical,
        eos_token_id=args.eos_token_id, threads=args.threads, past_limit=args.past_limit,
        batch_size=args.batch_size,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK if result.ok else fail("the tokens differ on more prompts than allowed (above)")


def _seq2seq(args: argparse.Namespace) -> int:
    """An encoder-decoder folder (``export hf:DIR --with-cache``): the token check against
    hf:DIR, or one answer to --prompt-ids (the encoder's token ids)."""
    from onnx_deploy.workflows.generation import check_seq2seq

    if args.bench:
        from onnx_deploy.workflows.generation import bench_seq2seq

        if args.reference is not None and not args.reference.startswith("hf:"):
            return fail("--bench --reference takes hf:DIR (transformers' generate)")
        num = args.num_prompts if args.num_prompts != 64 else 8  # timing: 8 inputs by default
        emit(args, bench_seq2seq(
            args.model, reference=args.reference, num_inputs=num,
            max_new_tokens=args.max_new_tokens, threads=args.threads,
        ))  # fmt: skip
        return EXIT_OK
    if args.audio is not None:
        from onnx_deploy.workflows.generation import transcribe

        result = transcribe(
            args.model, args.audio, reference=args.reference, sample_rate=args.sample_rate,
            max_new_tokens=args.max_new_tokens, threads=args.threads,
        )  # fmt: skip
        emit(args, result)
        return EXIT_OK if result.ok else fail("the tokens differ from the reference's")
    if args.reference is not None:
        result = check_seq2seq(
            args.model, args.reference, inputs=args.prompts, num_inputs=args.num_prompts,
            max_new_tokens=args.max_new_tokens, min_identical=args.min_identical,
            num_beams=args.num_beams, threads=args.threads,
        )  # fmt: skip
        emit(args, result)
        return EXIT_OK if result.ok else fail("the tokens differ on more inputs than allowed")
    if args.prompt_ids is None:
        return fail("give the encoder's input as --prompt-ids 5,17,99, or check with --reference")
    import numpy as np

    from onnx_deploy.infer.seq2seq import Seq2SeqGenerator

    ids = np.asarray([args.prompt_ids], np.int64)
    generator = Seq2SeqGenerator(args.model, threads=args.threads)
    eos = args.eos_token_id if args.eos_token_id is not None else -1
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if args.sample:
        tokens = generator.sample(
            feeds, args.max_new_tokens, seed=args.seed, temperature=args.temperature,
            top_k=args.top_k, eos_token_id=eos,
        )[0]  # fmt: skip
    else:
        tokens = generator.greedy(feeds, args.max_new_tokens, eos)[0]
    print(f"tokens    {','.join(map(str, tokens))}")
    return EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from onnx_deploy.workflows.generation import bench_generation

    if args.reference is not None and not args.reference.startswith("hf:"):
        return fail("--bench --reference takes hf:DIR (transformers' generate)")
    num = args.num_prompts if args.num_prompts != 64 else 8  # timing: 8 prompts by default
    result = bench_generation(
        args.model, reference=args.reference, prompts=args.prompts, num_prompts=num,
        max_new_tokens=args.max_new_tokens, threads=args.threads, genai=args.genai,
    )  # fmt: skip
    emit(args, result)
    return EXIT_OK
