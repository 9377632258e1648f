"""NIQE against a deliberately naive re-implementation, imresize against hand-computed weights,
and the score's behaviour on the shipped photos."""
import math
from pathlib import Path

import numpy as np
import pytest

from moewir.data import read_image
from moewir.metrics import niqe
from moewir.metrics.niqe import imresize

PHOTOS = sorted((Path(__file__).parents[1] / "src" / "moewir" / "synth" / "photos").glob("*.jpg"))


# ---------------------------------------------------------------------------------------------
# Naive reference: scalar loops and direct formulas, written independently of moewir.metrics.niqe
# ---------------------------------------------------------------------------------------------

def _keys_cubic(x, a=-0.5):
    """Keys (1981) cubic convolution kernel in its general form."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def _reflect(k, n):
    while k < 0 or k >= n:
        k = -1 - k if k < 0 else 2 * n - 1 - k
    return k


def _ref_halve_axis0(img):
    """MATLAB imresize by 0.5 along axis 0, one output row at a time (1-based MATLAB coordinates)."""
    n = img.shape[0]
    rows = []
    for u in range(1, math.ceil(n / 2) + 1):
        x = 2 * u - 0.5  # u / scale + 0.5 * (1 - 1 / scale) with scale 1/2
        weights = {}
        for j in range(math.floor(x - 4) - 1, math.ceil(x + 4) + 2):
            w = 0.5 * _keys_cubic(0.5 * (x - j))
            if w:
                k = _reflect(j - 1, n)
                weights[k] = weights.get(k, 0.0) + w
        total = sum(weights.values())
        rows.append(sum(w / total * img[k] for k, w in weights.items()))
    return np.array(rows)


def _ref_halve(img):
    return _ref_halve_axis0(_ref_halve_axis0(img).T).T


def _ref_gaussian_filter(img):
    """7x7 fspecial('gaussian', 7, 7/6) window, 49 shifted copies, edges replicated by index clamping."""
    h, w = img.shape
    window = [[math.exp(-((i - 3) ** 2 + (j - 3) ** 2) / (2 * (7 / 6) ** 2)) for j in range(7)] for i in range(7)]
    total = sum(map(sum, window))
    out = np.zeros_like(img)
    for i in range(7):
        for j in range(7):
            rows = np.clip(np.arange(h) + i - 3, 0, h - 1)
            cols = np.clip(np.arange(w) + j - 3, 0, w - 1)
            out += window[i][j] / total * img[np.ix_(rows, cols)]
    return out


_GRID = [round(0.2 + 0.001 * k, 3) for k in range(9801)]
_RATIOS = [math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a)) for a in _GRID]


def _ref_aggd(x):
    neg, pos = x[x < 0], x[x > 0]
    sl = math.sqrt(float(np.sum(neg ** 2)) / len(neg))
    sr = math.sqrt(float(np.sum(pos ** 2)) / len(pos))
    g = sl / sr
    r = float(np.sum(np.abs(x))) ** 2 / (len(x) * float(np.sum(x ** 2)))
    target = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    best, alpha = math.inf, None
    for a, rho in zip(_GRID, _RATIOS):  # brute-force search, first minimum wins
        if (rho - target) ** 2 < best:
            best, alpha = (rho - target) ** 2, a
    c = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, sl * c, sr * c


def _ref_block(block):
    n, m = block.shape
    a, bl, br = _ref_aggd(block.flatten())
    feats = [a, (bl + br) / 2]
    for dr, dc in [(0, 1), (1, 0), (1, 1), (1, -1)]:
        shifted = block[np.ix_((np.arange(n) - dr) % n, (np.arange(m) - dc) % m)]  # MATLAB circshift
        a, bl, br = _ref_aggd((block * shifted).flatten())
        feats += [a, (br - bl) * math.gamma(2 / a) / math.gamma(1 / a), bl, br]
    return feats


def _ref_scale(img, size):
    mu = _ref_gaussian_filter(img)
    sigma = np.sqrt(np.abs(_ref_gaussian_filter(img ** 2) - mu ** 2))
    mscn = (img - mu) / (sigma + 1)
    return [_ref_block(mscn[r:r + size, c:c + size])
            for r in range(0, img.shape[0], size) for c in range(0, img.shape[1], size)]


def _ref_niqe(rgb8, crop, y_channel):
    h, w, _ = rgb8.shape
    yiq = [[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]  # MATLAB rgb2gray: inv(YIQ -> RGB)
    grey = np.linalg.inv(np.array(yiq))[0]
    lum = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            r, g, b = (float(v) for v in rgb8[i, j])
            v = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 if y_channel else float(grey @ [r, g, b])
            lum[i, j] = math.floor(v + 0.5)  # MATLAB uint8 rounding
    lum = lum[crop:h - crop, crop:w - crop]
    lum = lum[:lum.shape[0] // 96 * 96, :lum.shape[1] // 96 * 96]
    feats = np.hstack([np.array(_ref_scale(lum, 96)), np.array(_ref_scale(_ref_halve(lum), 48))])
    model = np.load(Path(__file__).parents[1] / "src/moewir/metrics/data/niqe_pristine.npz")
    mu = feats.mean(axis=0)
    centred = feats - mu
    cov = centred.T @ centred / (len(feats) - 1)
    d = model["mu"] - mu
    return math.sqrt(d @ np.linalg.solve((model["cov"] + cov) / 2, d))


# ---------------------------------------------------------------------------------------------


def _photo(name):
    return read_image(next(p for p in PHOTOS if p.stem == name))


@pytest.mark.parametrize("crop,y_channel,size", [(0, True, 192), (4, False, 200)])
def test_matches_naive_reference(crop, y_channel, size):
    # A photo crop with a little noise: exactly flat 7x7 patches would give MSCN coefficients that are
    # zero or +-1e-13 depending on the summation order, which moves the AGGD fits (see docs/metrics.md).
    crop_rgb = _photo("astronaut")[100:100 + size, 150:150 + size] * 255
    dither = np.random.default_rng(size).integers(-3, 4, crop_rgb.shape)
    rgb8 = np.clip(np.round(crop_rgb) + dither, 0, 255).astype(np.uint8)
    ours = niqe(rgb8 / 255.0, crop_border=crop, y_channel=y_channel)
    assert ours == pytest.approx(_ref_niqe(rgb8, crop, y_channel), rel=1e-6)


def test_imresize_hand_computed():
    # Halving stretches the cubic to width 8: h(d) = 0.5 * cubic(d / 2); output u sits at 2u + 0.5, so
    # its taps are at distances 0.5, 1.5, 2.5, 3.5: cubic(1/4) = 111/128, cubic(3/4) = 29/128,
    # cubic(5/4) = -9/128, cubic(7/4) = -3/128, i.e. weights (111, 29, -9, -3) / 256 on each side.
    impulse = np.zeros((1, 16))
    impulse[0, 7] = 256
    np.testing.assert_allclose(imresize(impulse, 0.5)[0], [0, 0, -9, 111, 29, -3, 0, 0], atol=1e-12)
    # At the edge the taps at -1, -2 mirror onto 0, 1: u = 0 gets 111 + 29, u = 1 gets -9 - 3.
    edge = np.zeros((1, 16))
    edge[0, 0] = 256
    np.testing.assert_allclose(imresize(edge, 0.5)[0], [140, -12, 0, 0, 0, 0, 0, 0], atol=1e-12)
    # Linear ramps are reproduced away from the edges: output u reads the input at 2u + 0.5.
    ramp = np.tile(np.arange(24.0), (3, 1))
    np.testing.assert_allclose(imresize(ramp, 0.5)[:, 2:-2], np.tile(np.arange(2, 10) * 2 + 0.5, (2, 1)), atol=1e-12)
    # Constants are preserved, output size is ceil(scale * size), also for other scales.
    for scale, shape in [(0.5, (5, 7)), (0.3, (3, 4)), (2.0, (18, 26))]:
        out = imresize(np.full((9, 13), 7.25), scale)
        assert out.shape == shape
        np.testing.assert_allclose(out, 7.25, rtol=1e-13)


def test_imresize_matches_naive_loop():
    img = np.random.default_rng(3).random((21, 30)) * 255
    np.testing.assert_allclose(imresize(img, 0.5), _ref_halve(img), rtol=1e-12, atol=1e-10)


def _blur(img, sigma=3.0):
    x = np.arange(-3 * int(sigma), 3 * int(sigma) + 1)
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    r = len(x) // 2
    p = np.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    p = sum(w * p[i:i + img.shape[0]] for i, w in enumerate(g))
    return sum(w * p[:, j:j + img.shape[1]] for j, w in enumerate(g))


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.stem)
def test_rises_with_noise_and_blur(path):
    clean = read_image(path).astype(np.float64)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    base = niqe(clean)
    assert 0 < base < niqe(noisy)
    assert base < niqe(_blur(clean))


def test_errors():
    with pytest.raises(ValueError, match=r"two whole 96x96 blocks .* got a 96x150 image"):
        niqe(np.zeros((96, 150, 3)))
    with pytest.raises(ValueError, match=r"crop_border=60, got a 80x80 image"):
        niqe(np.zeros((200, 200, 3)), crop_border=60)
    with pytest.raises(ValueError, match="H x W x 3"):
        niqe(np.zeros((200, 200, 4)))
    with pytest.raises(ValueError, match="flat image"):
        niqe(np.full((192, 192, 3), 0.5))
