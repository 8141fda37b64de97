"""The checks cell that ends every notebook: each value beside the bar it must clear.

    checks([
        ("mAP@0.5 of FP32", round(m, 3), "> 0.9", m > 0.9),
        ...
    ], key_figures={"map50_fp32": round(m, 2)})

prints one line per check (label, value, bar, ok or FAILED), then the key figures as one
JSON line (what ``make run``'s summary table reads from the cell tagged ``key-figures``),
and raises ``AssertionError`` naming every check that failed: a learner sees the sizes,
not a bare ``True``, and the notebook still fails on a broken claim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

Check = tuple[str, Any, str, bool]


def checks(rows: Sequence[Check], key_figures: Mapping[str, Any] | None = None) -> None:
    if not rows:
        raise ValueError("a checks cell needs at least one check")
    width = max(len(label) for label, *_ in rows)
    values = [_text(v) for _, v, _, _ in rows]
    vwidth = max(len(v) for v in values)
    for (label, _, bar, ok), value in zip(rows, values, strict=True):
        print(f"{label:<{width}}  {value:>{vwidth}}  needs {bar:<16} {'ok' if ok else 'FAILED'}")
    failed = [label for label, *_, ok in rows if not ok]
    figures = dict(key_figures or {})
    figures["checks_passed"] = f"{len(rows) - len(failed)}/{len(rows)}"
    print(json.dumps(figures))
    if failed:
        raise AssertionError("checks failed: " + "; ".join(failed))


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
