"""Statistics over training seeds: mean ± standard deviation, and the paired difference of two
variants with a Student-t 95% interval (what ``moewir ablate --seeds`` reports).

A comparison of two variants trained from the same seeds is paired: seed ``s`` gives both the
same initial weights and batches, so the per-seed differences ``d_s`` carry less noise than the
two means. The interval is ``mean(d) ± t(0.975, n - 1) · sd(d) / sqrt(n)``; it needs n ≥ 2.
"""
from __future__ import annotations

import math
import statistics
from typing import Sequence

__all__ = ["mean_std", "t_quantile", "paired_difference"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n - 1``; 0 for one value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _t_cdf(x: float, df: int) -> float:
    """Student-t CDF for ``x >= 0``. With ``t = sqrt(df) tan(theta)`` the density integral from 0
    to ``x`` becomes ``c sqrt(df)`` times that of ``cos(theta) ** (df - 1)`` from 0 to
    ``atan(x / sqrt(df)) < pi / 2``: smooth and bounded, so composite Simpson with 400 intervals
    is accurate to ~1e-12 for any ``x``."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    end, n = math.atan(x / math.sqrt(df)), 400
    h = end / n
    def f(theta):
        return math.cos(theta) ** (df - 1)
    total = f(0.0) + f(end) + sum((4 if i % 2 else 2) * f(i * h) for i in range(1, n))
    return 0.5 + math.exp(log_norm) * math.sqrt(df) * total * h / 3


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, for ``0.5 <= p < 1``
    (bisection on the CDF; ``t_quantile(0.975, 2) = 4.303``)."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, df) < p else (low, mid)
    return (low + high) / 2


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """``a - b`` paired by position: ``{"mean", "low", "high", "n"}`` (``low``/``high`` the
    ``level`` t interval, NaN for one pair)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    mean, sd = mean_std(diffs)
    if len(diffs) < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": 1}
    half = t_quantile(0.5 + level / 2, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(diffs)}
