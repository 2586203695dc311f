"""Memory a process no longer uses, handed back to the system between cases."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import functools


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def return_freed_memory() -> None:
    """Collect garbage, then ask glibc to give free heap pages back (``malloc_trim``): a released
    model's memory otherwise stays in the process's RSS and in the next case's peak."""
    gc.collect()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None  # glibc only
    if trim is not None:
        trim(0)
