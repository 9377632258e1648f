"""Choosing the compute device from a user's ``--device`` / config value, and the CPU
allocator setting that large feature maps need (docs/benchmarks.md "Speed")."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import torch

__all__ = ["resolve_device", "keep_freed_memory", "kept_heap_bytes", "ALLOCATOR_ENV"]

#: Set to ``system`` to leave glibc's allocator as it is (see :func:`keep_freed_memory`).
ALLOCATOR_ENV = "MOEWIR_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (glibc malloc.h)


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h, glibc >= 2.33): every field a ``size_t``."""
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


@functools.cache
def _libc():
    """glibc's C library, or None off Linux or where it cannot be loaded (found once: on Linux
    ``find_library`` runs ``ldconfig``, and ``tile="auto"`` asks for every image)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Make glibc serve large tensors from its heap and keep freed memory for the next one.

    By default glibc maps every block above its mmap threshold (at most 32 MiB) afresh from
    the kernel and unmaps it on free, so each large activation of a restore pays its page faults
    again: on a 2-core x86_64 CPU a 1024² moewirnet-tiny restore took 0.76x the time with 512-px
    tiles and 0.45x untiled (``bench/allocator.py``, docs/benchmarks.md). The process then keeps
    its peak memory until it exits (9% and 73% more at the peak), which suits a one-shot
    ``moewir restore``. Returns False (and changes nothing)
    off glibc or when the environment variable ``MOEWIR_MALLOC=system`` is set.
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)  # musl has none
    if os.environ.get(ALLOCATOR_ENV, "").lower() == "system" or mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))


def kept_heap_bytes() -> int:
    """Bytes freed inside this process that glibc keeps for reuse (``mallinfo2().fordblks``).

    The operating system's ``MemAvailable`` does not count them, yet the next tensor can take
    them: after :func:`keep_freed_memory` a restore keeps its peak (hundreds of MiB to GiB), so
    ``tile="auto"`` adds them to its budget (:mod:`moewir.inference.memory`). 0 where glibc's
    ``mallinfo2`` is missing (not glibc, or glibc older than 2.33).
    """
    mallinfo2 = getattr(_libc(), "mallinfo2", None)
    if mallinfo2 is None:
        return 0
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().fordblks)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; other names are checked for availability."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available")
    return device
