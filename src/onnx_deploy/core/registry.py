"""One-file units found by looking: the registries of passes, runtimes and model sources.

Three things keep being added to this package: transformations of a model (``passes/``),
runtimes that run it (``runtimes/``) and places models come from (``sources/``). Each is a
folder of one-file units; a unit is a class with a ``name`` that subclasses the folder's
base class. ``discover`` imports every module of the folder and collects those classes,
so a new unit is one new file and nothing else: no list to edit, no import to add
(Olive's pass registry and Polygraphy's loaders work the same way).

Units are imported by name at run time (``importlib``), so the folder's package imports
none of them statically: the import contract still checks each unit's own imports.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any
from typing import TypeVar

T = TypeVar("T")


def unit_modules(package: str) -> Iterator[Any]:
    """Every module directly in ``package`` (a dotted name), imported, in name order;
    private ones (``_name``) are skipped."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{package}.{info.name}")


def discover(package: str, base: type[T]) -> dict[str, type[T]]:
    """The concrete subclasses of ``base`` defined in ``package``'s modules, by their
    ``name``, in module order. Two units of one name are an error that names both."""
    found: dict[str, type[T]] = {}
    for module in unit_modules(package):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, base)
                and value is not base
                and value.__module__ == module.__name__
                and getattr(value, "name", "")
            ):
                name = value.name  # type: ignore[attr-defined]
                if name in found and found[name] is not value:
                    raise ValueError(
                        f"two {base.__name__}s are named {name!r}: "
                        f"{found[name].__module__} and {value.__module__}"
                    )
                found[name] = value
    return found
