"""A recording stand-in for ``tensorrt``, generated from the real bindings' API dump.

Every class and enum of the dump exists, enums with their real integer values; every
method call is recorded as ``(class, method, args, kwargs)`` and checked against the real
pybind11 signatures: an unknown member, an unknown keyword, too many positional arguments,
a missing required argument, or a call to a name without a signature raises, as the real
module would. Each call returns an object of the class its real signature names; the few
data values the code reads (parse success, the plan bytes, shapes) are set per test.
"""

from __future__ import annotations

from typing import Any


def fits(overload: dict[str, Any], positional: int, keywords: Any) -> bool:
    """Whether a call with ``positional`` arguments and these keywords fits one pybind11
    overload: not too many positionals, only known keywords, every required one given."""
    params = overload["params"]
    variadic = any(p["variadic"] for p in params)
    fixed = [p for p in params if not p["variadic"]]
    if positional > len(fixed) and not variadic:
        return False
    rest = fixed[positional:]
    names = {p["name"] for p in rest}
    if not variadic and not set(keywords) <= names:
        return False
    return all(p["name"] in keywords for p in rest if p["required"])


class FakeObject:
    def __init__(self, module: FakeTensorRT, cls: str) -> None:
        self._module, self._cls = module, cls

    def __getattr__(self, member: str) -> Any:
        members = self._module.api.get(self._cls, {})
        if member not in members:
            raise AttributeError(
                f"TensorRT {self._module.__version__}: {self._cls} has no {member!r}"
            )
        if not members[member]:  # a property or an enum value
            enum = self._module.enums.get(f"{self._cls}.{member}")
            if enum is not None:
                return FakeEnum(f"{self._cls}.{member}", enum)
            return self._module.properties.get((self._cls, member), 0)
        return lambda *a, **k: self._module.call(self._cls, member, members[member], a, k)


class FakeEnum:
    """An enum with the real bindings' integer values."""

    def __init__(self, cls: str, values: dict[str, int]) -> None:
        self._cls, self._values = cls, dict(values)

    def __getattr__(self, member: str) -> Any:
        if member not in self._values:
            raise AttributeError(f"{self._cls} has no {member!r}")
        return FakeEnumValue(self._cls, member, self._values[member])


class FakeEnumValue(int):
    def __new__(cls, owner: str, name: str, value: int) -> FakeEnumValue:
        obj = super().__new__(cls, value)
        obj.label = f"{owner}.{name}"
        return obj

    def __repr__(self) -> str:
        return self.label


class FakeTensorRT:
    """``import tensorrt as trt`` for tests: ``trt.calls`` is what the code did."""

    def __init__(
        self, dump: dict[str, Any], parse_ok: bool = True, plan: bytes | None = b"PLAN"
    ) -> None:
        if dump.get("format") != 2:
            raise ValueError("an old API dump: delete artifacts/trt-bindings/*/api.json")
        self.api: dict[str, dict[str, list[dict[str, Any]]]] = dump["api"]
        self.enums: dict[str, dict[str, int]] = dump["enums"]
        self.__version__ = dump["version"]
        self.calls: list[tuple[str, str, tuple[Any, ...], dict[str, Any]]] = []
        self.parse_ok, self.plan = parse_ok, plan
        self.output_shapes: dict[str, Any] = {}  # a shape, or a function of the input shapes
        self.input_shapes: dict[str, tuple[int, ...]] = {}
        self.properties: dict[tuple[str, str], Any] = {
            ("OnnxParser", "num_errors"): 0 if parse_ok else 1
        }

    def __getattr__(self, name: str) -> Any:
        if name not in self.api[""]:
            raise AttributeError(f"TensorRT {self.__version__} has no trt.{name}")
        if name in self.enums:
            return FakeEnum(name, self.enums[name])
        if name == "Logger":
            return FakeLoggerClass(self)
        overloads = self.api[""][name]
        if not overloads:  # no constructor in the bindings: the real call fails too
            raise TypeError(f"TensorRT {self.__version__}: trt.{name} has no signature to call")
        return lambda *a, **k: self.call("", name, overloads, a, k)

    def call(self, cls: str, member: str, overloads: list[dict[str, Any]],
             args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # fmt: skip
        fitting = [o for o in overloads if fits(o, len(args), kwargs)]
        if not fitting:
            raise TypeError(
                f"TensorRT {self.__version__}: {cls}.{member}{tuple(args)} {kwargs} fits none of "
                f"its signatures {[[p['name'] for p in o['params']] for o in overloads]}"
            )
        self.calls.append((cls, member, args, kwargs))
        if (cls, member) == ("OnnxParser", "parse_from_file"):
            return self.parse_ok
        if (cls, member) == ("Builder", "build_serialized_network"):
            return self.plan
        if (cls, member) == ("ITimingCache", "serialize"):
            return b"TIMINGS"
        if (cls, member) == ("IExecutionContext", "set_input_shape"):
            self.input_shapes[args[0]] = tuple(args[1])
        if (cls, member) == ("IExecutionContext", "get_tensor_shape"):
            shape = self.output_shapes[args[0] if args else kwargs["name"]]
            return shape(self.input_shapes) if callable(shape) else shape
        if (cls, member) == ("IExecutionContext", "execute_async_v3"):
            return True
        if (cls, member) == ("ParserError", "node_name"):
            return "node_Conv_3"
        if (cls, member) == ("ParserError", "node_operator"):
            return "Conv"
        if (cls, member) == ("ParserError", "desc"):
            return "unsupported attribute"
        # a module-level class is a constructor (its class); a function returns its type
        returned = member if not cls and member in self.api else fitting[0]["returns"]
        if returned not in self.api and returned.startswith("I") and returned[1:] in self.api:
            returned = returned[1:]  # C++ nvonnxparser::IParserError is Python's ParserError
        if returned in self.api and returned != "":
            return FakeObject(self, returned)
        return {"bool": True, "int": 0, "str": ""}.get(returned)

    def names(self) -> list[str]:
        return [f"{c}.{m}" if c else m for c, m, _, _ in self.calls]


class FakeLoggerClass:
    """``trt.Logger`` is both a class (called) and a namespace (``trt.Logger.WARNING``)."""

    def __init__(self, module: FakeTensorRT) -> None:
        self._module = module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._module.call("", "Logger", self._module.api[""]["Logger"], args, kwargs)

    def __getattr__(self, name: str) -> Any:
        severity = self._module.enums["Logger.Severity"]
        if name not in severity:
            raise AttributeError(f"trt.Logger has no {name!r}")
        return FakeEnumValue("Logger.Severity", name, severity[name])
