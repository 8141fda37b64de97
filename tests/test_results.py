"""Every result type's ``to_dict`` is derived and keeps its computed fields, nested too."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
import types
import typing
from pathlib import Path

import numpy as np
import pytest

import onnx_deploy
from onnx_deploy.core.results import Result
from onnx_deploy.core.results import as_plain


def _all_results() -> list[type]:
    for info in pkgutil.walk_packages(onnx_deploy.__path__, "onnx_deploy."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found, todo = [], list(Result.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


RESULTS = _all_results()


def _hints(cls: type) -> dict[str, object]:
    try:
        return typing.get_type_hints(cls, vars(importlib.import_module(cls.__module__)))
    except NameError:  # an annotation only TYPE_CHECKING imports (torch): per field
        out = {}
        for f in dataclasses.fields(cls):
            try:
                out[f.name] = typing.get_type_hints(
                    type("T", (), {"__annotations__": {f.name: f.type}}),
                    vars(importlib.import_module(cls.__module__)),
                )[f.name]
            except NameError:
                out[f.name] = typing.Any
        return out


# fields whose plain type admits values the property code would reject
BY_NAME = {"isa": "x86-amx", "dtype": "float32", "activation_type": "uint8",
           "weight_type": "int8", "status": "ok", "precision": "fp32", "kind": "",
           "chosen": "FP32", "name": "FP32"}  # fmt: skip
# fields typed Any that hold a result in real use
NESTED = {"validation": "ValidationReport", "export": "ExportResult", "slim": "SlimResult"}
# results whose JSON has its own documented shape (doctor --json: one key per check)
OWN_SHAPE = {"DoctorReport"}


def _sample(tp: object, depth: int = 0, name: str = "") -> object:
    """A plausible value of type ``tp``: enough for properties to compute."""
    if name in BY_NAME and tp in (str, typing.Any):
        return BY_NAME[name]
    if name in NESTED and depth < 3:
        return _instance(next(c for c in RESULTS if c.__name__ == NESTED[name]), depth + 1)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        return _sample(real[0], depth) if real else None
    if origin is typing.Literal:
        return args[0]
    if origin in (tuple,):
        if len(args) == 2 and args[1] is Ellipsis:
            return (_sample(args[0], depth + 1),)
        return tuple(_sample(a, depth + 1) for a in args)
    if origin in (list,):
        return [_sample(args[0], depth + 1)] if args else []
    if origin in (dict,):
        return {_sample(args[0], depth + 1): _sample(args[1], depth + 1)} if args else {}
    if tp is str:
        return "x"
    if tp is bool:
        return True
    if tp is int:
        return 2
    if tp is float:
        return 1.5
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and depth < 4:
        return _instance(tp, depth + 1)
    return None


def _instance(cls: type, depth: int = 0) -> object:
    hints = _hints(cls)
    return cls(
        **{
            f.name: None
            if f.name in getattr(cls, "HIDDEN", ())
            else _sample(hints[f.name], depth, f.name)
            for f in dataclasses.fields(cls)
            if f.init
        }
    )


def test_every_result_type_is_found() -> None:
    names = {c.__name__ for c in RESULTS}
    assert {"SlimResult", "ValidationReport", "BenchmarkResult", "QuantizeResult",
            "ExportResult", "PipelineResult", "ReportCard"} <= names  # fmt: skip
    assert all(dataclasses.is_dataclass(c) and c.__dataclass_params__.frozen for c in RESULTS)


@pytest.mark.parametrize("cls", RESULTS, ids=lambda c: c.__name__)
def test_every_public_property_is_declared_computed(cls: type) -> None:
    props = {n for n in dir(cls) if not n.startswith("_") and isinstance(getattr(cls, n), property)}
    assert props <= set(cls.COMPUTED), f"declare {sorted(props - set(cls.COMPUTED))} in COMPUTED"


def _check_computed(obj: object, plain: object, where: str) -> None:
    if dataclasses.is_dataclass(obj) and isinstance(plain, dict):
        for name in getattr(obj, "COMPUTED", ()):
            assert name in plain, f"{where}: computed field {name!r} lost"
        for f in dataclasses.fields(obj):
            if f.name in plain:
                _check_computed(getattr(obj, f.name), plain[f.name], f"{where}.{f.name}")
    elif isinstance(obj, (list, tuple)) and isinstance(plain, list):
        for i, (o, p) in enumerate(zip(obj, plain, strict=True)):
            _check_computed(o, p, f"{where}[{i}]")


@pytest.mark.parametrize("cls", RESULTS, ids=lambda c: c.__name__)
def test_round_trip_keeps_computed_fields(cls: type) -> None:
    obj = _instance(cls)
    plain = json.loads(json.dumps(obj.to_dict(), default=str))  # what --json prints
    if cls.__name__ in OWN_SHAPE:
        assert set(cls.COMPUTED) <= set(plain)
        return
    assert "to_dict" not in vars(cls), "to_dict is derived (core/results.py): remove it"
    assert set(plain) >= {f.name for f in dataclasses.fields(cls)} - set(cls.HIDDEN)
    _check_computed(obj, plain, cls.__name__)


def test_a_nested_validation_keeps_ok_and_warnings(tiny_onnx: Path, tmp_path: Path) -> None:
    """``slim --json`` and the pipeline's summary.json: the validation's ``ok`` survives
    (the hand-written SlimResult.to_dict nested it through asdict, which dropped it)."""
    from onnx_deploy import slim_model

    result = slim_model(tiny_onnx, tmp_path / "slim.onnx")
    d = json.loads(json.dumps(result.to_dict(), default=str))
    assert d["validation"]["ok"] is True and d["validation"]["warnings"] == []
    assert d["nodes_before"] >= d["nodes_after"] > 0


def test_as_plain_converts_nested_dataclasses_paths_and_keeps_hidden_out() -> None:
    @dataclasses.dataclass(frozen=True)
    class Inner(Result):
        COMPUTED = ("double",)
        x: int

        @property
        def double(self) -> int:
            return 2 * self.x

    @dataclasses.dataclass(frozen=True)
    class Outer(Result):
        HIDDEN = ("live",)
        inner: tuple[Inner, ...]
        path: Path
        live: object = None

    d = Outer((Inner(1), Inner(2)), Path("a/b"), live=np.zeros(3)).to_dict()
    assert d == {"inner": ({"x": 1, "double": 2}, {"x": 2, "double": 4}), "path": "a/b"}
    assert as_plain({"k": [Inner(3)]}) == {"k": [{"x": 3, "double": 6}]}
