"""Give freed image buffers back to the operating system.

Every card's images are decoded into buffers of a few megabytes, on more than one thread
(intake checks them, the preparing thread makes the panels). With glibc's defaults each
thread gets an arena of its own, and after the first large buffer is freed the allocator
raises its mmap threshold, so later buffers come from those arenas, where freed memory is
seldom returned: the agent's RSS crept up with every job (bench/footprint.py measured
98 MB after 2,000 jobs and 111 MB after 10,000). A fixed threshold keeps every large
buffer in a mapping of its own, unmapped when freed, and two arenas serve an agent whose
threads mostly wait. There is no library for this; `mallopt` is glibc's own interface.
"""

from __future__ import annotations

import ctypes

#: glibc's `mallopt` parameters (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: Buffers from this size up are mapped on their own and returned when freed.
MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Set the thresholds above; False where the C library is not glibc (nothing changes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_ARENA_MAX, ARENA_MAX))
