"""The shared base of result dataclasses: ``to_dict`` derived, computed fields declared once.

A result is a frozen dataclass. Its ``to_dict`` holds every field (nested results,
dataclasses, tuples and dicts converted the same way, all the way down) plus each property
named in ``COMPUTED``, so ``ok`` or ``warnings`` cannot get lost on the way into
``--json`` or a ``summary.json``: hand-written ``to_dict`` methods once dropped a nested
validation's ``ok`` that way. ``HIDDEN`` names fields that hold live objects (a torch
program, per-step logits) and stay out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from typing import ClassVar


class Result:
    """Mix into a ``@dataclass(frozen=True)``; override ``summary`` with the lines a CLI
    prints (the default lists the fields and computed fields)."""

    COMPUTED: ClassVar[tuple[str, ...]] = ()
    HIDDEN: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        return as_plain(self)  # type: ignore[no-any-return]

    def summary(self) -> str:
        d = self.to_dict()
        return f"{type(self).__name__}: " + ", ".join(f"{k}={v}" for k, v in d.items())


def as_plain(value: Any) -> Any:
    """``value`` as dicts, lists/tuples and scalars: a result's fields and ``COMPUTED``
    properties, other dataclasses' fields, recursively; paths as strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hidden = getattr(value, "HIDDEN", ())
        out = {
            f.name: as_plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in hidden
        }
        out.update(
            {name: as_plain(getattr(value, name)) for name in getattr(value, "COMPUTED", ())}
        )
        return out
    if isinstance(value, Mapping):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_plain(v) for v in value]
    if isinstance(value, tuple):  # named tuples too: JSON has no names for their fields
        return tuple(as_plain(v) for v in value)
    if isinstance(value, PurePath):
        return str(value)
    return value
