"""What the distillation knows about one image: a caption, a visual feature and a thumbnail.

UniRain stores every real rainy reference with a caption and a visual feature, and retrieves
by caption similarity, then visual cosine, then structural similarity. A *describer* makes the
first two; :func:`thumbnail` makes the 64 x 64 grey thumbnail the structural stage compares.

:class:`BuiltinDescriber` needs no weights. It measures the image on a working copy whose
longer side is 320 px:

==============  ==========================================================================
group           measurements
==============  ==========================================================================
brightness      mean and spread of luma, dark (< 0.12) and clipped (> 0.9) fractions
colour          mean R - Y and B - Y, mean and spread of saturation
rain            bright thin structures: luma minus its 5 x 5 grey opening (white top-hat),
                its mean, 90th / 99th percentile and fraction above 0.04
orientation     15-px line detectors at 12 angles on the top-hat: the share of energy per
                angle, and streakiness (max / mean - 1; streaks share one direction)
frequency       share of luma power in 6 log-spaced radial bands, and horizontal / vertical
                high-frequency balance
texture         mean gradient magnitude, 10/50/90th percentiles of 16 x 16 block Laplacian
                energy (drops blur the scene behind them)
==============  ==========================================================================

The caption reads these measurements as words (``night``, ``heavy rain streaks``,
``dim scene``, ``warm muted colours``); its thresholds are in :data:`CAPTION_THRESHOLDS`
and were set on ``moewir synth`` data (``bench/distill_calibrate.py``, ``docs/distill.md``).
Captions are compared as hashed bag-of-words vectors (:func:`embed_captions`), so captions
written by any other captioner compare the same way.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.color import luma
from ..ops.filters import hann_window_2d, laplacian, line_kernel

__all__ = ["RainType", "Description", "Describer", "BuiltinDescriber", "thumbnail", "embed_captions",
           "CAPTION_THRESHOLDS", "LUMA", "RAIN_TYPES", "RAIN_TYPE_NAMES", "THUMB_SIZE", "CAPTION_DIM", "working_copy", "white_tophat", "line_energy",
           "rain_type_of_caption"]



class RainType(StrEnum):
    """UniRain's four rain types: day/night x streak/drop. A member *is* its code (``RainType.NRS
    == "nrs"``), the text stored in databases, caches and output files."""
    DRS = "drs"
    DRD = "drd"
    NRS = "nrs"
    NRD = "nrd"


#: The codes of the four rain types, in RainType order.
RAIN_TYPES = tuple(t.value for t in RainType)
RAIN_TYPE_NAMES = {"drs": "daytime rain streaks", "drd": "daytime raindrops",
                   "nrs": "nighttime rain streaks", "nrd": "nighttime raindrops"}
THUMB_SIZE = 64
CAPTION_DIM = 256
#: The luma every measurement, thumbnail and pair check is made on (``moewir.ops.color``): the
#: thresholds below and in ``pairs.PAIR_THRESHOLDS`` were calibrated on it.
LUMA = "bt601-full"
WORK_SIDE = 320

#: Caption thresholds on the built-in measurements (see the module docstring).
CAPTION_THRESHOLDS = {
    "night_luma": 0.20,          # mean luma below: night
    "streakiness": 0.12,         # streaks: line-detector streakiness above this ...
    "streak_angle": 30.0,        # ... with the dominant line within this many degrees of vertical
    "rain_light": 0.10,          # top-hat fraction above 0.04: below = light rain
    "rain_heavy": 0.30,          # above = heavy rain (between: moderate)
    "scene_dark": 0.20,          # mean luma: dark < 0.20 <= dim < 0.40 <= bright
    "scene_dim": 0.40,
    "warm": 0.02,                # (R - Y) - (B - Y) above: warm, below -warm: cool
    "colourful": 0.25,           # mean saturation above: colourful, else muted
}


@dataclass
class Description:
    """A describer's view of one image, and (once :func:`thumbnail` made it) its thumbnail.

    :meth:`row` / :meth:`from_row` are its encoding as the :attr:`SQL_COLUMNS` of the reference
    database and of the analysis cache: the caption, the rain type's code, the float32 bytes of
    the feature and the uint8 bytes of the (square) thumbnail.
    """
    caption: str
    visual: np.ndarray              # float32 feature vector (raw; the database standardizes it)
    rain_type: RainType             # the describer's guess
    thumb: np.ndarray | None = None  # THUMB_SIZE x THUMB_SIZE uint8 grey thumbnail

    SQL_COLUMNS: ClassVar[str] = "caption, rain_type, visual, thumb"
    SQL_SCHEMA: ClassVar[str] = "caption TEXT, rain_type TEXT, visual BLOB, thumb BLOB"

    def row(self) -> tuple[str, str, bytes, bytes]:
        if self.thumb is None:
            raise ValueError("a description is stored with its thumbnail")
        return (self.caption, RainType(self.rain_type).value, np.asarray(self.visual, np.float32).tobytes(),
                np.ascontiguousarray(self.thumb, np.uint8).tobytes())

    @classmethod
    def from_row(cls, caption: str, rain_type: str, visual: bytes, thumb: bytes) -> "Description":
        side = int(round(len(thumb) ** 0.5))
        return cls(caption, np.frombuffer(visual, np.float32), RainType(rain_type),
                   np.frombuffer(thumb, np.uint8).reshape(side, side))


class Describer(Protocol):
    """Captioner and visual embedder behind one interface (built-in, or CLIP from local weights)."""
    name: str

    def describe(self, image: np.ndarray) -> Description: ...


def working_copy(image: np.ndarray, side: int = WORK_SIDE) -> torch.Tensor:
    """``3 x h x w`` float tensor, antialiased down so that the longer side is at most ``side``."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    h, w = x.shape[1:]
    scale = side / max(h, w)
    if scale < 1.0:
        size = (max(8, round(h * scale)), max(8, round(w * scale)))
        x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    return x.clamp(0.0, 1.0)


def white_tophat(y: torch.Tensor, size: int = 5) -> torch.Tensor:
    """``y`` minus its grey opening by a ``size`` square: bright structures thinner than ``size``."""
    pad = size // 2
    x = F.pad(y[None, None], (pad,) * 4, mode="replicate")
    eroded = -F.max_pool2d(-x, size, stride=1)
    opened = F.max_pool2d(F.pad(eroded, (pad,) * 4, mode="replicate"), size, stride=1)
    return (y - opened[0, 0]).clamp_min(0.0)


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


def _gradients(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = F.pad(y[None, None], (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(x, _SOBEL[None, None])[0, 0]
    gy = F.conv2d(x, _SOBEL.t()[None, None])[0, 0]
    return gx, gy


#: Line-detector angles in degrees from vertical (0 = vertical, positive = clockwise).
LINE_ANGLES = np.arange(-90, 90, 15)
_LINES = torch.stack([line_kernel(15, float(a)).float() for a in LINE_ANGLES])[:, None]


def line_energy(t: torch.Tensor) -> torch.Tensor:
    """Mean squared response of ``t`` to the 15-px line detector at each of LINE_ANGLES."""
    k = _LINES.shape[-1]
    response = F.conv2d(F.pad(t[None, None], (k // 2,) * 4, mode="replicate"), _LINES)
    return (response ** 2).mean((0, 2, 3))


def _streaks(t: torch.Tensor) -> tuple[float, float, np.ndarray]:
    """Streakiness of the top-hat ``t`` (max over mean line energy, minus 1), the dominant
    angle, and the 12 energies as shares (the orientation histogram)."""
    energy = line_energy(t)
    share = energy / energy.sum().clamp_min(1e-12)
    streakiness = float(energy.max() / energy.mean().clamp_min(1e-12) - 1.0)
    return streakiness, float(LINE_ANGLES[int(energy.argmax())]), share.numpy()


def _spectrum(y: torch.Tensor) -> np.ndarray:
    """Share of power in 6 log-spaced radial bands, and log(horizontal / vertical) high frequency."""
    h, w = y.shape
    power = torch.fft.rfft2((y - y.mean()) * hann_window_2d(h, w)).abs() ** 2
    fy = torch.fft.fftfreq(h)[:, None].abs()
    fx = torch.fft.rfftfreq(w)[None]
    radius = torch.sqrt(fx * fx + fy * fy)
    edges = torch.tensor([0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 1.0])
    bands = torch.stack([power[(radius >= lo) & (radius < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])
    share = bands / bands.sum().clamp_min(1e-12)
    high = radius > 0.16
    horizontal = power[high & (fx > 2 * fy)].sum()  # energy of structures varying along x: vertical lines
    vertical = power[high & (fy > 2 * fx)].sum()
    balance = torch.log((horizontal + 1e-9) / (vertical + 1e-9))
    return torch.cat([share, balance[None]]).numpy()


def _block_laplacian(y: torch.Tensor, block: int = 16) -> np.ndarray:
    lap = laplacian(y[None, None])
    energy = F.avg_pool2d(lap * lap, block, stride=block).flatten()
    if energy.numel() == 0:
        energy = (lap * lap).mean()[None]
    return np.log10(np.quantile(energy.numpy(), [0.1, 0.5, 0.9]) + 1e-8)


class BuiltinDescriber:
    """Captions and features from measured statistics; no weights (see the module docstring)."""
    name = "builtin-v1"

    def __init__(self, thresholds: dict | None = None):
        self.thresholds = {**CAPTION_THRESHOLDS, **(thresholds or {})}

    def measure(self, image: np.ndarray) -> dict[str, float | np.ndarray]:
        """The named measurements the caption and the feature vector are made of."""
        x = working_copy(image)
        y = luma(x, LUMA)
        sat = (x.max(0).values - x.min(0).values) / (x.max(0).values + 1e-3)
        t = white_tophat(y)
        streakiness, angle, directions = _streaks(t)
        gx, gy = _gradients(y)
        tq = torch.quantile(t.flatten()[:: max(1, t.numel() // 50_000)], torch.tensor([0.9, 0.99]))
        return {
            "luma_mean": float(y.mean()), "luma_std": float(y.std()),
            "dark_fraction": float((y < 0.12).float().mean()), "clipped_fraction": float((y > 0.9).float().mean()),
            "red_minus_y": float((x[0] - y).mean()), "blue_minus_y": float((x[2] - y).mean()),
            "saturation_mean": float(sat.mean()), "saturation_std": float(sat.std()),
            "tophat_mean": float(t.mean()), "tophat_p90": float(tq[0]), "tophat_p99": float(tq[1]),
            "tophat_fraction": float((t > 0.04).float().mean()),
            "streakiness": streakiness, "streak_angle": angle, "directions": directions,
            "spectrum": _spectrum(y),
            "gradient_mean": float(torch.sqrt(gx * gx + gy * gy).mean()),
            "block_laplacian": _block_laplacian(y),
        }

    def caption(self, m: dict) -> str:
        th = self.thresholds
        time = "night" if m["luma_mean"] < th["night_luma"] else "day"
        streaks = m["streakiness"] > th["streakiness"] and abs(m["streak_angle"]) <= th["streak_angle"]
        form = "streaks" if streaks else "drops"
        amount = m["tophat_fraction"]
        intensity = "light" if amount < th["rain_light"] else "heavy" if amount > th["rain_heavy"] else "moderate"
        scene = ("dark" if m["luma_mean"] < th["scene_dark"] else "dim" if m["luma_mean"] < th["scene_dim"]
                 else "bright")
        warmth = m["red_minus_y"] - m["blue_minus_y"]
        tone = "warm" if warmth > th["warm"] else "cool" if warmth < -th["warm"] else "neutral"
        chroma = "colourful" if m["saturation_mean"] > th["colourful"] else "muted"
        return f"{time} photo, {intensity} rain {form}, {scene} scene, {tone} {chroma} colours"

    @staticmethod
    def vector(m: dict) -> np.ndarray:
        scalars = [m[k] for k in ("luma_mean", "luma_std", "dark_fraction", "clipped_fraction", "red_minus_y",
                                  "blue_minus_y", "saturation_mean", "saturation_std", "tophat_mean", "tophat_p90",
                                  "tophat_p99", "tophat_fraction", "streakiness", "gradient_mean")]
        return np.concatenate([np.asarray(scalars, np.float64), m["directions"], m["spectrum"],
                               m["block_laplacian"]]).astype(np.float32)

    def describe(self, image: np.ndarray) -> Description:
        m = self.measure(image)
        caption = self.caption(m)
        return Description(caption, self.vector(m), rain_type_of_caption(caption))


def rain_type_of_caption(caption: str) -> RainType:
    """``drs``/``drd``/``nrs``/``nrd`` from the words ``night`` and ``drop(s)`` in a caption."""
    words = set(re.findall(r"[a-z]+", caption.lower()))
    night = "night" in words or "nighttime" in words
    drops = bool(words & {"drop", "drops", "raindrop", "raindrops", "droplets"})
    return RainType(("n" if night else "d") + "r" + ("d" if drops else "s"))


def embed_captions(captions: list[str], dim: int = CAPTION_DIM) -> np.ndarray:
    """L2-normalized hashed bag-of-words (unigrams and bigrams) vectors, ``N x dim`` float32."""
    out = np.zeros((len(captions), dim), np.float32)
    for i, text in enumerate(captions):
        words = re.findall(r"[a-z]+", text.lower())
        for token in words + [a + " " + b for a, b in zip(words, words[1:])]:
            out[i, zlib.crc32(token.encode()) % dim] += 1.0
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norm, 1e-12)


def thumbnail(image: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """``size x size`` uint8 grey thumbnail (aspect ratio not kept) for the structural stage."""
    y = luma(working_copy(image, side=4 * size), LUMA)
    t = F.interpolate(y[None, None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (t[0, 0].clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
