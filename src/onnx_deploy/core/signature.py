"""A model's input signature: named inputs, their dtypes, and named dynamic dims with ranges.

Exporting a model needs more than ``float32[batch, C, H, W]``: a text model takes int64
token ids and a boolean mask over ``[batch, seq]``, a detector takes an image of any
size, a multi-modal model an image and a metadata vector. A ``Signature`` says all of it:

- ``InputSpec``: one input: a name (the ``forward`` parameter it feeds), a dtype, a shape
  whose dims are ints (fixed) or names (symbolic), and optionally the range generated
  values take (``0..30522`` for token ids of a 30,522-word vocabulary);
- ``DimRange``: one symbolic dim: its name and ``min``/``max`` (and ``opt``, the size
  the example inputs use). A dim name shared by two inputs is the same size in both.

On the command line::

    --input ids:int64:batch,seq:0..30522 --input mask:bool:batch,seq
    --input attention_mask:int64:batch,seq:mask   # a padding mask: ones, then zeros
    --dim batch=1:64 --dim seq=1:512          # MIN:MAX, or MIN:OPT:MAX

A signature makes valid example data (``examples``): floats standard normal, integers
inside their range, boolean masks shaped like padding (each row along the last axis is
False, then True: PyTorch's ``src_key_padding_mask`` for a sequence padded at the end,
never a fully masked one), and inputs of kind ``mask`` (Hugging Face's ``attention_mask``,
int64 or bool) as ones then zeros per row, at least one kept token, the first row unpadded. ``variations`` makes the batches a validation runs: every dynamic dim takes
several sizes, not only the batch. numpy only (``build.export.torch_dynamic_shapes`` turns a
signature into torch's ``dynamic_shapes``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from onnx_deploy.core.defaults import DEFAULT_DIM_PROBES
from onnx_deploy.core.defaults import DEFAULT_DIM_SIZE
from onnx_deploy.core.defaults import DEFAULT_MAX_BATCH
from onnx_deploy.core.defaults import DEFAULT_MAX_DIM
from onnx_deploy.core.errors import SignatureError
from onnx_deploy.core.specs import DTYPES
from onnx_deploy.core.specs import TensorSpec
from onnx_deploy.core.specs import numpy_dtype

Feeds = dict[str, np.ndarray]

# dtypes an example can be generated for: numpy and torch both hold them
INPUT_DTYPES = tuple(d.name for d in DTYPES if d.numpy and d.torch)
_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
# integer inputs without a declared range take values in [0, 10): valid token ids,
# class indices and positions for any vocabulary of 10 or more
DEFAULT_INT_RANGE = (0, 10)
PROBE_AT_LEAST = 16
# A declared MAX up to this is validated too (a sequence of 512 or an image side of 1024
# runs in seconds); larger ones are left to the user's real data.
PROBE_MAX_CAP = 1024
# Kinds of input beyond their dtype: "mask" is a padding mask (1 = keep, 0 = padding).
INPUT_KINDS = ("mask",)


@dataclass(frozen=True)
class DimRange:
    """A symbolic dim's name and size range. ``opt`` is the size example inputs use;
    ``probes`` the sizes a validation tries (default: min, example, twice the example)."""

    name: str
    min: int = 1
    max: int = DEFAULT_MAX_DIM
    opt: int | None = None
    probes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SignatureError(f"dim name {self.name!r} must be an identifier such as 'seq'")
        if not 1 <= self.min <= self.max:
            raise SignatureError(
                f"dim {self.name}: need 1 <= MIN <= MAX, got {self.min}:{self.max}"
            )
        if self.max < 2:
            raise SignatureError(
                f"dim {self.name}: a dynamic dim needs MAX >= 2; write the size {self.max} "
                "as a fixed dim instead"
            )
        if self.opt is not None and not self.min <= self.opt <= self.max:
            raise SignatureError(
                f"dim {self.name}: OPT {self.opt} is outside MIN:MAX {self.min}:{self.max}"
            )

    @property
    def example(self) -> int:
        """The size used to export: ``opt``, else the smallest size in range that is at
        least 2. A dim of size 1 in the example can be specialised to the constant 1
        (pytorch issue 148629), so 1 is never used when the range allows 2."""
        size = self.opt if self.opt is not None else max(self.min, 2)
        return 2 if size == 1 else size

    def probe_sizes(self) -> tuple[int, ...]:
        """Sizes a validation tries: the minimum, the example size, a larger one (twice
        the example, at least 16: a sequence of 2 proves little), and, when the range
        was declared, its OPT and its MAX (up to ``PROBE_MAX_CAP``: a declared seq=1:512
        is checked at 512, the default 1:4096 is not)."""
        if self.probes:
            return tuple(p for p in self.probes if self.min <= p <= self.max) or (self.example,)
        ex = self.example
        sizes = {self.min, ex, min(self.max, max(2 * ex, PROBE_AT_LEAST))}
        if len(sizes) < 3:
            sizes.add(min(self.max, 4 * ex))
        if self.opt is not None:
            sizes.add(self.opt)
        if self.max <= PROBE_MAX_CAP:
            sizes.add(self.max)
        return tuple(sorted(sizes))

    def text(self) -> str:
        mid = f"{self.opt}:" if self.opt is not None else ""
        return f"{self.name}={self.min}:{mid}{self.max}"


@dataclass(frozen=True)
class InputSpec:
    """One model input: name, dtype, shape (ints fixed, names symbolic) and the range
    ``[low, high)`` of generated values (integers: token ids, classes; None: the default).
    ``kind="mask"``: a padding mask (Hugging Face's ``attention_mask``): generated rows are
    ones then zeros, never fully masked. ``end``: a token each row must end with (BART's
    classifier reads the hidden state at its one ``<eos>``): generated rows hold it once, at
    their last kept position (the padding mask over the same dims), and nowhere else."""

    name: str
    dtype: str = "float32"
    shape: tuple[int | str, ...] = ()
    low: float | None = None
    high: float | None = None
    kind: str = ""
    end: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise SignatureError(f"input name {self.name!r} must be an identifier")
        if self.end is not None and (
            self.low is None
            or self.high is None
            or not self.low <= self.end < self.high
            or self.high - self.low < 2
            or not self.dtype.startswith("int")
        ):
            raise SignatureError(
                f"input {self.name}: an end token needs integer values with a range of two or "
                f"more that holds it, got {self.dtype} {self.low}..{self.high}, end {self.end}"
            )
        if self.dtype not in INPUT_DTYPES:
            raise SignatureError(
                f"input {self.name}: dtype {self.dtype!r} is not supported for inputs; use one "
                f"of {', '.join(INPUT_DTYPES)}"
            )
        for d in self.shape:
            if (isinstance(d, int) and d < 0) or (isinstance(d, str) and not _NAME.match(d)):
                raise SignatureError(f"input {self.name}: bad dim {d!r} in {self.shape}")
        if self.kind and self.kind not in INPUT_KINDS:
            raise SignatureError(
                f"input {self.name}: kind {self.kind!r} unknown; use one of {INPUT_KINDS}"
            )
        if self.kind == "mask" and (self.dtype.startswith("float") or not self.shape):
            raise SignatureError(
                f"input {self.name}: a padding mask is int64/int32/bool over [batch, seq], "
                f"not {self.dtype}{list(self.shape)}"
            )
        if (self.low is None) != (self.high is None) or (
            self.low is not None and self.high is not None and not self.low < self.high
        ):
            raise SignatureError(f"input {self.name}: the value range needs LOW < HIGH")

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(d for d in self.shape if isinstance(d, str))

    def tensor_spec(self) -> TensorSpec:
        return TensorSpec(self.name, self.dtype, self.shape)

    def describe(self) -> str:
        rng = f" values {self.low:g}..{self.high:g}" if self.low is not None else ""
        kind = f" ({self.kind})" if self.kind else ""
        end = f" (each row ends with {self.end})" if self.end is not None else ""
        return f"{self.tensor_spec().describe()}{rng}{kind}{end}"


def parse_input(text: str) -> InputSpec:
    """``"ids:int64:batch,seq:0..30522"`` -> an ``InputSpec`` (range optional; a dim is
    an int or a name; ``"x:float32:"`` is a scalar); a last part ``mask`` declares a
    padding mask (``"attention_mask:int64:batch,seq:mask"``)."""
    parts = text.split(":")
    kind = ""
    if len(parts) >= 4 and parts[-1].strip() in INPUT_KINDS:
        kind = parts.pop().strip()
    if len(parts) not in (3, 4):
        raise SignatureError(
            f"--input {text!r}: expected NAME:DTYPE:DIMS[:LOW..HIGH][:mask], for example "
            "ids:int64:batch,seq:0..30522, attention_mask:int64:batch,seq:mask or "
            "image:float32:batch,3,224,224"
        )
    name, dtype, dims = parts[0].strip(), parts[1].strip(), parts[2].strip()
    shape: list[int | str] = []
    for d in filter(None, (d.strip() for d in dims.split(","))):
        shape.append(int(d) if d.isdigit() else d)
    low = high = None
    if len(parts) == 4:
        lo, sep, hi = parts[3].partition("..")
        try:
            low, high = float(lo), float(hi)
        except ValueError:
            sep = ""
        if not sep:
            raise SignatureError(f"--input {text!r}: the value range is LOW..HIGH, e.g. 0..30522")
    return InputSpec(name, dtype, tuple(shape), low, high, kind)


def parse_dim(text: str) -> DimRange:
    """``"seq=1:512"`` or ``"seq=1:128:512"`` (MIN:OPT:MAX) -> a ``DimRange``."""
    name, sep, rng = text.partition("=")
    try:
        values = [int(v) for v in rng.split(":")]
    except ValueError:
        values = []
    if not sep or len(values) not in (2, 3):
        raise SignatureError(
            f"--dim {text!r}: expected NAME=MIN:MAX or NAME=MIN:OPT:MAX, e.g. seq=1:512"
        )
    if len(values) == 2:
        return DimRange(name.strip(), values[0], values[1])
    return DimRange(name.strip(), values[0], values[2], values[1])


def _default_dim(name: str, batch_like: bool) -> DimRange:
    """The range of a dim nobody declared: a batch (axis 0) is 1:1024; any other dim is
    1:4096, exported at 16 and validated at 8, 16 and 32 (sizes that a sequence, an
    image side or a stride-8 network all take; declare --dim for anything else)."""
    if batch_like:
        return DimRange(name, 1, DEFAULT_MAX_BATCH)
    return DimRange(name, 1, DEFAULT_MAX_DIM, DEFAULT_DIM_SIZE, DEFAULT_DIM_PROBES)


@dataclass(frozen=True)
class Signature:
    """Inputs in order, and a range for every symbolic dim they use.

    Dims not given a range get the default: ``1:1024`` for dims on axis 0 (batch) and
    ``1:4096`` for the others.
    """

    inputs: tuple[InputSpec, ...]
    dims: tuple[DimRange, ...] = field(default=())
    # equalities between dims, "total = past + seq": a decoder's mask covers the cache and
    # the new tokens; generated sizes follow them (``sizes``), ``check`` holds data to them
    relations: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.inputs:
            raise SignatureError("a signature needs at least one input")
        names = [i.name for i in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SignatureError(f"input names must be unique; repeated: {dupes}")
        declared = [d.name for d in self.dims]
        used = {s for i in self.inputs for s in i.symbols}
        unknown = [d for d in declared if d not in used]
        if unknown:
            raise SignatureError(
                f"--dim {unknown} names no dim of the inputs "
                f"({'; '.join(i.describe() for i in self.inputs)})"
            )
        batch_like = {i.shape[0] for i in self.inputs if i.shape and isinstance(i.shape[0], str)}
        given = {d.name: d for d in self.dims}
        ordered = tuple(  # in order of first use: batch, seq, ...
            given.get(s) or _default_dim(s, s in batch_like) for s in _ordered(self.inputs)
        )
        object.__setattr__(self, "dims", ordered)
        known = {d.name for d in ordered}
        for text in self.relations:
            target, terms = parse_relation(text)
            unknown = [n for n in (target, *terms) if n not in known]
            if unknown:
                raise SignatureError(f"relation {text!r} names dims {unknown} no input uses")

    # --- construction ---------------------------------------------------------------

    @classmethod
    def parse(cls, inputs: Sequence[str], dims: Sequence[str] = ()) -> Signature:
        """From the CLI's ``--input`` and ``--dim`` strings."""
        return cls(tuple(parse_input(t) for t in inputs), tuple(parse_dim(t) for t in dims))

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[TensorSpec],
        dims: Iterable[DimRange] = (),
        declared: Iterable[InputSpec] = (),
        relations: Sequence[str] | None = None,
    ) -> Signature:
        """A model's own specs (an ONNX file's, a runner's), with ranges from ``dims``
        and value ranges from ``declared`` inputs of the same name. Unknown dims (``?``)
        become symbolic names ``<input>_dim<axis>``. ``relations`` default to those a
        decoder's names imply (``guess_relations``)."""
        by_name = {d.name: d for d in declared}
        inputs = []
        for s in specs:
            shape = tuple(
                _symbol(f"{s.name}_dim{a}")
                if d is None
                else d
                if isinstance(d, int)
                else _symbol(d)
                for a, d in enumerate(s.shape)
            )
            dec = by_name.get(s.name)
            kind = dec.kind if dec else guess_kind(s.name, s.dtype, shape)
            low, high = (dec.low, dec.high) if dec else (None, None)
            if dec is None and s.name in ZERO_NAMES and not s.dtype.startswith("float"):
                low, high = 0, 1  # segment ids: 0 is valid for every vocabulary of types
            end = dec.end if dec else None
            inputs.append(InputSpec(s.name, s.dtype, shape, low, high, kind, end))
        used = {sym for i in inputs for sym in i.symbols}
        if relations is None:
            relations = guess_relations(inputs)
        return cls(tuple(inputs), tuple(d for d in dims if d.name in used), tuple(relations))

    @classmethod
    def from_examples(
        cls,
        feeds: Mapping[str, np.ndarray],
        declared: Sequence[InputSpec] = (),
        dims: Sequence[DimRange] = (),
        dynamic_batch: bool = True,
    ) -> Signature:
        """A signature for example arrays (from a file): names and dtypes from the
        arrays; shapes from ``declared`` inputs where given, else axis 0 is the dynamic
        ``batch`` (when ``dynamic_batch``) and the other axes are fixed."""
        by_name = {d.name: d for d in declared}
        unknown = [n for n in by_name if n not in feeds]
        if unknown:
            raise SignatureError(
                f"--input {unknown} not in the example data, which has {sorted(feeds)}"
            )
        inputs = []
        for name, arr in feeds.items():
            dtype = np.dtype(arr.dtype).name
            dec = by_name.get(name)
            if dec is not None:
                if dec.dtype != dtype:
                    raise SignatureError(
                        f"input {name}: declared {dec.dtype}, the example data is {dtype}"
                    )
                if len(dec.shape) != arr.ndim:
                    raise SignatureError(
                        f"input {name}: declared {len(dec.shape)} dims {dec.tensor_spec().shape_text}, "
                        f"the example data has shape {arr.shape}"
                    )
                inputs.append(dec)
                continue
            shape: tuple[int | str, ...] = tuple(arr.shape)
            if dynamic_batch and arr.ndim >= 1:
                shape = ("batch", *shape[1:])
            inputs.append(InputSpec(name, dtype, shape))
        sig = cls(tuple(inputs), tuple(dims))
        sig.check(feeds)
        return sig

    # --- queries ----------------------------------------------------------------------

    def dim(self, name: str) -> DimRange:
        return next(d for d in self.dims if d.name == name)

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def batch_dims(self) -> tuple[str, ...]:
        """Symbolic dims on axis 0 of some input."""
        return tuple(
            dict.fromkeys(
                i.shape[0] for i in self.inputs if i.shape and isinstance(i.shape[0], str)
            )
        )

    def tensor_specs(self) -> tuple[TensorSpec, ...]:
        return tuple(i.tensor_spec() for i in self.inputs)

    def describe(self) -> str:
        ins = "; ".join(i.describe() for i in self.inputs)
        return f"{ins}  dims {', '.join(d.text() for d in self.dims) or 'none'}"

    def check(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Raise ``SignatureError`` naming every way ``feeds`` does not fit: names,
        dtypes, ranks, fixed sizes, a dim of two sizes, a size outside its range."""
        problems = []
        missing = [n for n in self.names if n not in feeds]
        extra = [n for n in feeds if n not in self.names]
        if missing or extra:
            problems.append(f"inputs are {self.names}; missing {missing}, unexpected {extra}")
        seen: dict[str, tuple[int, str]] = {}
        for spec in self.inputs:
            arr = feeds.get(spec.name)
            if arr is None:
                continue
            if np.dtype(arr.dtype).name != spec.dtype:
                problems.append(f"{spec.name} is {arr.dtype}, declared {spec.dtype}")
            if arr.ndim != len(spec.shape):
                problems.append(
                    f"{spec.name} has shape {arr.shape}, declared {spec.tensor_spec().shape_text}"
                )
                continue
            for axis, (want, got) in enumerate(zip(spec.shape, arr.shape, strict=True)):
                if isinstance(want, int) and want != got:
                    problems.append(f"{spec.name} axis {axis} is {got}, declared {want}")
                elif isinstance(want, str):
                    if want in seen and seen[want][0] != got:
                        problems.append(
                            f"dim {want} is {seen[want][0]} in {seen[want][1]} but {got} in "
                            f"{spec.name}: inputs that share a dim name must agree"
                        )
                    seen.setdefault(want, (got, spec.name))
                    rng = self.dim(want)
                    if not rng.min <= got <= rng.max:
                        problems.append(
                            f"{spec.name} axis {axis} ({want}) is {got}, outside {rng.text()}"
                        )
        sizes = {name: size for name, (size, _) in seen.items()}
        for text in self.relations:
            target, terms = parse_relation(text)
            if all(n in sizes for n in (target, *terms)):
                total = sum(sizes[n] for n in terms)
                if sizes[target] != total:
                    problems.append(
                        f"{text} does not hold: {target} is {sizes[target]}, "
                        + " + ".join(f"{n} {sizes[n]}" for n in terms)
                        + f" = {total}"
                    )
        if problems:
            raise SignatureError("the data does not fit the signature: " + "; ".join(problems))

    # --- data -------------------------------------------------------------------------

    def sizes(self, **overrides: int) -> dict[str, int]:
        """Each dim's example size, with ``overrides`` by name; dims a relation derives
        (``total = past + seq``) follow the others."""
        return self._related({d.name: overrides.get(d.name, d.example) for d in self.dims})

    def _related(self, sizes: dict[str, int]) -> dict[str, int]:
        """``sizes`` with every relation's target set to the sum of its terms; where the
        sum passes the target's max, the last terms shrink (to their min) until it fits."""
        out = dict(sizes)
        for text in self.relations:
            target, terms = parse_relation(text)
            cap = self.dim(target).max
            for name in reversed(terms):
                excess = sum(out[n] for n in terms) - cap
                if excess > 0:
                    out[name] = max(self.dim(name).min, out[name] - excess)
            out[target] = max(self.dim(target).min, sum(out[n] for n in terms))
        return out

    def examples(self, sizes: Mapping[str, int] | None = None, seed: int = 0) -> Feeds:
        """Valid random data for every input at ``sizes`` (default: each dim's example)."""
        rng = np.random.default_rng(seed)
        chosen = self.sizes(**dict(sizes or {}))
        out = {}
        for spec in self.inputs:
            shape = tuple(chosen[d] if isinstance(d, str) else d for d in spec.shape)
            value_range = (spec.low, spec.high) if spec.low is not None else None
            if spec.kind == "mask":
                out[spec.name] = padding_mask(spec.dtype, shape, rng)  # type: ignore[arg-type]
            else:
                out[spec.name] = generate(spec.dtype, shape, rng, value_range)  # type: ignore[arg-type]
        for spec in self.inputs:
            if spec.end is not None:
                out[spec.name] = self._with_end(spec, out)
        return out

    def _with_end(self, spec: InputSpec, feeds: Feeds) -> np.ndarray:
        """``spec``'s values with its end token once per row, at the last position the
        padding mask over the same dims keeps (the last position without one)."""
        assert spec.end is not None and spec.low is not None
        values = feeds[spec.name].copy()
        other = spec.end - 1 if spec.end > spec.low else spec.end + 1
        values[values == spec.end] = other
        mask = next(
            (feeds[m.name] for m in self.inputs if m.kind == "mask" and m.shape == spec.shape),
            None,
        )
        length = values.shape[-1]
        last = (
            np.full(values.shape[:-1], length - 1)
            if mask is None
            else np.asarray(mask, dtype=np.int64).sum(-1) - 1
        )
        np.put_along_axis(values, last[..., None], spec.end, axis=-1)
        return values

    def variations(self, batch_sizes: Sequence[int], seed: int = 0) -> list[Feeds]:
        """One batch per entry of ``batch_sizes``, each with other sizes for the other
        dynamic dims: every dim takes each of its ``probe_sizes`` across the batches."""
        return [self.examples(s, seed + i) for i, s in enumerate(self.size_plan(batch_sizes))]

    def size_plan(self, batch_sizes: Sequence[int]) -> list[dict[str, int]]:
        """The dim sizes ``variations`` uses: batch dims take ``batch_sizes`` (clipped to
        their range), the k-th other dim cycles through its probe sizes from offset k, so
        two dims (height, width) differ within a batch."""
        others = [d for d in self.dims if d.name not in self.batch_dims]
        n = (
            max(len(batch_sizes), *(len(d.probe_sizes()) for d in others))
            if others
            else len(batch_sizes)
        )
        plan = []
        for i in range(n):
            b = batch_sizes[i % len(batch_sizes)]
            sizes = {
                name: min(max(b, self.dim(name).min), self.dim(name).max)
                for name in self.batch_dims
            }
            for k, d in enumerate(others):
                probes = d.probe_sizes()
                sizes[d.name] = probes[(i + k) % len(probes)]
            plan.append(self._related(sizes))
        return plan


MASK_NAMES = ("attention_mask", "encoder_attention_mask")
# Integer inputs whose only value valid for every model is 0: Hugging Face's segment ids
# (BERT has 2 token types, RoBERTa 1); the default range 0..9 would index past the table.
ZERO_NAMES = ("token_type_ids",)


def parse_relation(text: str) -> tuple[str, tuple[str, ...]]:
    """``"total = past + seq"`` -> ``("total", ("past", "seq"))``."""
    target, _, rest = text.partition("=")
    terms = tuple(t.strip() for t in rest.split("+") if t.strip())
    if not target.strip() or not terms:
        raise SignatureError(f"a relation reads 'total = past + seq', got {text!r}")
    return target.strip(), terms


PAST_PREFIX = "past_key_values."


def guess_relations(inputs: Sequence[InputSpec]) -> tuple[str, ...]:
    """The relation a decoder exported with its cache implies by its names (ours,
    optimum's): ``attention_mask`` spans the cache and the new tokens, so its last dim is
    the cache's length (axis 2 of ``past_key_values.*``) plus ``input_ids``' last."""
    by_name = {i.name: i for i in inputs}
    ids, mask = by_name.get("input_ids"), by_name.get("attention_mask")
    past = next((i for i in inputs if i.name.startswith(PAST_PREFIX)), None)
    if ids is None or mask is None or past is None or len(past.shape) < 3:
        return ()
    seq, total, cached = ids.shape[-1], mask.shape[-1], past.shape[2]
    names = (seq, total, cached)
    if not all(isinstance(n, str) for n in names) or len(set(names)) < 3:
        return ()
    return (f"{total} = {cached} + {seq}",)


def guess_kind(name: str, dtype: str, shape: Sequence[int | str]) -> str:
    """``"mask"`` for an integer or bool input named like Hugging Face's padding mask
    (``attention_mask``) with a symbolic last dim, else ''. An ONNX file does not say
    what an input means; this name does, in every transformer exported from transformers."""
    is_int = dtype == "bool" or dtype.startswith(("int", "uint"))
    dynamic_last = bool(shape) and isinstance(shape[-1], str)
    return "mask" if name in MASK_NAMES and is_int and dynamic_last else ""


def _symbol(name: str) -> str:
    """A dim name from a model file as an identifier (``"sequence length"`` ->
    ``"sequence_length"``): files may name dims with any string."""
    text = re.sub(r"\W", "_", name)
    return text if _NAME.match(text) else f"d_{text}"


def _ordered(inputs: Sequence[InputSpec]) -> list[str]:
    return list(dict.fromkeys(s for i in inputs for s in i.symbols))


def generate(
    dtype: str,
    shape: tuple[int, ...],
    rng: np.random.Generator,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Random values valid for ``dtype``: floats standard normal (uniform in
    ``value_range`` when given), integers in ``value_range`` (default [0, 10)), and
    booleans as padding masks: each row along the last axis is False for a random length
    of at least 1, then True. In PyTorch's convention (``src_key_padding_mask``, True =
    padding) that is a sequence padded at the end, never fully masked."""
    want = numpy_dtype(dtype)
    if want is None:
        raise SignatureError(f"cannot generate {dtype} data with numpy")
    if want == np.bool_:
        if not shape:
            return np.asarray(True)
        length = shape[-1]
        kept = rng.integers(1, max(length, 2), size=(*shape[:-1], 1))  # 1 .. length-1
        return np.arange(length) >= kept
    if np.issubdtype(want, np.floating):
        if value_range is None:
            return rng.standard_normal(shape).astype(want)
        return rng.uniform(value_range[0], value_range[1], shape).astype(want)
    lo, hi = value_range or DEFAULT_INT_RANGE
    return rng.integers(int(lo), int(hi), shape).astype(want)


def padding_mask(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A valid padding mask (1 = a real token, 0 = padding), as Hugging Face's
    ``attention_mask``: each row along the last axis is ones for a random length of at
    least 1, then zeros; the first row is all ones (the longest sample of a padded batch
    is not padded). A fully masked row, which no real input has, never appears: in it
    attention has nothing to attend to, and PyTorch and ONNX Runtime fill it differently."""
    want = numpy_dtype(dtype)
    if want is None or not shape:
        raise SignatureError(
            f"a padding mask needs an integer or bool dtype and a shape, got {dtype}{shape}"
        )
    length = shape[-1]
    kept = rng.integers(1, length + 1, size=(*shape[:-1], 1))  # 1 .. length real tokens
    if kept.size:
        kept.reshape(-1)[0] = length
    return (np.arange(length) < kept).astype(want)
