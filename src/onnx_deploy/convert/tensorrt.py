"""TensorRT engines from ONNX files, for TensorRT 11 (strongly typed) with 10.x support.

TensorRT 11 builds the precision the graph says: its networks are always strongly typed,
and the FP16/INT8 builder flags, the INT8 calibrators and ``EXPLICIT_BATCH`` are gone
(NVIDIA's "Migrating from TensorRT 10.x to 11.x" guide). So FP16 is an FP16 graph
(``fp16_graph``) and INT8 a QDQ graph (``onnx_deploy.convert.quantize``); on 10.x the old flags
remain available behind a version branch (``legacy_flags``).

The build follows NVIDIA's Python API guide ("The Python API: Importing a Model Using
the ONNX Parser", "Building an Engine", "Working with Dynamic Shapes: Optimization
Profiles", "Timing Cache"): ``Builder(logger)``, ``create_network(flags)``,
``OnnxParser(network, logger)``, ``parse_from_file(path)`` (the path, so weights in an
external ``.onnx.data`` file are found), ``create_builder_config()``,
``set_memory_pool_limit(WORKSPACE, n)``, one ``create_optimization_profile()`` per
profile with ``set_shape(name, min, opt, max)`` for every dynamic input,
``create_timing_cache`` / ``set_timing_cache``, ``build_serialized_network``.

Everything that imports ``tensorrt`` does it lazily; where it is missing, the error says
what to install. The pure-Python parts (profiles, the cache key, the command lines, the
version branch) need no TensorRT and are unit-tested on any machine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from onnx_deploy.core.defaults import TRT_PRECISIONS
from onnx_deploy.core.defaults import TRT_WORKSPACE
from onnx_deploy.core.errors import MissingExtraError
from onnx_deploy.core.errors import OutputExistsError
from onnx_deploy.core.errors import TensorRTError
from onnx_deploy.core.files import atomic_output
from onnx_deploy.core.files import file_sha256
from onnx_deploy.core.files import human_size
from onnx_deploy.core.files import write_json
from onnx_deploy.core.results import Result
from onnx_deploy.core.signature import DimRange
from onnx_deploy.core.specs import TensorSpec

INSTALL_HINT = (
    "TensorRT is not installed here. It needs an NVIDIA GPU with CUDA: on a CUDA 13 host, "
    "`pip install tensorrt-cu13` (on CUDA 12, `tensorrt-cu12`); its wheels download "
    "TensorRT's libraries from NVIDIA's package index at install time. Check with "
    '`python -c "import tensorrt; print(tensorrt.__version__)"`. Without a GPU, run the '
    "ONNX file with ONNX Runtime (onnx_deploy.OnnxRuntimeRunner)."
)
DEFAULT_WORKSPACE = TRT_WORKSPACE  # bytes of scratch memory TensorRT may use while building
# A batch dim without a declared range: a narrow profile is faster than a wide one
# (NVIDIA/TensorRT issue 1166), so the default is modest; declare --shapes for more.
DEFAULT_BATCH_PROFILE = DimRange("batch", 1, 64, opt=8)
PRECISIONS = TRT_PRECISIONS

# Every TensorRT name this package uses: class -> members (the conformance test checks
# each against the real bindings of TensorRT 11.x and 10.x, and that the code uses no
# other). Names present only in 10.x are in LEGACY_10X and reached only on 10.x.
TRT_API: dict[str, tuple[str, ...]] = {
    "": ("Builder", "Logger", "OnnxParser", "Runtime", "__version__", "init_libnvinfer_plugins"),
    "Logger": ("WARNING",),
    "Builder": ("create_network", "create_builder_config", "create_optimization_profile",
                "build_serialized_network"),
    "OnnxParser": ("parse_from_file", "num_errors", "get_error"),
    "ParserError": ("desc", "node_name", "node_operator"),
    "NetworkDefinitionCreationFlag": ("STRONGLY_TYPED",),
    "IBuilderConfig": ("set_memory_pool_limit", "add_optimization_profile",
                       "create_timing_cache", "set_timing_cache", "get_timing_cache",
                       "set_flag"),
    "MemoryPoolType": ("WORKSPACE",),
    "BuilderFlag": ("FP16", "INT8", "BF16"),
    "IOptimizationProfile": ("set_shape",),
    "ITimingCache": ("serialize",),
    "Runtime": ("deserialize_cuda_engine",),
    "ICudaEngine": ("create_execution_context",),
    "IExecutionContext": ("set_input_shape", "get_tensor_shape", "set_tensor_address",
                          "execute_async_v3"),
}  # fmt: skip
LEGACY_10X = frozenset({"BuilderFlag.FP16", "BuilderFlag.INT8", "BuilderFlag.BF16"})


# --- TensorRT itself, lazily ------------------------------------------------------------


def load_tensorrt() -> Any:
    """``import tensorrt``, or ``MissingExtraError`` with what to install."""
    try:
        import tensorrt
    except (ImportError, OSError) as e:  # OSError: the wheel without its libraries
        raise MissingExtraError(f"{INSTALL_HINT} ({type(e).__name__}: {e})") from e
    return tensorrt


def major_version(trt: Any) -> int:
    """10 for ``10.16.1.11``, 11 for ``11.4.0.106``."""
    return int(str(trt.__version__).split(".")[0])


def strongly_typed_only(trt: Any) -> bool:
    """TensorRT 11 and later: precision comes from the graph, never from builder flags."""
    return major_version(trt) >= 11


def network_flags(trt: Any, legacy: bool) -> int:
    """Flags for ``create_network``: strongly typed on 10.x unless the legacy precision
    flags are used (they need a weakly typed network); 0 on 11, where the flag is
    deprecated and ignored because every network is strongly typed."""
    if strongly_typed_only(trt) or legacy:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def legacy_flags(trt: Any, precision: str) -> list[Any]:
    """The 10.x builder flags for ``precision`` (``fp16``/``int8``/``bf16``); refused on 11."""
    if strongly_typed_only(trt):
        raise TensorRTError(
            f"TensorRT {trt.__version__} has no precision builder flags (removed in 11): "
            f"build from a {precision.upper()} graph instead (fp16_graph(), or a QDQ model "
            "from onnx-deploy quantize)"
        )
    names = {"fp16": ("FP16",), "int8": ("INT8", "FP16"), "bf16": ("BF16",)}[precision]
    return [getattr(trt.BuilderFlag, n) for n in names]


# --- what the graph says -----------------------------------------------------------------


def graph_precision(model: str | os.PathLike[str] | Any) -> str:
    """The precision a strongly typed build of this ONNX graph runs at: ``int8`` with
    Q/DQ nodes, ``fp16`` (or ``bf16``) with half-precision weights or casts, else ``fp32``."""
    from onnx_deploy.infer.modelinfo import load_onnx

    proto = load_onnx(model, load_external_data=False) if not hasattr(model, "graph") else model
    ops = {n.op_type for n in proto.graph.node}
    if {"QuantizeLinear", "DequantizeLinear"} & ops:
        return "int8"
    types = {init.data_type for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Cast":
            types.update(a.i for a in node.attribute if a.name == "to")
    if 10 in types:
        return "fp16"
    if 16 in types:
        return "bf16"
    return "fp32"


# --- optimization profiles ---------------------------------------------------------------

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """One optimization profile: for each dynamic input, its min, opt and max shapes."""

    shapes: tuple[tuple[str, Shape, Shape, Shape], ...]

    def text(self) -> str:
        """``x:1x3x224x224/8x3x224x224/64x3x224x224`` per input, comma-separated."""
        return ",".join(f"{n}:{_x(lo)}/{_x(opt)}/{_x(hi)}" for n, lo, opt, hi in self.shapes)

    def covers(self, name: str, shape: Shape) -> bool:
        for n, lo, _, hi in self.shapes:
            if n == name:
                return len(shape) == len(lo) and all(
                    a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)
                )
        return True  # a static input: TensorRT checks its shape itself


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


def derive_profile(
    specs: Sequence[TensorSpec], dims: Sequence[DimRange] = ()
) -> tuple[Profile, tuple[str, ...]]:
    """A profile covering every dynamic input of ``specs``, with min/opt/max per dim
    from ``dims`` (by name). A batch dim (axis 0) without a range gets
    ``DEFAULT_BATCH_PROFILE``; any other undeclared dim is an error naming it. Returns
    the profile and notes on the defaults used."""
    by_name = {d.name: d for d in dims}
    notes: list[str] = []
    missing: list[str] = []
    shapes = []
    for spec in specs:
        if all(isinstance(d, int) for d in spec.shape):
            continue
        triples = []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                triples.append((dim, dim, dim))
                continue
            rng = by_name.get(str(dim))
            if rng is None and axis == 0:
                rng = dataclasses.replace(DEFAULT_BATCH_PROFILE, name=str(dim or "batch"))
                note = f"{rng.name} not declared: profile {rng.min}:{rng.example}:{rng.max}"
                if note not in notes:
                    notes.append(note)
            if rng is None:
                missing.append(f"{spec.name} axis {axis} ({dim or '?'})")
                continue
            triples.append((rng.min, rng.example, rng.max))
        lo, opt, hi = (tuple(t[i] for t in triples) for i in range(3))
        shapes.append((spec.name, lo, opt, hi))
    if missing:
        raise TensorRTError(
            f"every dynamic input needs a profile range; none for {', '.join(missing)}: "
            "pass --shapes NAME=MIN:OPT:MAX for each (library: dims=[DimRange(...)])"
        )
    return Profile(tuple(shapes)), tuple(notes)


# --- the engine cache ---------------------------------------------------------------------


@dataclass(frozen=True)
class EngineMeta(Result):
    """What an engine is tied to. An engine is reused only when all of it matches."""

    tensorrt: str
    gpu: str
    compute_capability: str
    onnx_sha256: str
    profiles: tuple[str, ...]
    precision: str
    workspace: int
    inputs: tuple[TensorSpec, ...] = field(default=(), compare=False)
    outputs: tuple[TensorSpec, ...] = field(default=(), compare=False)

    def rebuild_reason(self, wanted: EngineMeta) -> str:
        """Why an engine with this metadata cannot serve ``wanted`` ('' when it can)."""
        labels = {
            "tensorrt": "TensorRT version", "gpu": "GPU", "compute_capability":
            "compute capability", "onnx_sha256": "ONNX file (hash)", "profiles": "profiles",
            "precision": "precision", "workspace": "workspace",
        }  # fmt: skip
        changed = [
            f"{label} {getattr(self, key)!s:.40} -> {getattr(wanted, key)!s:.40}"
            for key, label in labels.items()
            if getattr(self, key) != getattr(wanted, key)
        ]
        return "; ".join(changed)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineMeta:
        def specs(items: Any) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in items or ())

        return cls(
            str(d["tensorrt"]), str(d["gpu"]), str(d["compute_capability"]),
            str(d["onnx_sha256"]), tuple(d["profiles"]), str(d["precision"]),
            int(d["workspace"]), specs(d.get("inputs")), specs(d.get("outputs")),
        )  # fmt: skip


def meta_path(plan: str | os.PathLike[str]) -> Path:
    return Path(f"{plan}.json")


def read_meta(plan: str | os.PathLike[str]) -> EngineMeta | None:
    """The metadata next to an engine, or None when there is none (or it is unreadable)."""
    try:
        return EngineMeta.from_dict(json.loads(meta_path(plan).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cache_decision(plan: str | os.PathLike[str], wanted: EngineMeta, force: bool) -> str:
    """'' to reuse the engine at ``plan``; else the reason to (re)build it. A file there
    without our metadata is not a cache entry: it is kept unless ``force``."""
    if not Path(plan).exists():
        return "no engine yet"
    have = read_meta(plan)
    if have is None:
        if not force:
            raise OutputExistsError(
                f"{plan} exists and has no {meta_path(plan).name} saying what it was built "
                "from; choose another path or pass force=True (CLI: --force) to replace it"
            )
        return "an engine without metadata (replaced: --force)"
    if force:
        return "--force"
    return have.rebuild_reason(wanted)


# --- the same build outside Python -------------------------------------------------------


def trtexec_command(
    onnx_path: str | os.PathLike[str],
    plan: str | os.PathLike[str],
    profile: Profile | None = None,
    workspace: int = DEFAULT_WORKSPACE,
    timing_cache: str | os.PathLike[str] | None = None,
) -> str:
    """The trtexec line for the same build, with TensorRT 11's flags only (no --fp16,
    --int8 or --best: precision comes from the graph). ``--stronglyTyped`` makes 10.x
    build the graph's types, as the Python path does (``network_flags``); on 11 every
    network is strongly typed and the flag is deprecated."""
    parts = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={plan}", "--stronglyTyped"]
    if profile is not None and profile.shapes:
        for flag, i in (("minShapes", 1), ("optShapes", 2), ("maxShapes", 3)):
            parts.append(f"--{flag}=" + ",".join(f"{s[0]}:{_x(s[i])}" for s in profile.shapes))
    parts.append(f"--memPoolSize=workspace:{workspace >> 20}M")
    if timing_cache is not None:
        parts.append(f"--timingCacheFile={timing_cache}")
    return " ".join(parts)


def polygraphy_commands(
    onnx_path: str | os.PathLike[str],
    plan: str | os.PathLike[str],
    profile: Profile | None = None,
    workspace: int = DEFAULT_WORKSPACE,
) -> list[str]:
    """``polygraphy convert`` (the build) and ``polygraphy run --trt --onnxrt`` (the
    parity check against ONNX Runtime), with the same profile."""
    shape_args = []
    if profile is not None and profile.shapes:
        for flag, i in (("min", 1), ("opt", 2), ("max", 3)):
            vals = " ".join(f"{s[0]}:[{','.join(map(str, s[i]))}]" for s in profile.shapes)
            shape_args.append(f"--trt-{flag}-shapes {vals}")
    shapes = " ".join(shape_args)
    # --strongly-typed: 10.x builds the graph's types, as the Python path does
    pool = f"--strongly-typed --pool-limit workspace:{workspace}"
    return [
        f"polygraphy convert {onnx_path} --convert-to trt -o {plan} {shapes} {pool}".replace(
            "  ", " "
        ),
        f"polygraphy run {onnx_path} --trt --onnxrt {shapes} {pool}".replace("  ", " "),
    ]


# --- building -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineResult(Result):
    """A built (or reused) engine and how to reproduce it."""

    plan_path: str
    meta: EngineMeta
    reused: bool
    reason: str  # why it was built ('' when reused)
    seconds: float
    size_bytes: int
    precision_built: str
    notes: tuple[str, ...] = ()
    trtexec: str = ""
    polygraphy: tuple[str, ...] = ()

    def summary(self) -> str:
        what = "reused" if self.reused else f"built ({self.reason})"
        lines = [
            f"engine    {self.plan_path}  {human_size(self.size_bytes)}  {self.seconds:.1f} s  "
            f"{what}",
            f"  precision {self.precision_built}  (TensorRT {self.meta.tensorrt}, "
            f"{self.meta.gpu}, sm {self.meta.compute_capability})",
            *(f"  profile {p}" for p in self.meta.profiles),
            *(f"  note    {n}" for n in self.notes),
        ]
        return "\n".join(lines)


def gpu_identity() -> tuple[str, str]:
    """The GPU's name and compute capability (``"8.0"``), from torch."""
    from onnx_deploy.core.extras import require

    torch = require("torch", "TensorRT (its runner uses torch CUDA tensors)")
    if not torch.cuda.is_available():
        raise MissingExtraError(f"no CUDA GPU is visible to torch. {INSTALL_HINT}")
    major, minor = torch.cuda.get_device_capability()
    return torch.cuda.get_device_name(), f"{major}.{minor}"


def build_engine(
    onnx_path: str | os.PathLike[str],
    plan_path: str | os.PathLike[str],
    *,
    dims: Sequence[DimRange] = (),
    profiles: Sequence[Profile] | None = None,
    precision: str = "auto",
    workspace: int = DEFAULT_WORKSPACE,
    timing_cache: str | os.PathLike[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda _: None,
    explain: bool = False,
    trt: Any = None,
    gpu: tuple[str, str] | None = None,
    nms_plugin: bool = False,
    static_check: bool = True,
) -> EngineResult:
    """Build (or reuse) a TensorRT engine for an ONNX file.

    ``dims`` give each dynamic dim's MIN:OPT:MAX (one profile); ``profiles`` several
    explicit ones. ``precision``: ``auto`` builds what the graph holds (the only way on
    TensorRT 11); ``fp16``/``int8`` on an FP32 graph use the builder flags on 10.x and
    are refused on 11, where they would silently build FP32. ``timing_cache``: a file
    read before and written after the build, so rebuilds skip kernel timing. ``explain``:
    log the profile's notes and the same build as trtexec and Polygraphy commands first
    (before TensorRT is imported, so a machine without it still gets them). ``trt`` and
    ``gpu`` are for tests (a recording module, a GPU identity). ``nms_plugin``: for a
    detector with ``add_nms``'s graph, build from a copy whose NMS is TensorRT's
    EfficientNMS plugin (``efficient_nms``; written beside the engine as
    ``NAME.efficientnms.onnx``) instead of the parser's ``INMSLayer``.
    ``static_check``: first check the graph against the ONNX parser's documented rules
    (``check_tensorrt``) and refuse, naming the node and the rule, before TensorRT is
    imported; off only for a TensorRT newer than the rules that is known to take the graph.
    """
    from onnx_deploy.infer.modelinfo import graph_io
    from onnx_deploy.infer.modelinfo import load_onnx

    if precision not in PRECISIONS:
        raise TensorRTError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if nms_plugin:
        onnx_path = _with_nms_plugin(onnx_path, plan_path)
    proto = load_onnx(onnx_path, load_external_data=False)
    if static_check:
        from onnx_deploy.convert.tensorrt_rules import check_tensorrt

        rules = check_tensorrt(proto, name=str(onnx_path))
        if not rules.ok:
            raise TensorRTError(
                f"{rules.summary()}\nfix the graph (a letterbox: `onnx-deploy edit preprocess "
                "--letterbox --no-antialias`), or, for a TensorRT newer than these rules that "
                "takes it, build with --skip-static-check"
            )
        log(
            f"checked   {rules.nodes} nodes against TensorRT {rules.version}'s ONNX rules: none broken"
        )
    inputs, outputs = graph_io(proto)
    if profiles is None:
        profile, notes = derive_profile(inputs, dims)
        profiles = [profile] if profile.shapes else []
    else:
        notes = ()
    first = profiles[0] if profiles else None
    command = trtexec_command(onnx_path, plan_path, first, workspace, timing_cache)
    poly = tuple(polygraphy_commands(onnx_path, plan_path, first, workspace))
    if explain:
        for note in notes:
            log(f"  note    {note}")
        log(f"the same build outside Python:\n  {command}")
        for cmd in poly:
            log(f"  {cmd}")
    in_graph = graph_precision(proto)
    trt = trt or load_tensorrt()
    legacy = precision not in ("auto", in_graph) and in_graph == "fp32"
    if precision not in ("auto", in_graph) and not legacy:
        raise TensorRTError(
            f"asked for {precision} but the graph is {in_graph}: build from the graph you mean "
            "(precision='auto')"
        )
    flags = legacy_flags(trt, precision) if legacy else []  # refused on TensorRT 11
    built = f"{precision} (builder flags, TensorRT {trt.__version__})" if legacy else in_graph
    gpu_name, capability = gpu or gpu_identity()
    wanted = EngineMeta(
        str(trt.__version__), gpu_name, capability, file_sha256(onnx_path),
        tuple(p.text() for p in profiles), built, int(workspace), inputs, outputs,
    )  # fmt: skip
    reason = cache_decision(plan_path, wanted, force)
    if not reason:
        log(f"engine    {plan_path}: reused (TensorRT, GPU, ONNX hash, profiles match)")
        return EngineResult(
            str(plan_path), wanted, True, "", 0.0, Path(plan_path).stat().st_size, built,
            tuple(notes), command, poly,
        )  # fmt: skip
    log(f"engine    building {plan_path}: {reason}")
    start = time.perf_counter()
    plan = _build(trt, onnx_path, profiles, flags, legacy, workspace, timing_cache)
    seconds = time.perf_counter() - start
    with atomic_output(plan_path, force=True) as tmp:  # a cache entry: replaced when stale
        tmp.write_bytes(plan)
    write_json(meta_path(plan_path), wanted.to_dict(), force=True)
    return EngineResult(
        str(plan_path), wanted, False, reason, seconds, len(plan), built, tuple(notes),
        command, poly,
    )  # fmt: skip


def _with_nms_plugin(onnx_path: str | os.PathLike[str], plan_path: str | os.PathLike[str]) -> Path:
    """``NAME.efficientnms.onnx`` beside the engine: the ONNX file with its NMS swapped
    for the EfficientNMS plugin (derived, like the engine: rewritten with it)."""
    from onnx_deploy.convert.surgery.detection import efficient_nms
    from onnx_deploy.core.files import write_onnx
    from onnx_deploy.infer.modelinfo import load_onnx

    target = Path(plan_path).with_suffix(".efficientnms.onnx")
    swapped = efficient_nms(load_onnx(onnx_path))
    with atomic_output(target, force=True) as tmp:
        write_onnx(swapped, tmp)
    return target


def _build(
    trt: Any,
    onnx_path: str | os.PathLike[str],
    profiles: Sequence[Profile],
    flags: Sequence[Any],
    legacy: bool,
    workspace: int,
    timing_cache: str | os.PathLike[str] | None,
) -> bytes:
    """The build sequence of NVIDIA's Python API guide; returns the serialized engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    # the plugin library's creators (EfficientNMS_TRT, ...): the ONNX parser builds a node
    # it has no importer for from the plugin of the same name
    if not trt.init_libnvinfer_plugins(logger=logger, namespace=""):
        raise TensorRTError(
            "TensorRT's plugin library (libnvinfer_plugin) did not initialise: reinstall "
            "TensorRT with its plugins (pip install tensorrt)"
        )
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, legacy))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # the path: external weights are found
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        details = "; ".join(
            f"node {error.node_name()} ({error.node_operator()}): {error.desc()}"
            for error in errors
        )
        raise TensorRTError(
            f"TensorRT's ONNX parser rejected {onnx_path}: {details or 'no details'}. Try: "
            "onnx-deploy slim first, another opset, or replace the named nodes"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(pool=trt.MemoryPoolType.WORKSPACE, pool_size=int(workspace))
    for p in profiles:
        profile = builder.create_optimization_profile()
        for name, lo, opt, hi in p.shapes:
            profile.set_shape(input=name, min=lo, opt=opt, max=hi)
        config.add_optimization_profile(profile)
    for flag in flags:  # TensorRT 10.x only (legacy_flags refuses on 11)
        config.set_flag(flag)
    cache_file = Path(timing_cache) if timing_cache is not None else None
    if cache_file is not None:
        data = cache_file.read_bytes() if cache_file.exists() else b""
        cache = config.create_timing_cache(serialized_timing_cache=data)
        config.set_timing_cache(cache=cache, ignore_mismatch=False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise TensorRTError(
            "TensorRT could not build the engine (build_serialized_network returned None); "
            "its log above says why. Try a larger workspace, a narrower profile, or "
            "polygraphy's command (printed) to bisect"
        )
    if cache_file is not None:
        with atomic_output(cache_file, force=True) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


# --- onnxruntime's TensorRT execution provider -------------------------------------------


def ort_tensorrt_options(
    *,
    fp16: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    workspace: int = DEFAULT_WORKSPACE,
    profile: Profile | None = None,
    builder_optimization_level: int | None = None,
    cuda_graph: bool = False,
) -> dict[str, str]:
    """Provider options for ``TensorrtExecutionProvider`` (onnxruntime's TensorRT EP
    documentation): engine and timing caches in ``cache_dir``, the profile's shapes for
    every dynamic input (``"in1:1x3x224x224,in2:..."``), FP16 on request."""
    opts = {"trt_max_workspace_size": str(int(workspace))}
    if fp16:
        opts["trt_fp16_enable"] = "True"
    if cache_dir is not None:
        opts |= {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache_dir),
        }
    if profile is not None and profile.shapes:
        for key, i in (("min", 1), ("opt", 2), ("max", 3)):
            opts[f"trt_profile_{key}_shapes"] = ",".join(
                f"{s[0]}:{_x(s[i])}" for s in profile.shapes
            )
    if builder_optimization_level is not None:
        opts["trt_builder_optimization_level"] = str(builder_optimization_level)
    if cuda_graph:
        opts["trt_cuda_graph_enable"] = "True"
    return opts


# --- an FP16 graph, for TensorRT 11 ------------------------------------------------------


def fp16_graph(
    onnx_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    inputs: Any,
    *,
    headroom: float | None = None,
    force: bool = False,
) -> Any:
    """An FP16 graph with float32 inputs and outputs, for a strongly typed FP16 engine:
    onnxruntime's float16 converter, with the nodes whose activations on ``inputs`` (real
    samples) come near FP16's limit of 65504 kept in FP32 (``fp16_overflow_nodes``), and
    validated against the FP32 model on those samples. NVIDIA recommends ModelOpt
    AutoCast for the same job (``python -m modelopt.onnx.autocast``); its ``[onnx]`` extra
    pins older onnx and onnxruntime than this project (see the onnx-tensorrt skill).
    Returns the ``QuantizeResult``; ``details["kept_fp32"]`` names the nodes kept."""
    from onnx_deploy.convert.quantize import FP16_HEADROOM
    from onnx_deploy.convert.quantize import convert_fp16
    from onnx_deploy.convert.quantize import fp16_overflow_nodes

    hot = fp16_overflow_nodes(onnx_path, inputs, FP16_HEADROOM if headroom is None else headroom)
    return convert_fp16(
        onnx_path,
        output,
        node_block_list=[n.node for n in hot],
        validation_inputs=[inputs] if isinstance(inputs, Mapping) else inputs,
        force=force,
    )
