"""Pair-quality measurements of one (degraded input, clean target) training pair, and the checks
that reject bad pairs before any judge sees them.

=================  ===================================================================  ================
check (reason)     measurement                                                         rejected when
=================  ===================================================================  ================
``size-mismatch``  input and target sizes                                              they differ
``misaligned``     phase correlation of the blurred lumas (768-px working copies):      shift > 1 px or
                   the sub-pixel shift, and the normalized cross-correlation (NCC)      NCC < 0.5
``clean-input``    PSNR (Y, full resolution) between input and target                  > 45 dB
``rainy-target``   thin bright lines in the target that the input lacks, over those     above a per-type
                   the weather added to the input (``rain_left``, line detectors on     ratio, see
                   the top-hats of target - input and input - target)                  PAIR_THRESHOLDS
``duplicate``      64-bit difference hashes of input and target, and where the          both hashes within
                   degradation is (8 x 8 grid of |input - target|); an earlier pair     3 bits, grids
                   (candidate order) that matches                                       correlate > 0.9
=================  ===================================================================  ================

Thresholds are in :data:`PAIR_THRESHOLDS` (calibration: ``bench/distill_calibrate.py``,
numbers in ``docs/distill.md``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import psnr
from ..ops.color import luma
from ..ops.filters import gaussian_blur, hann_window_2d
from .features import LUMA, line_energy, white_tophat, working_copy

__all__ = ["pair_statistics", "pair_problems", "dhash", "hamming", "residual_correlation", "PAIR_THRESHOLDS",
           "pair_thresholds"]

PAIR_THRESHOLDS = {
    "max_shift": 1.0,        # working-copy pixels (768-px longer side)
    "min_ncc": 0.5,
    "max_psnr": 45.0,        # dB: above = almost no degradation
    # rain left in the target / rain added to the input, per rain type (night pairs carry sensor
    # noise both ways, so their ratio sits higher). None: no check. Day drops add few thin lines
    # to the input, so for day drop pairs the ratio does not separate good from planted pairs.
    "max_rain_left": {"drs": 0.8, "nrs": 1.15, "drd": None, "nrd": 1.3},
    "dup_bits": 3,           # dHash Hamming distance (of 64) for a near-duplicate
    "dup_residual": 0.9,     # and residual-grid correlation above this (the same degradation)
}
ALIGN_SIDE = 768


ALIGN_SIGMA = 1.5  # the lumas are blurred before phase correlation (radius int(3 sigma), edges repeated)


def _blur(y: torch.Tensor) -> torch.Tensor:
    return gaussian_blur(y, ALIGN_SIGMA, max(1, int(3 * ALIGN_SIGMA)), "replicate", "direct")


def _subpixel(c: np.ndarray, i: int, n: int) -> float:
    """Parabolic refinement of a correlation peak at index ``i`` of a circular 1-D profile ``c``."""
    left, mid, right = c[(i - 1) % n], c[i], c[(i + 1) % n]
    denom = left - 2 * mid + right
    return float(0.5 * (left - right) / denom) if abs(denom) > 1e-12 else 0.0


def alignment(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    """``(dy, dx, ncc)``: the shift of ``b`` relative to ``a`` by phase correlation, and the
    normalized cross-correlation of the two at zero shift."""
    h, w = a.shape
    window = hann_window_2d(h, w)
    fa = torch.fft.rfft2((a - a.mean()) * window)
    fb = torch.fft.rfft2((b - b.mean()) * window)
    cross = fa * fb.conj()
    corr = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-9), s=(h, w)).numpy()
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    dy = iy + _subpixel(corr[:, ix], iy, h)
    dx = ix + _subpixel(corr[iy, :], ix, w)
    dy = dy - h if dy > h / 2 else dy
    dx = dx - w if dx > w / 2 else dx
    za, zb = a - a.mean(), b - b.mean()
    ncc = float((za * zb).sum() / (za.norm() * zb.norm()).clamp_min(1e-12))
    return -float(dy), -float(dx), ncc


def _psnr_y(inp: np.ndarray, tgt: np.ndarray) -> float:
    """The ``clean-input`` PSNR as calibrated: full-resolution luma (LUMA), float32, not rounded to
    8-bit levels, at most 100 dB (a finite number for identical images, for JSON)."""
    def chw(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return psnr(chw(inp), chw(tgt), y_channel=True, quantize=False, luma_convention=LUMA, dtype=torch.float32,
                max_db=100.0).item()


def dhash(y: torch.Tensor) -> int:
    """64-bit difference hash of a grey ``H x W`` image: signs of the horizontal differences of
    its 9 x 8 thumbnail."""
    t = F.interpolate(y[None, None], size=(8, 9), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    bits = (t[:, 1:] > t[:, :-1]).flatten().tolist()
    return sum(1 << i for i, bit in enumerate(bits) if bit)


def hamming(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def pair_statistics(inp: np.ndarray, tgt: np.ndarray) -> dict:
    """Every measurement the checks need (JSON-serializable)."""
    stats: dict = {"input_size": list(inp.shape[:2]), "target_size": list(tgt.shape[:2])}
    if inp.shape != tgt.shape:
        return stats
    stats["psnr"] = _psnr_y(inp, tgt)
    a, b = luma(working_copy(inp, ALIGN_SIDE), LUMA), luma(working_copy(tgt, ALIGN_SIDE), LUMA)
    dy, dx, ncc = alignment(_blur(a), _blur(b))
    stats.update(shift=float(np.hypot(dy, dx)), shift_yx=[dy, dx], ncc=ncc)
    # Weather adds thin bright structures to the input: the white top-hat of input - target.
    # Thin bright lines the *target* has and the input lacks (top-hat of target - input) are
    # rain left in the target; ``rain_left`` is the ratio of their strongest line energies.
    diff = a - b
    added, left = line_energy(white_tophat(diff)), line_energy(white_tophat(-diff))
    stats["rain_left"] = float(left.max() / added.max().clamp_min(1e-12))
    # Where the degradation is: |input - target| averaged on an 8 x 8 grid (duplicate check).
    grid = F.adaptive_avg_pool2d(diff.abs()[None, None], (8, 8)).flatten()
    stats["residual_grid"] = [round(float(v), 5) for v in grid]
    stats["input_dhash"] = f"{dhash(a):016x}"
    stats["target_dhash"] = f"{dhash(b):016x}"
    return stats


def residual_correlation(a: list[float], b: list[float]) -> float:
    """Pearson correlation of two residual grids (1 when both are constant and equal)."""
    x, y = np.asarray(a) - np.mean(a), np.asarray(b) - np.mean(b)
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    if denom < 1e-12:
        return 1.0 if np.allclose(a, b, atol=1e-4) else 0.0
    return float(x @ y / denom)


def pair_thresholds(overrides: dict | None = None) -> dict:
    """PAIR_THRESHOLDS with ``overrides`` (the config's ``pair_checks``); a per-type threshold
    may be overridden for some types only. Unknown names are an error."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in PAIR_THRESHOLDS.items()}
    for key, value in (overrides or {}).items():
        if key not in out:
            raise ValueError(f"pair_checks: unknown threshold {key!r}; known: {', '.join(PAIR_THRESHOLDS)}")
        if isinstance(out[key], dict):
            if not isinstance(value, dict) or set(value) - set(out[key]):
                raise ValueError(f"pair_checks.{key}: expected a mapping of {', '.join(out[key])}, got {value!r}")
            out[key].update(value)
        else:
            out[key] = value
    return out


def pair_problems(stats: dict, rain_type: str, thresholds: dict | None = None) -> list[str]:
    """The reasons (in a fixed order) for which this pair is rejected; empty when it passes.
    ``thresholds``: from :func:`pair_thresholds` (default PAIR_THRESHOLDS). Duplicates are
    found later, across pairs."""
    th = thresholds or PAIR_THRESHOLDS
    if stats["input_size"] != stats["target_size"]:
        return ["size-mismatch"]
    problems = []
    if stats["shift"] > th["max_shift"] or stats["ncc"] < th["min_ncc"]:
        problems.append("misaligned")
    if stats["psnr"] > th["max_psnr"]:
        problems.append("clean-input")
    limit = th["max_rain_left"][rain_type]
    if limit is not None and stats["rain_left"] > limit:
        problems.append("rainy-target")
    return problems
