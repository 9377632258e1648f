"""The network forwards as they were before the fast paths (issue 16), kept as a reference.

Each function is a verbatim copy of a module's ``forward`` before it was optimised (the channel
and spatial experts, top-k masking, the MoE module's fusion); the straightforward form of the
paper's equations (``F.normalize`` on Q and K, a key mask built for every window, ``zeros_like``
for unchosen experts). Modules the fast paths left alone have no copy here.
``reference_forwards()`` swaps them in for the duration of a ``with`` block, so the same model,
with the same parameters, can be run both ways (tests/test_fast_paths.py, bench/fast_paths_ratio.py).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from einops import rearrange

from moewir.models import experts, moewirnet
from moewir.models.layers import pad_to_multiple


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


def spatial_expert(self, x):
    b, _, h, w = x.shape
    ws, s = self.window_size, self.shift
    qkv = pad_to_multiple(self.qkv(x), ws, mode="constant", before=s)
    nh, nw = qkv.shape[-2] // ws, qkv.shape[-1] // ws
    q, k, v = rearrange(qkv, "b (three head d) (nh p1) (nw p2) -> three (b nh nw) head (p1 p2) d",
                        three=3, head=self.heads, p1=ws, p2=ws)
    valid = experts.window_key_mask(h, w, ws, s, x.device).repeat(b, 1)[:, None, None, :]
    attn = topk_masked_softmax((q * self.scale) @ k.transpose(-2, -1), valid, self.keep)
    out = rearrange(attn @ v, "(b nh nw) head (p1 p2) d -> b (head d) (nh p1) (nw p2)",
                    b=b, nh=nh, nw=nw, p1=ws, p2=ws)
    return self.dconv(out[..., s:s + h, s:s + w])


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
    (experts.ChannelExpert, channel_expert),
    (experts.SpatialExpert, spatial_expert),
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
