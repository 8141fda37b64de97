"""Defaults shared by the library and the command line (standard library only, so that
building the CLI's parser imports nothing heavy). Each is the default of a library
function; the CLI shows the same value in its --help."""

from __future__ import annotations

# export
DEFAULT_OPSET = 20
MIN_OPSET = 18
DEFAULT_MAX_BATCH = 1024
# dynamic dims other than the batch (sequence length, image size) that nobody declared
DEFAULT_MAX_DIM = 4096
DEFAULT_DIM_SIZE = 16
DEFAULT_DIM_PROBES = (8, 16, 32)
# validate: batch sizes compared when no inputs are given
VALIDATE_BATCH_SIZES = (1, 2, 8)
REAL_DATA_BATCH = 32  # real samples are compared in batches of this size
SLIM_CHECK_BATCH_SIZES = (1, 4)
# bench
BENCH_BATCH_SIZES = (1, 8)
BENCH_WARMUP = 10
BENCH_ITERS = 50
INTERLEAVED_ROUNDS = 5
# pipeline
PIPELINE_WARMUP = 5
PIPELINE_ITERS = 30
# quantize
CALIBRATION_SIZE = 200
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("int8", "uint8")
DYNAMIC_OP_TYPES = ("MatMul", "Gemm")
# tolerance presets by precision
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# TensorRT: what a build may ask for ("auto": the graph's own precision), and its workspace
TRT_PRECISIONS = ("auto", "fp32", "fp16", "int8")
TRT_WORKSPACE = 4 << 30
