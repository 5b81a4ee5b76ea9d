"""Keep freed CPU memory in the process heap for reuse (glibc ``mallopt``), for our tools.

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed. SOC's CPU forward allocates hundreds of such tensors (a
stage-1 Video-Swin activation of an 8-frame 360x640 clip is 44 MB), so each one is page-faulted
and zeroed by the kernel again: ~10-15 % of a CPU forward. With ``M_MMAP_MAX = 0`` and a high
``M_TRIM_THRESHOLD`` freed blocks stay in the heap and the next tensor reuses them (the process
keeps its peak memory instead of returning it between tensors). jemalloc / tcmalloc through
``LD_PRELOAD`` do the same; this needs nothing installed. The same setting can be given to any
process through glibc's environment: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647``.

Process-wide, so only our command-line tools call it (``tools/test.py``, ``tools/train.py`` and
``tools/analysis_tools/benchmark.py``); importing ``soc_mm`` never does. ``SOC_MM_DEFAULT_MALLOC=1`` keeps glibc's
default behaviour.
"""
import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_MAX = -4
_applied = None


def keep_freed_memory_for_reuse() -> bool:
    """Set glibc's ``M_MMAP_MAX = 0`` and ``M_TRIM_THRESHOLD = 2 GiB - 1`` for this process.

    Returns True when applied (now or by an earlier call), False where it does not apply: not
    Linux/glibc, or ``SOC_MM_DEFAULT_MALLOC=1``.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get('SOC_MM_DEFAULT_MALLOC', '') not in ('', '0') or platform.system() != 'Linux' \
            or platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    _applied = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
