"""Run inside a Python that imports TensorRT's real bindings (over stub libraries): print,
as JSON, every public class of ``tensorrt_bindings.tensorrt`` with its members. For each
callable member: each pybind11 overload (from ``__doc__``) as its parameters (name and
whether it is required, i.e. has no default) and its return type. For each enum: its
members' real integer values."""

from __future__ import annotations

import json
import re
import sys

import tensorrt_bindings as trt

SIG = re.compile(r"^(?:\d+\. )?(\w+)\((.*?)\) -> (\S.*?)\s*$", re.M)


def overloads(doc: str | None) -> list[dict[str, object]]:
    found = []
    for m in SIG.finditer(doc or ""):
        params = []
        for part in re.split(r",\s*(?![^\[]*\])", m.group(2)):
            name = part.split(":")[0].split("=")[0].strip()
            if not name or name == "self":
                continue
            variadic = name.startswith("*")
            params.append(
                {"name": name.lstrip("*"), "required": "=" not in part and not variadic,
                 "variadic": variadic}
            )  # fmt: skip
        returns = re.split(r"\.|::", m.group(3))[-1]  # nvonnxparser::IParserError too
        found.append({"params": params, "returns": returns})
    return found


def enum_values(obj: type) -> dict[str, int] | None:
    members = getattr(obj, "__members__", None)
    if not isinstance(members, dict):
        return None
    return {name: int(value) for name, value in members.items()}


api: dict[str, dict[str, list[dict[str, object]]]] = {"": {}}
enums: dict[str, dict[str, int]] = {}
for name in dir(trt):
    if name.startswith("_") and name != "__version__":
        continue
    obj = getattr(trt, name)
    if isinstance(obj, type):
        api[""][name] = overloads(getattr(obj, "__init__", None).__doc__)
        values = enum_values(obj)
        if values is not None:
            enums[name] = values
        members = {}
        for m in dir(obj):
            if m.startswith("_") and m != "__init__":
                continue
            attr = getattr(obj, m, None)
            members[m] = overloads(getattr(attr, "__doc__", None)) if callable(attr) else []
            nested = getattr(obj, m, None)
            if isinstance(nested, type) and enum_values(nested) is not None:
                enums[f"{name}.{m}"] = enum_values(nested)
        api[name] = members
    elif callable(obj):
        api[""][name] = overloads(getattr(obj, "__doc__", None))
    else:
        api[""][name] = []
json.dump({"format": 2, "version": trt.__version__, "api": api, "enums": enums}, sys.stdout)
