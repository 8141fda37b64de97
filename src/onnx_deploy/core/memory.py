"""Giving freed memory back to the operating system.

A model of several GB freed in Python (a PyTorch module, an ONNX Runtime session) goes back
to the C allocator, and glibc keeps most of it: weights of up to 32 MB come from its heap
once its mmap threshold has risen, and freed heap pages stay in the process. The next model
loaded beside them then adds to the peak instead of reusing them (``validate --reference
hf:DIR`` on the 600M decoder held the freed PyTorch weights while ONNX Runtime loaded the
same weights again). ``malloc_trim(0)`` returns every free page; elsewhere this is a
``gc.collect()``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import cache


@cache
def _malloc_trim() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim  # glibc only; musl has none
    except (OSError, AttributeError):
        return None


# below this, a freed model is not worth a collection and a trim on every close (tests and
# the card open and close small sessions by the hundred)
LARGE_MODEL_BYTES = 256 * 1024**2


def release_freed_memory(*, collect: bool = True) -> None:
    """Collect garbage (``collect``), then hand the allocator's free pages back to the OS
    (glibc's ``malloc_trim``). Call it after dropping the last reference to a large model
    (``LARGE_MODEL_BYTES`` or more)."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]
