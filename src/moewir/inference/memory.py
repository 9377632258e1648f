"""Choosing the tile from a memory budget: ``Restorer(tile="auto")``, ``moewir restore --tile auto``.

An untiled pass needs memory roughly proportional to the pixels it restores. The estimate is
``pixels x bytes_per_pixel(network)``, where the bytes per pixel were measured as the growth
of the process's peak resident memory (``ru_maxrss``) over one untiled float32 forward pass on
a CPU (``bench/tile_memory.py``, ``bench/results/tile_memory.json``), taking the largest value
over the sizes measured and rounding it up (``docs/inference.md`` has the table). Other widths
(``dim``) of the moewirnet and Restormer families are scaled from their family's measured
members: activation memory is proportional to the width. Any other network gets
:data:`UNKNOWN_BYTES_PER_PIXEL`, a deliberately high figure.

The budget is, on CUDA, a fraction of the device's free memory (plus what PyTorch holds cached
but unused) and elsewhere a fraction of the memory the operating system reports as available
(``MemAvailable`` in ``/proc/meminfo``, else free pages from ``os.sysconf``) plus the memory
this process has freed and its allocator keeps for reuse (:func:`moewir.devices.kept_heap_bytes`,
which ``MemAvailable`` does not count): another program may need memory while a long image
restores. If the whole image fits the budget it is restored in one pass; otherwise in the
largest tiles (multiples of 8, at most ``max_tile``) that fit, cut by the even plan of
:mod:`moewir.ops.tiling`.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ..devices import kept_heap_bytes
from ..models import model_spec

__all__ = ["BYTES_PER_PIXEL", "UNKNOWN_BYTES_PER_PIXEL", "bytes_per_pixel", "memory_budget", "auto_tile"]

#: Measured peak-RSS growth per pixel of one untiled float32 pass (CPU), rounded up.
BYTES_PER_PIXEL = {"moewirnet-tiny": 3000, "moewirnet": 6000, "restormer-tiny-matched": 3400}
#: The estimate for a network moewir has not measured: above every measured one.
UNKNOWN_BYTES_PER_PIXEL = 16000
#: Fractions of free memory an untiled pass may take: CUDA memory, host RAM.
CUDA_FRACTION, HOST_FRACTION = 0.8, 0.5
#: The width (``dim``) of each measured network, and its family: other widths of a family scale.
_MEASURED_DIMS = {"moewirnet-tiny": 24, "moewirnet": 48, "restormer-tiny-matched": 20}
_FAMILIES = ("moewirnet", "restormer")


def bytes_per_pixel(network: nn.Module) -> float:
    """The per-pixel memory estimate of one untiled pass of ``network`` (see the module doc)."""
    name, config = model_spec(network)
    dim = config.get("dim")
    family = next((f for f in _FAMILIES if name.startswith(f)), None)
    if family is None or not isinstance(dim, int):
        return UNKNOWN_BYTES_PER_PIXEL
    if _MEASURED_DIMS.get(name) == dim:
        return BYTES_PER_PIXEL[name]
    return dim * max(BYTES_PER_PIXEL[n] / d for n, d in _MEASURED_DIMS.items() if n.startswith(family))


def _available_host_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0  # unknown: nothing fits, so auto tiles


def memory_budget(device: torch.device) -> int:
    """Bytes an untiled pass may use on ``device`` (see the module doc)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(CUDA_FRACTION * (free + cached))
    return int(HOST_FRACTION * (_available_host_bytes() + kept_heap_bytes()))  # CPU; MPS shares host memory


def auto_tile(network: nn.Module, shape: tuple[int, ...], device: torch.device, overlap: int = 32,
              max_tile: int = 512, budget: int | None = None) -> int | None:
    """``None`` (one pass) if an image batch of ``shape`` ``(B, C, H, W)`` fits ``budget`` (bytes;
    default :func:`memory_budget`), else the largest tile (a multiple of 8, at most ``max_tile``,
    at least ``max(64, 2 * overlap + 8)``) whose pass fits."""
    batch, height, width = shape[0], shape[-2], shape[-1]
    per_pixel = bytes_per_pixel(network) * batch
    budget = memory_budget(device) if budget is None else budget
    if height * width * per_pixel <= budget:
        return None
    smallest = max(64, (2 * overlap + 8 + 7) // 8 * 8)
    fits = int((budget / per_pixel) ** 0.5) // 8 * 8
    return max(smallest, min(max_tile, fits))
