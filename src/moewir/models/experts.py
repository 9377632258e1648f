"""The three self-attention experts of MOE-WIRNet (Sec. 3.2).

Each expert sees one channel share ``X_i`` of the MoE module's input and returns a tensor of
the same shape. All three project ``Q, K, V`` the same way (Eq. for ``Q = W_d^Q W_p^Q X``):
a 1x1 point-wise conv followed by a 3x3 depth-wise conv (:class:`QKVProjection`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .layers import LayerNorm2d, _exporting, pad_to_multiple

__all__ = ["QKVProjection", "ChannelExpert", "SpatialExpert", "FrequencyExpert",
           "topk_masked_softmax", "window_key_mask", "keep_count"]


def _depthwise3x3(channels: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=bias)


class QKVProjection(nn.Module):
    """``Q = W_d^Q W_p^Q X``, ``K = W_d^K W_p^K X``, ``V = W_d^V W_p^V X``:
    1x1 point-wise conv (``W_p``) then 3x3 depth-wise conv (``W_d``)."""

    def __init__(self, dim: int, bias: bool = False):
        super().__init__()
        self.pointwise = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.depthwise = _depthwise3x3(dim * 3, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[Q; K; V]`` stacked along the channels, shape ``(B, 3C, H, W)``."""
        return self.depthwise(self.pointwise(x))


class ChannelExpert(nn.Module):
    """Channel self-attention expert: transposed (MDTA) attention over channels.

    ``A_channel = Softmax(Q_hat K_hat^T / tau)`` with ``Q_hat, K_hat`` L2-normalised along the
    pixels, one ``(C/h) x (C/h)`` map per head, and ``F_c = W_o (A_channel V)``. The learnable
    temperature is stored as its inverse ``alpha = 1 / tau`` (one per head) so that it
    multiplies, as in Restormer. This is also Restormer's attention.
    """

    def __init__(self, dim: int, heads: int, bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"channel expert: {dim} channels do not split into {heads} heads")
        self.heads = heads
        self.qkv = QKVProjection(dim, bias)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w) for t in self.qkv(x).chunk(3, dim=1))
        # Q_hat K_hat^T = diag(1/|q|) Q K^T diag(1/|k|): the L2 normalisation (F.normalize's,
        # eps 1e-12) scales the small (C/h x C/h) product instead of the full-size Q and K.
        q_norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(1e-12)
        k_norm = torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(1e-12)
        attn = (q @ k.transpose(-2, -1) / (q_norm * k_norm.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, -1, h, w))


def topk_masked_softmax(scores: torch.Tensor, key_valid: torch.Tensor | None, keep: int) -> torch.Tensor:
    """``Softmax(Scatter(Top-k(mask(S))))`` along the last dim.

    ``key_valid`` (broadcastable to ``scores``) marks the keys a query may attend to; the others
    are set to ``-inf`` (the mask); ``None`` means every key is valid. Of the remaining scores
    each query keeps its ``keep`` largest. Keeping the top ``k`` of ``n`` is done by scattering
    ``-inf`` into the ``n - k`` smallest, which gives the same matrix as scattering the top ``k``
    into a ``-inf`` one and costs half as much (a smaller selection, no second full tensor).
    Every query must have at least one valid key. (Selecting by a per-row threshold, the
    ``keep``-th largest score from ``topk`` values or ``kthvalue``, measured slower on the CPU and
    would keep every key tied with the threshold.)
    """
    fresh = key_valid is not None  # ``scores`` is then our own copy, which may change in place
    if fresh:
        scores = scores.masked_fill(~key_valid, float("-inf"))
    drop = scores.shape[-1] - keep
    if drop > 0:
        lowest = scores.topk(drop, dim=-1, largest=False, sorted=False).indices
        scores = (scores.scatter_ if fresh else scores.scatter)(-1, lowest, float("-inf"))
    return scores.softmax(dim=-1)


def window_key_mask(height: int, width: int, window: int, shift: int,
                    device: torch.device | None = None) -> torch.Tensor:
    """``(num_windows, window**2)`` booleans: True where a window position is a real pixel.

    The feature map is padded with ``shift`` pixels at the top/left (shifted windows) and up to
    the next multiple of ``window`` at the bottom/right; padded positions are not pixels.
    """
    ones = torch.ones(1, 1, height, width, device=device)
    padded = pad_to_multiple(ones, window, mode="constant", before=shift)
    return rearrange(padded, "1 1 (nh p1) (nw p2) -> (nh nw) (p1 p2)", p1=window, p2=window) > 0


def keep_count(topk_ratio: float, window_size: int) -> int:
    """Keys each query keeps in :class:`SpatialExpert`: ``max(1, round(topk_ratio * window**2))``."""
    return max(1, round(topk_ratio * window_size ** 2))


class SpatialExpert(nn.Module):
    """Spatial self-attention expert: masked, top-k sparsified pixel attention, then a 3x3 DConv.

    ``A_spatial = Softmax(Scatter(Top-k(mask(Q K^T))))`` and
    ``F_s = DConv_3x3(Reshape(A_spatial V))``.

    Dense ``HW x HW`` attention is impossible at real sizes, so each pixel attends to the
    pixels of its ``window x window`` window (optionally shifted by ``shift``, Swin-style, so
    that alternating blocks connect neighbouring windows); memory grows linearly with the pixel
    count. The **mask** prunes the interactions that are not physical: the padding added to
    fill border windows and to shift the grid (which, with the usual cyclic shift, would pair
    pixels from opposite image borders). **Top-k** then keeps, for each query, the
    ``k = max(1, round(topk_ratio * window**2))`` largest scores (70% by default); where a border
    window has fewer valid keys than ``k``, all of its valid keys are kept.
    """

    def __init__(self, dim: int, heads: int, window_size: int = 8, shift: int = 0,
                 topk_ratio: float = 0.7, bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"spatial expert: {dim} channels do not split into {heads} heads")
        if not 0 <= shift < window_size:
            raise ValueError(f"spatial expert: shift {shift} must be in [0, window_size={window_size})")
        self.heads = heads
        self.window_size = window_size
        self.shift = shift
        self.keep = keep_count(topk_ratio, window_size)
        self.scale = (dim // heads) ** -0.5
        self.qkv = QKVProjection(dim, bias)
        self.dconv = _depthwise3x3(dim, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ws, s = self.window_size, self.shift
        qkv = pad_to_multiple(self.qkv(x), ws, mode="constant", before=s)
        nh, nw = qkv.shape[-2] // ws, qkv.shape[-1] // ws
        q, k, v = rearrange(qkv, "b (three head d) (nh p1) (nw p2) -> three (b nh nw) head (p1 p2) d",
                            three=3, head=self.heads, p1=ws, p2=ws)
        # The mask is all True when nothing was padded (no shift, sizes multiple of the window);
        # it is then skipped, except while exporting (the graph must hold for every size).
        padded = _exporting() or s > 0 or h % ws or w % ws
        valid = window_key_mask(h, w, ws, s, x.device).repeat(b, 1)[:, None, None, :] if padded else None
        attn = topk_masked_softmax((q * self.scale) @ k.transpose(-2, -1), valid, self.keep)
        out = rearrange(attn @ v, "(b nh nw) head (p1 p2) d -> b (head d) (nh p1) (nw p2)",
                        b=b, nh=nh, nw=nw, p1=ws, p2=ws)
        return self.dconv(out[..., s:s + h, s:s + w])


class FrequencyExpert(nn.Module):
    """Frequency self-attention expert: patch-wise spectral correlation of Q and K gates V.

    For each ``patch x patch`` patch, ``Q_fft = F(Q)``, ``K_fft = F(K)``,
    ``F_fft = Q_fft * conj(K_fft)`` and ``F_space = F^{-1}(F_fft)`` (the circular
    cross-correlation of Q and K inside the patch); ``F_space`` is LayerNorm-normalised over
    channels and ``F_f = DConv_3x3(F_space * V)``. Maps whose size is not a multiple of the patch
    are zero-padded at the bottom/right for the transform and cropped back. The transforms run
    in at least float32 (half-precision FFTs need power-of-two sizes on CUDA and lose precision).
    """

    def __init__(self, dim: int, patch_size: int = 8, bias: bool = False):
        super().__init__()
        self.patch_size = patch_size
        self.qkv = QKVProjection(dim, bias)
        self.norm = LayerNorm2d(dim)
        self.dconv = _depthwise3x3(dim, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = self.patch_size
        qkv = self.qkv(x)
        c = qkv.shape[1] // 3
        qk, v = pad_to_multiple(qkv[:, :2 * c], p, mode="constant"), qkv[:, 2 * c:]
        patches = rearrange(qk, "b c (nh p1) (nw p2) -> b c nh nw p1 p2", p1=p, p2=p)
        if patches.dtype not in (torch.float32, torch.float64):
            patches = patches.float()
        # Split Q and K before the transform (the same numbers as splitting the spectra): ONNX
        # export has no split of complex tensors.
        q_fft, k_fft = (torch.fft.rfft2(t) for t in patches.chunk(2, dim=1))
        corr = torch.fft.irfft2(q_fft * k_fft.conj(), s=(p, p))
        space = rearrange(corr, "b c nh nw p1 p2 -> b c (nh p1) (nw p2)")[..., :h, :w]
        return self.dconv(self.norm(space.to(v.dtype)) * v)
