"""Reading and writing images so that real files survive.

Every image comes back as a float32 ``H x W x 3`` array in ``[0, 1]``: EXIF orientation is
applied, grayscale / palette / alpha / CMYK images become RGB, 16-bit PNGs keep their
precision (16-bit colour PNGs through :mod:`moewir.data.png16`, since Pillow truncates them).
Anything that cannot be read raises :class:`ImageReadError` naming the file.
Writes go to a temporary file in the same folder and are renamed into place, so a crash never
leaves a half-written image.
"""
from __future__ import annotations

import os
import re
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .png16 import read_png16

__all__ = ["ImageReadError", "read_image", "write_image", "atomic_file", "to_uint8", "IMAGE_EXTENSIONS",
           "DEFAULT_MAX_PIXELS", "is_image_file", "pil_to_rgb", "writable_format", "source_traits",
           "usable_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Decompression-bomb guard: images above this many pixels are refused (about 16k x 12k).
DEFAULT_MAX_PIXELS = 200_000_000
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class ImageReadError(ValueError):
    """An image file is missing, corrupt, not an image, or unreasonably large."""

    def __init__(self, path: str | os.PathLike, problem: str | None = None):
        if problem is None:  # rebuilt from a message alone: torch's DataLoader re-raises a worker's
            # error as ``type(message)``, the message ending in the worker's "ImageReadError: path: problem"
            last = str(path).rstrip().splitlines()[-1] if str(path).strip() else ""
            path, _, problem = last.rpartition("ImageReadError: ")[2].partition(": ")
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem

    def __reduce__(self):  # picklable, so a worker process can hand it back (the default needs one argument)
        return type(self), (self.path, self.problem)


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Float32 ``H x W x 3`` RGB in [0, 1] from any Pillow mode (16-bit grey keeps its precision;
    alpha is dropped)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        gray = np.asarray(img, dtype=np.uint16).astype(np.float32) / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "I":  # 32-bit integer grayscale; 16-bit PNGs sometimes open this way
        raw = np.asarray(img, dtype=np.int64)
        scale = 65535.0 if raw.max(initial=0) > 255 else 255.0
        gray = np.clip(raw / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":  # palette, possibly with transparency
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Alpha is dropped: restoration works on the colour; transparent pixels keep their colour.
        img = img.convert("RGBA").convert("RGB")
    elif img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK (Adobe-inverted JPEGs handled by Pillow), YCbCr, LAB...
    return np.asarray(img, dtype=np.float32) / 255.0


#: EXIF orientation tag value -> the numpy operation Pillow's ``exif_transpose`` performs.
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: np.rot90(a, 1)}


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as a float32 ``H x W x 3`` RGB array in ``[0, 1]``."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file" if not path.exists() else "not a file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file")
    # Pillow's own guard warns above MAX_IMAGE_PIXELS (89.5 MP) and refuses twice that; the limit
    # that counts is ours (checked below, from the header), so Pillow's is raised to it, never lowered.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w < 1 or h < 1:
                    raise ImageReadError(path, f"invalid size {w}x{h}")
                if w * h > max_pixels:
                    raise ImageReadError(path, f"{w}x{h} is {w * h / 1e6:.0f} megapixels, above the "
                                               f"{max_pixels / 1e6:.0f} MP limit (decompression-bomb guard)")
                if img.format == "PNG" and img.mode in ("RGB", "RGBA"):
                    deep = read_png16(path)
                    if deep is not None:
                        orient = _ORIENT.get(img.getexif().get(0x0112), lambda a: a)
                        return np.ascontiguousarray(orient(deep))
                img = ImageOps.exif_transpose(img)
                img.load()
                return pil_to_rgb(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (format not recognised)") from None
    except Image.DecompressionBombError as exc:  # Pillow's check, at twice our limit, came first
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels, " if found else ""
        raise ImageReadError(path, f"{size}above the {max_pixels / 1e6:.0f} MP limit "
                                   f"(decompression-bomb guard)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"corrupt or truncated image ({exc})") from None


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it is renamed onto ``path``, on any
    error it is removed, so ``path`` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` -> uint8 with rounding (uint8 input is returned as it is)."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def writable_format(extension: str) -> str | None:
    """Pillow's format name that can write files ending in ``extension`` (``".png"``), or ``None``."""
    fmt = Image.registered_extensions().get(extension.lower())
    return fmt if fmt in Image.SAVE else None


def source_traits(path: str | os.PathLike) -> tuple[int, int]:
    """``(frames, bits)`` of an image file: frames of an animated GIF / WebP / APNG (1 for a still
    image), and 16 when its samples have 16 bits (PNG, or 16-bit grey of another format), else 8.
    A file that cannot be opened gives ``(1, 8)``."""
    from .png16 import png_bit_depth

    depth = png_bit_depth(path)  # Pillow opens 16-bit colour PNGs as 8-bit RGB: ask the header
    try:
        with Image.open(path) as img:
            frames, mode = int(getattr(img, "n_frames", 1)), img.mode
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        frames, mode = 1, ""
    deep = depth == 16 if depth is not None else mode.startswith("I;16")
    return frames, 16 if deep else 8


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95, bits: int = 8) -> None:
    """Write a float ``H x W x 3`` array in ``[0, 1]`` (or uint8) to ``path`` atomically.

    The format follows the extension; JPEGs use ``quality``. ``bits=16`` writes a 16-bit PNG
    (only PNG: the other formats are written at 8 bits).
    """
    path = Path(path)
    fmt = writable_format(path.suffix)
    if fmt is None:
        raise ValueError(f"{path}: unknown or unwritable image extension {path.suffix!r}")
    if bits == 16 and fmt == "PNG" and np.asarray(image).dtype != np.uint8:
        from .png16 import write_png16

        with atomic_file(path) as f:
            write_png16(f, image)
        return
    img = Image.fromarray(to_uint8(image))
    with atomic_file(path) as f:
        img.save(f, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))


def usable_image(path: str | os.PathLike) -> bool:
    """True when ``path`` is a non-empty image that decodes completely (an existing output worth keeping)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
        return True
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
