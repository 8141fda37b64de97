"""Run inside a Python that imports TensorRT's real bindings (over stub libraries): print,
as JSON, every public class of ``tensorrt_bindings.tensorrt`` with its members, and for
each callable member the parameter names of each pybind11 overload (from ``__doc__``)."""

from __future__ import annotations

import json
import re
import sys

import tensorrt_bindings as trt

SIG = re.compile(r"^(?:\d+\. )?(\w+)\((.*?)\) ->", re.M)


def params(doc: str | None) -> list[list[str]]:
    overloads = []
    for m in SIG.finditer(doc or ""):
        names = []
        for part in re.split(r",\s*(?![^\[]*\])", m.group(2)):
            name = part.split(":")[0].split("=")[0].strip().lstrip("*")
            if name and name != "self":
                names.append(name)
        overloads.append(names)
    return overloads


api: dict[str, dict[str, list[list[str]]]] = {"": {}}
for name in dir(trt):
    if name.startswith("_") and name != "__version__":
        continue
    obj = getattr(trt, name)
    api[""][name] = params(
        getattr(obj, "__init__", None).__doc__ if isinstance(obj, type) else None
    )
    if isinstance(obj, type):
        members = {}
        for m in dir(obj):
            if m.startswith("_") and m != "__init__":
                continue
            attr = getattr(obj, m, None)
            members[m] = params(getattr(attr, "__doc__", None)) if callable(attr) else []
        api[name] = members
api["Logger"].update({s: [] for s in dir(trt.Logger.Severity) if s.isupper()})
json.dump({"version": trt.__version__, "api": api}, sys.stdout)
