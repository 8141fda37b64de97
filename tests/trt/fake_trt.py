"""A recording stand-in for ``tensorrt``, generated from the real bindings' API dump.

Every class and enum of the dump exists; every method call is recorded as
``(class, method, args, kwargs)`` and checked against the real pybind11 signatures: an
unknown member, an unknown keyword or too many positional arguments raises, as the real
module would. Return values come from ``RETURNS`` so a build or a run can go end to end.
"""

from __future__ import annotations

from typing import Any

# what each call returns, so the sequence can continue (class of the returned object)
RETURNS = {
    ("", "Builder"): "Builder",
    ("", "Logger"): "Logger",
    ("", "OnnxParser"): "OnnxParser",
    ("", "Runtime"): "Runtime",
    ("Builder", "create_network"): "INetworkDefinition",
    ("Builder", "create_builder_config"): "IBuilderConfig",
    ("Builder", "create_optimization_profile"): "IOptimizationProfile",
    ("IBuilderConfig", "create_timing_cache"): "ITimingCache",
    ("IBuilderConfig", "get_timing_cache"): "ITimingCache",
    ("Runtime", "deserialize_cuda_engine"): "ICudaEngine",
    ("ICudaEngine", "create_execution_context"): "IExecutionContext",
    ("OnnxParser", "get_error"): "ParserError",
}
ENUMS = (
    "MemoryPoolType", "BuilderFlag", "NetworkDefinitionCreationFlag", "DataType",
    "TensorIOMode",
)  # fmt: skip


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
            return self._module.properties.get((self._cls, member), 0)
        return lambda *a, **k: self._module.call(self._cls, member, members[member], a, k)


class FakeEnum:
    def __init__(self, cls: str, members: dict[str, Any]) -> None:
        self._cls, self._members = cls, list(members)

    def __getattr__(self, member: str) -> Any:
        if member not in self._members:
            raise AttributeError(f"{self._cls} has no {member!r}")
        return FakeEnumValue(self._cls, member, self._members.index(member))


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
        self.api: dict[str, dict[str, list[list[str]]]] = dump["api"]
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
        if name in ENUMS:
            return FakeEnum(name, self.api[name])
        if name == "Logger":
            return FakeLoggerClass(self)
        return lambda *a, **k: self.call("", name, self.api[""][name] or [["a", "b", "c"]], a, k)

    def call(self, cls: str, member: str, overloads: list[list[str]], args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:  # fmt: skip
        fits = [
            o for o in overloads
            if len(args) <= len(o) and all(k in o[len(args):] for k in kwargs)
        ]  # fmt: skip
        if overloads and not fits:
            raise TypeError(
                f"TensorRT {self.__version__}: {cls}.{member}{tuple(args)} {kwargs} fits none of "
                f"its signatures {overloads}"
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
        returned = RETURNS.get((cls, member))
        return FakeObject(self, returned) if returned else None

    def names(self) -> list[str]:
        return [f"{c}.{m}" if c else m for c, m, _, _ in self.calls]


class FakeLoggerClass:
    """``trt.Logger`` is both a class (called) and a namespace (``trt.Logger.WARNING``)."""

    def __init__(self, module: FakeTensorRT) -> None:
        self._module = module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._module.call("", "Logger", self._module.api[""]["Logger"], args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name not in self._module.api["Logger"]:
            raise AttributeError(f"trt.Logger has no {name!r}")
        return FakeEnumValue("Logger", name, 2)
