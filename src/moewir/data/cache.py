"""Training images decoded once: a folder of ``.npy`` copies, read back as memory maps.

A training step cuts a small patch from each of its photos, but decoding a 768-px PNG costs far
more than the patch: in the shipped-weights recipe the data-loader workers took 21% of the CPU
(docs/benchmarks.md, "Training throughput: decoding the photos"). With ``datasets.train.cache: FOLDER`` each photo is
decoded by :func:`~moewir.data.io.read_image` the first time it is drawn and stored in its
integer form (8-bit photos as ``uint8``, 16-bit as ``uint16``; anything else as ``float32``);
later draws map the file and convert only the patch, to exactly the values ``read_image`` gives.

A copy is named by the photo's resolved path, size and modification time, so one folder serves
any number of datasets and runs, and an edited photo is decoded afresh. Copies are written to a
temporary name and renamed, so workers and runs sharing the folder never read half a file. The
folder only grows: delete it to reclaim the space (about 1.2 MB per 768 x 512 photo).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from .io import read_image

__all__ = ["DecodedCache", "as_float"]

log = logging.getLogger(__name__)

_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def as_float(array: np.ndarray) -> np.ndarray:
    """A cached array (or a crop of it) as the float32 ``[0, 1]`` values ``read_image`` returns."""
    scale = _SCALES.get(array.dtype)
    return np.asarray(array, dtype=np.float32) if scale is None else array.astype(np.float32) / scale


def _integer_form(image: np.ndarray) -> np.ndarray:
    """``image`` as ``uint8`` or ``uint16`` when that gives back exactly the same floats, else as is."""
    for dtype, scale in _SCALES.items():
        levels = np.rint(image * np.float32(scale))
        if levels.max(initial=0) <= np.iinfo(dtype).max and np.array_equal(
                levels.astype(dtype).astype(np.float32) / scale, image):
            return levels.astype(dtype)
    return image


class DecodedCache:
    """``read(path)``: the photo at ``path`` as an ``H x W x 3`` array (integer or float32, maybe
    a read-only memory map); :func:`as_float` turns it, or any crop of it, into ``read_image``'s values."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._warned = False

    def entry(self, path: Path) -> Path:
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return self.folder / f"{key}.npy"

    def read(self, path: str | os.PathLike) -> np.ndarray:
        path = Path(path)
        if not path.is_file():
            return read_image(path)  # read_image names the problem
        entry = self.entry(path)
        if entry.is_file():
            try:
                return np.load(entry, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:  # a damaged copy: decode again and replace it
                log.warning("decoded cache: %s unreadable (%s); decoding %s again", entry, exc, path)
        stored = _integer_form(read_image(path))
        tmp = entry.with_name(f".{entry.stem}.{os.getpid()}.tmp.npy")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            np.save(tmp, stored, allow_pickle=False)
            os.replace(tmp, entry)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if not self._warned:
                log.warning("decoded cache: cannot write %s (%s); training goes on without caching", entry, exc)
                self._warned = True
        return stored
