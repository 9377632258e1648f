"""Full-precision reader for 16-bit colour PNGs.

Pillow opens 16-bit RGB / RGBA PNGs as 8-bit images (it keeps the high byte). This module
decodes them itself: the IDAT stream is inflated with :mod:`zlib` and the PNG filters
(PNG spec section 9: None, Sub, Up, Average, Paeth) are undone in numpy.

Sub, Average and Paeth make each byte depend on its left neighbour and Up/Average/Paeth on the
row above, so a byte depends only on bytes of earlier anti-diagonals ``row + pixel``. The
filters are therefore undone one anti-diagonal at a time, vectorised along it: ``H + W``
numpy steps instead of ``H * W`` Python steps.

Only non-interlaced files are decoded here; :func:`read_png16` returns ``None`` for anything
else and the caller falls back to Pillow. :func:`write_png16` writes 16-bit RGB PNGs, which
Pillow cannot (filter type 0 on every row, zlib level 6), and :func:`png_bit_depth` reads the
sample depth from the header.
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

__all__ = ["read_png16", "write_png16", "png_bit_depth", "unfilter"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> samples per pixel (RGB, RGBA)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The Paeth predictor (PNG spec 9.4) on int16 arrays."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def unfilter(data: bytes, height: int, width: int, bpp: int) -> np.ndarray:
    """Undo PNG filtering of ``height`` scanlines of ``width`` pixels of ``bpp`` bytes each.

    Returns the raw bytes as a ``height x width x bpp`` uint8 array.
    """
    rows = np.frombuffer(data, dtype=np.uint8)
    if rows.size != height * (1 + width * bpp):
        raise ValueError(f"image data has {rows.size} bytes, expected {height * (1 + width * bpp)}")
    rows = rows.reshape(height, 1 + width * bpp)
    kinds = rows[:, 0].astype(np.int64)
    if kinds.max(initial=0) > 4:
        raise ValueError(f"unknown PNG filter type {int(kinds.max())}")
    filtered = rows[:, 1:].reshape(height, width, bpp).astype(np.int16)
    # One zero row above and one zero pixel to the left: the spec's "outside the image" bytes.
    out = np.zeros((height + 1, width + 1, bpp), dtype=np.int16)
    for d in range(height + width - 1):
        r = np.arange(max(0, d - width + 1), min(height, d + 1))
        i = d - r
        a, b, c = out[r + 1, i], out[r, i + 1], out[r, i]  # left, up, up-left
        kind = kinds[r][:, None]
        predictor = np.select([kind == 1, kind == 2, kind == 3, kind == 4],
                              [a, b, (a + b) // 2, _paeth(a, b, c)], default=0)
        out[r + 1, i + 1] = (filtered[r, i] + predictor) & 0xFF
    return out[1:, 1:].astype(np.uint8)


def read_png16(path: str | os.PathLike) -> np.ndarray | None:
    """Decode a 16-bit RGB/RGBA non-interlaced PNG to float32 ``H x W x 3`` RGB in ``[0, 1]``.

    Returns ``None`` when ``path`` is another kind of PNG (Pillow reads those exactly); only
    its 29-byte header is read then. Raises ``ValueError`` on a damaged file.
    """
    with open(path, "rb") as f:
        header = f.read(29)
        if len(header) < 29 or not header.startswith(_SIGNATURE) or header[12:16] != b"IHDR":
            return None
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[16:29])
        if depth != 16 or colour not in _CHANNELS or interlace != 0:
            return None
        blob = header + f.read()
    channels = _CHANNELS[colour]
    idat, pos = [], 8
    while pos + 8 <= len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        if kind == b"IDAT":
            idat.append(blob[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    try:
        data = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ValueError(f"damaged PNG image data ({exc})") from None
    raw = unfilter(data, height, width, 2 * channels)
    samples = raw.reshape(height, width * channels * 2).view(">u2").reshape(height, width, channels)
    return samples[..., :3].astype(np.float32) / 65535.0


def png_bit_depth(path: str | os.PathLike) -> int | None:
    """Bits per sample of a PNG (1-16) from its header; ``None`` when ``path`` is not a PNG."""
    with open(path, "rb") as f:
        header = f.read(29)
    if len(header) < 29 or not header.startswith(_SIGNATURE) or header[12:16] != b"IHDR":
        return None
    return header[24]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png16(f, image: np.ndarray) -> None:
    """Write a float ``H x W x 3`` image in ``[0, 1]`` to the binary file ``f`` as a 16-bit RGB PNG."""
    samples = np.round(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 65535.0).astype(">u2")
    height, width = samples.shape[:2]
    rows = samples.reshape(height, width * 3).view(np.uint8).reshape(height, width * 6)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0 per row
    f.write(_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))
