"""UniRain's hierarchical retrieval: caption similarity -> top-K1, visual cosine -> top-K2,
structural similarity of thumbnails -> the final reference set S(q) of K3 images.

Ranking at each stage is by that stage's score; ties in caption similarity (common: captions
repeat) are broken by visual similarity, then by database order, so the result is
deterministic. Queries are processed in blocks, so memory stays at ``block x N`` floats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import ssim
from .database import LoadedDB

__all__ = ["Retrieval", "retrieve", "ssim_thumbs"]


@dataclass
class Retrieval:
    indices: np.ndarray  # Q x K3 database rows, best first
    visual: np.ndarray   # Q x K3 visual cosine similarities
    ssim: np.ndarray     # Q x K3 thumbnail SSIM


def ssim_thumbs(a: np.ndarray, b: np.ndarray, window: int = 7) -> np.ndarray:
    """Mean SSIM of uint8 grey thumbnails ``a[i]`` vs ``b[i]`` (``... x S x S``): ``moewir.metrics.ssim``
    with a ``window x window`` uniform window, in float32 (the constants of Wang et al. 2004,
    K1 = 0.01, K2 = 0.03, L = 255)."""
    def grey(t: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(t, np.float32).reshape(-1, 1, *t.shape[-2:])) / 255.0
    s = ssim(grey(a), grey(b), quantize=False, dtype=torch.float32, window="uniform", window_size=window)
    return s.numpy().reshape(a.shape[:-2])


def _top(score: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest scores of each row, best first (ties: lower column)."""
    k = min(k, score.shape[1])
    part = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < score.shape[1] else \
        np.broadcast_to(np.arange(score.shape[1]), score.shape)
    part = np.sort(part, axis=1)  # so that the stable sort below breaks ties by column
    order = np.argsort(-np.take_along_axis(score, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def retrieve(db: LoadedDB, captions: np.ndarray, visual: np.ndarray, thumbs: np.ndarray,
             k1: int = 200, k2: int = 20, k3: int = 5, exclude: np.ndarray | None = None,
             block: int = 64) -> Retrieval:
    """S(q) for each query: ``captions`` (Q x C caption vectors), ``visual`` (Q x D standardized),
    ``thumbs`` (Q x S x S uint8). ``exclude[i]`` is a row left out for query ``i`` (leave-one-out)."""
    if not 1 <= k3 <= k2 <= k1:
        raise ValueError(f"retrieval needs 1 <= k3 <= k2 <= k1, got k1={k1}, k2={k2}, k3={k3}")
    out_idx, out_vis, out_ssim = [], [], []
    for start in range(0, len(captions), block):
        sl = slice(start, start + block)
        cap = captions[sl] @ np.asarray(db.caption_vectors).T
        vis = visual[sl] @ db.visual.T
        if exclude is not None:
            rows = np.arange(len(cap))
            cap[rows, exclude[sl]] = -np.inf
            vis[rows, exclude[sl]] = -np.inf
        # Caption similarity on a 1e-5 grid, ties broken by visual similarity (adds < 1e-5).
        key = np.round(cap.astype(np.float64), 5) + (vis.astype(np.float64) + 1.0) * 2e-6
        stage1 = _top(key, k1)                                        # caption
        stage2 = np.take_along_axis(stage1, _top(np.take_along_axis(vis, stage1, 1), k2), 1)  # visual
        rows = np.unique(stage2)  # sorted: one read of each needed thumbnail
        gathered = np.asarray(db.thumbs[rows])[np.searchsorted(rows, stage2)]
        s = ssim_thumbs(np.broadcast_to(thumbs[sl][:, None], gathered.shape), gathered)
        pick = _top(s, k3)                                      # structural similarity
        idx = np.take_along_axis(stage2, pick, 1)
        out_idx.append(idx)
        out_vis.append(np.take_along_axis(vis, idx, 1))
        out_ssim.append(np.take_along_axis(s, pick, 1))
    return Retrieval(np.concatenate(out_idx), np.concatenate(out_vis), np.concatenate(out_ssim))
