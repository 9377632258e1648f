"""Each expert against an independent, plainly written reference (float64 NumPy loops)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moewir.models.experts import (ChannelExpert, FrequencyExpert, SpatialExpert, keep_count,
                                   topk_masked_softmax)


def _np(t):
    return t.detach().double().numpy()


def _softmax(row):
    e = np.exp(row - row[np.isfinite(row)].max())
    e[~np.isfinite(row)] = 0.0
    return e / e.sum()


def _channel_layernorm(x, weight, bias, eps=1e-5):
    mu = x.mean(axis=0, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=0, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def _randomize(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def test_channel_expert_matches_naive_transposed_attention():
    dim, heads = 8, 2
    expert = ChannelExpert(dim, heads).double()
    _randomize(expert)
    x = torch.randn(1, dim, 5, 6, dtype=torch.float64)
    q, k, v = (_np(t)[0].reshape(dim, -1) for t in expert.qkv(x).chunk(3, dim=1))
    d = dim // heads
    out = np.zeros_like(v)
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        qh = q[sl] / np.linalg.norm(q[sl], axis=1, keepdims=True)
        kh = k[sl] / np.linalg.norm(k[sl], axis=1, keepdims=True)
        scores = qh @ kh.T * expert.temperature[h].item()
        attn = np.stack([_softmax(r) for r in scores])
        out[sl] = attn @ v[sl]
    expected = expert.project_out(torch.from_numpy(out.reshape(1, dim, 5, 6)))
    torch.testing.assert_close(expert(x), expected)


def _naive_window_attention(q, k, v, heads, window, shift, keep):
    """Per-window, per-query loop: mask the padding, keep the top ``keep`` keys, softmax."""
    c, h, w = q.shape
    d = c // heads
    hp = h + shift + (-(h + shift)) % window
    wp = w + shift + (-(w + shift)) % window
    pads = [(0, 0), (shift, hp - h - shift), (shift, wp - w - shift)]
    qp, kp, vp = (np.pad(t, pads) for t in (q, k, v))
    valid = np.pad(np.ones((h, w), bool), pads[1:])
    out = np.zeros_like(qp)
    for y0 in range(0, hp, window):
        for x0 in range(0, wp, window):
            cells = [(y, x) for y in range(y0, y0 + window) for x in range(x0, x0 + window)]
            for head in range(heads):
                sl = slice(head * d, (head + 1) * d)
                keys = np.stack([kp[sl, y, x] for y, x in cells])
                vals = np.stack([vp[sl, y, x] for y, x in cells])
                mask = np.array([valid[y, x] for y, x in cells])
                for qy, qx in cells:
                    scores = keys @ qp[sl, qy, qx] / np.sqrt(d)
                    scores[~mask] = -np.inf
                    kept = np.full_like(scores, -np.inf)
                    order = np.argsort(-scores, kind="stable")[:keep]
                    kept[order] = scores[order]
                    out[sl, qy, qx] = _softmax(kept) @ vals
    return out[:, shift:shift + h, shift:shift + w]


@pytest.mark.parametrize("shift,size", [(0, (8, 8)), (0, (7, 9)), (2, (7, 9)), (2, (3, 2))])
def test_spatial_expert_matches_naive_window_loop(shift, size):
    dim, heads, window, ratio = 4, 2, 4, 0.5
    expert = SpatialExpert(dim, heads, window, shift, ratio).double()
    _randomize(expert)
    x = torch.randn(1, dim, *size, dtype=torch.float64)
    q, k, v = (_np(t)[0] for t in expert.qkv(x).chunk(3, dim=1))
    attended = _naive_window_attention(q, k, v, heads, window, shift, keep_count(ratio, window))
    expected = expert.dconv(torch.from_numpy(attended[None]))
    torch.testing.assert_close(expert(x), expected)


def test_spatial_expert_without_sparsity_is_dense_attention():
    """One window covering the image and k = 100%: plain softmax attention (PyTorch SDPA)."""
    dim, heads = 6, 3
    expert = SpatialExpert(dim, heads, window_size=8, shift=0, topk_ratio=1.0).double()
    _randomize(expert)
    x = torch.randn(2, dim, 8, 8, dtype=torch.float64)
    q, k, v = (t.flatten(2).unflatten(1, (heads, dim // heads)).transpose(-1, -2)
               for t in expert.qkv(x).chunk(3, dim=1))
    dense = F.scaled_dot_product_attention(q, k, v)
    expected = expert.dconv(dense.transpose(-1, -2).reshape(2, dim, 8, 8))
    torch.testing.assert_close(expert(x), expected)


def test_topk_masked_softmax_keeps_exactly_k_valid_keys():
    scores = torch.randn(3, 5, 10)
    valid = torch.rand(3, 1, 10) > 0.3
    valid[..., 0] = True
    attn = topk_masked_softmax(scores, valid, keep=4)
    n_valid = valid.sum(-1).expand(3, 5)
    assert torch.equal((attn > 0).sum(-1), n_valid.clamp(max=4))
    assert not (attn[~valid.expand_as(attn)] > 0).any()
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 5))


@pytest.mark.parametrize("shape, keep", [((4, 2, 64, 64), 45), ((3, 1, 16, 16), 3)])
def test_topk_masked_softmax_keeps_the_same_keys_as_a_float_sort(shape, keep):
    torch.manual_seed(0)
    scores = torch.randn(*shape) * 5
    scores[0, 0, 0, :5] = -scores[0, 0, 0, :5].abs()  # negative scores among the kept ones too
    valid = torch.rand(shape[0], 1, 1, shape[-1]) > 0.2
    valid[..., 0] = True
    attn = topk_masked_softmax(scores, valid, keep)
    masked = scores.masked_fill(~valid, float("-inf"))
    threshold = masked.sort(dim=-1, descending=True).values[..., keep - 1:keep]  # the keep-th largest
    expected = masked.masked_fill(masked < threshold, float("-inf")).softmax(dim=-1)
    torch.testing.assert_close(attn, expected, rtol=0, atol=0)


def test_spatial_expert_memory_is_linear_in_pixels():
    """Scores live per window: doubling the pixel count doubles the score tensor, not 4x."""
    from moewir.profiling import peak_memory_bytes

    expert = SpatialExpert(6, 1, window_size=8).eval()
    small = peak_memory_bytes(expert, torch.randn(1, 6, 64, 64))
    large = peak_memory_bytes(expert, torch.randn(1, 6, 128, 128))
    assert 3.5 < large / small < 4.5  # 4x pixels -> ~4x memory (dense attention would be 16x)


@pytest.mark.parametrize("size", [(8, 8), (10, 12)])
def test_frequency_expert_matches_direct_circular_correlation(size):
    dim, patch = 3, 4
    expert = FrequencyExpert(dim, patch).double()
    _randomize(expert)
    x = torch.randn(1, dim, *size, dtype=torch.float64)
    q, k, v = (_np(t)[0] for t in expert.qkv(x).chunk(3, dim=1))
    h, w = size
    hp, wp = h + (-h) % patch, w + (-w) % patch
    qp = np.pad(q, [(0, 0), (0, hp - h), (0, wp - w)])
    kp = np.pad(k, [(0, 0), (0, hp - h), (0, wp - w)])
    corr = np.zeros_like(qp)
    for py in range(0, hp, patch):
        for px in range(0, wp, patch):
            qb, kb = qp[:, py:py + patch, px:px + patch], kp[:, py:py + patch, px:px + patch]
            for u in range(patch):
                for t in range(patch):
                    # r[u, t] = sum_{y, x} q[(y + u) % p, (x + t) % p] * k[y, x]
                    shifted = np.roll(qb, shift=(-u, -t), axis=(1, 2))
                    corr[:, py + u, px + t] = (shifted * kb).sum(axis=(1, 2))
    corr = corr[:, :h, :w]
    normed = _channel_layernorm(corr, _np(expert.norm.weight), _np(expert.norm.bias))
    expected = expert.dconv(torch.from_numpy((normed * v)[None]))
    torch.testing.assert_close(expert(x), expected)


@pytest.mark.parametrize("expert", [ChannelExpert(6, 2), SpatialExpert(6, 2, 4, 2), FrequencyExpert(6, 4)],
                         ids=["channel", "spatial", "frequency"])
def test_experts_keep_shape_and_pass_gradients(expert):
    x = torch.randn(2, 6, 9, 11, requires_grad=True)
    y = expert(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in expert.parameters())
