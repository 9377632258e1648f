"""The network forwards as they were before the fast paths (issue 16), kept as a reference.

Each function is a verbatim copy of a module's ``forward`` before it was optimised; the
straightforward form of the paper's equations (permute + ``F.layer_norm``, one QKV projection
per expert, ``zeros_like`` for unchosen experts, top-k by ``topk`` indices and ``scatter``).
``reference_forwards()`` swaps them in for the duration of a ``with`` block, so the same model,
with the same parameters, can be run both ways (tests/test_fast_paths.py, bench/fast_paths_ratio.py).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from einops import rearrange

from moewir.models import experts, layers, moewirnet
from moewir.models.layers import pad_to_multiple


def layer_norm_2d(self, x):
    x = x.permute(0, 2, 3, 1)
    x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
    return x.permute(0, 3, 1, 2)


def gated_feed_forward(self, x):
    gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
    return self.project_out(F.gelu(gate) * value)


def qkv_projection(self, x):
    return self.depthwise(self.pointwise(x))


def channel_expert(self, x):
    h, w = x.shape[-2:]
    q, k, v = (rearrange(t, "b (head d) h w -> b head d (h w)", head=self.heads)
               for t in self.qkv(x).chunk(3, dim=1))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
    out = rearrange(attn @ v, "b head d (h w) -> b (head d) h w", h=h, w=w)
    return self.project_out(out)


def topk_masked_softmax(scores, key_valid, keep):
    scores = scores.masked_fill(~key_valid, float("-inf"))
    drop = scores.shape[-1] - keep
    if drop > 0:
        lowest = scores.topk(drop, dim=-1, largest=False, sorted=False).indices
        scores = scores.scatter(-1, lowest, float("-inf"))
    return scores.softmax(dim=-1)


def window_key_mask(height, width, window, shift, device=None):
    ones = torch.ones(1, 1, height, width, device=device)
    padded = pad_to_multiple(ones, window, mode="constant", before=shift)
    return rearrange(padded, "1 1 (nh p1) (nw p2) -> (nh nw) (p1 p2)", p1=window, p2=window) > 0


def spatial_expert(self, x):
    b, _, h, w = x.shape
    ws, s = self.window_size, self.shift
    qkv = pad_to_multiple(self.qkv(x), ws, mode="constant", before=s)
    nh, nw = qkv.shape[-2] // ws, qkv.shape[-1] // ws
    q, k, v = rearrange(qkv, "b (three head d) (nh p1) (nw p2) -> three (b nh nw) head (p1 p2) d",
                        three=3, head=self.heads, p1=ws, p2=ws)
    valid = window_key_mask(h, w, ws, s, x.device).repeat(b, 1)[:, None, None, :]
    attn = topk_masked_softmax((q * self.scale) @ k.transpose(-2, -1), valid, self.keep)
    out = rearrange(attn @ v, "(b nh nw) head (p1 p2) d -> b (head d) (nh p1) (nw p2)",
                    b=b, nh=nh, nw=nw, p1=ws, p2=ws)
    return self.dconv(out[..., s:s + h, s:s + w])


def frequency_expert(self, x):
    h, w = x.shape[-2:]
    p = self.patch_size
    qkv = self.qkv(x)
    c = qkv.shape[1] // 3
    qk, v = pad_to_multiple(qkv[:, :2 * c], p, mode="constant"), qkv[:, 2 * c:]
    patches = rearrange(qk, "b c (nh p1) (nw p2) -> b c nh nw p1 p2", p1=p, p2=p)
    if patches.dtype not in (torch.float32, torch.float64):
        patches = patches.float()
    q_fft, k_fft = (torch.fft.rfft2(t) for t in patches.chunk(2, dim=1))
    corr = torch.fft.irfft2(q_fft * k_fft.conj(), s=(p, p))
    space = rearrange(corr, "b c nh nw p1 p2 -> b c (nh p1) (nw p2)")[..., :h, :w]
    return self.dconv(self.norm(space.to(v.dtype)) * v)


def moe_attention(self, x):
    shares = self.split(self.linear(x)).split(self.share, dim=1)
    weights = self.router()
    active = set(self.router.active())
    mixed = [weights[i] * expert(share) if i in active else torch.zeros_like(share)
             for i, (expert, share) in enumerate(zip(self.experts, shares))]
    fused = self.fusion(torch.cat(mixed, dim=1))
    return fused if self.norm is None else self.norm(x + fused)


#: (class, reference forward) for every module whose forward the fast paths changed.
REFERENCES = [
    (layers.LayerNorm2d, layer_norm_2d),
    (layers.GatedFeedForward, gated_feed_forward),
    (experts.QKVProjection, qkv_projection),
    (experts.ChannelExpert, channel_expert),
    (experts.SpatialExpert, spatial_expert),
    (experts.FrequencyExpert, frequency_expert),
    (moewirnet.MoEAttention, moe_attention),
]


@contextlib.contextmanager
def reference_forwards():
    """Run every changed module with its reference forward inside the ``with`` block."""
    saved = [(cls, cls.forward) for cls, _ in REFERENCES]
    try:
        for cls, forward in REFERENCES:
            cls.forward = forward
        yield
    finally:
        for cls, forward in saved:
            cls.forward = forward
