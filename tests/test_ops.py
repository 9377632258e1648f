"""moewir.ops (luma, filters, windows) against hand-computed values and naive loops, and the
callers' conventions: PSNR of a known MSE, distillation's pair PSNR as metrics.psnr."""
import math

import numpy as np
import pytest
import torch

from moewir.metrics import psnr, ssim
from moewir.ops.color import LUMA_CONVENTIONS, luma
from moewir.ops.filters import (box_mean, convolve, gaussian_blur, gaussian_kernel, guided_filter,
                                hann_window_2d, laplacian, line_kernel, median_filter, min_filter)

PRIMARIES = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 0], [1.0, 1.0, 1.0]])


# --- luma ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("convention, expected", [
    # ITU-R BT.601 studio swing: 16 + (65.481, 128.553, 24.966) on 8-bit levels, / 255
    ("bt601-studio", [(16 + 65.481) / 255, (16 + 128.553) / 255, (16 + 24.966) / 255, 16 / 255, 235 / 255]),
    ("bt601-full", [0.299, 0.587, 0.114, 0.0, 1.0]),
    ("matlab-rgb2gray", [0.298936021293775, 0.587043074451121, 0.114020904255103, 0.0, 1.0]),
])
def test_luma_of_pure_primaries(convention, expected):
    np.testing.assert_allclose(luma(PRIMARIES, convention, channel_axis=-1), expected, atol=1e-12)
    chw = torch.from_numpy(PRIMARIES.T.copy())[:, :, None]  # 3 x 5 x 1
    np.testing.assert_allclose(luma(chw, convention)[:, 0].numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(luma(PRIMARIES * 255, convention, channel_axis=-1, peak=255.0),
                               np.array(expected) * 255, atol=1e-9)


def test_luma_keeps_type_dtype_and_batch_layout():
    x = torch.rand(2, 3, 4, 5)
    y = luma(x, "bt601-full")
    assert y.shape == (2, 4, 5) and y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2], atol=1e-6)
    a = np.random.default_rng(0).random((4, 5, 3), dtype=np.float32)
    assert luma(a, "bt601-studio", channel_axis=-1).dtype == np.float32
    with pytest.raises(ValueError, match="unknown luma convention"):
        luma(x, "bt709")
    with pytest.raises(ValueError, match="3 channels"):
        luma(x[:, :2], "bt601-full")
    assert set(LUMA_CONVENTIONS) == {"bt601-studio", "bt601-full", "matlab-rgb2gray"}


def test_studio_luma_on_8bit_levels_rounds_like_the_matlab_expression():
    """NIQE rounds ``luma(levels, peak=255)`` to integer levels; they must be those of
    ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``. Rounding can only differ where the exact value
    is a tie k + 1/2 (elsewhere it is at least 1/255000 from one): all 194 ties, found with integers."""
    v = np.arange(256)
    g, b = np.meshgrid(v, v, indexing="ij")
    ties = []
    for r in range(256):
        hit = (65481 * r + 128553 * g + 24966 * b) % 255000 == 127500
        ties += [(r, gg, bb) for gg, bb in zip(g[hit], b[hit])]
    assert len(ties) == 194
    rng = np.random.default_rng(0)
    rgb = np.concatenate([np.array(ties, np.float64), rng.integers(0, 256, (20000, 3)).astype(np.float64)])
    r, g, b = rgb.T
    matlab = np.floor(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 + 0.5)
    ours = np.floor(luma(rgb, "bt601-studio", channel_axis=-1, peak=255.0) + 0.5)
    np.testing.assert_array_equal(ours, matlab)


# --- Gaussian --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma, radius", [(1.5, 5), (7 / 6, 3), (0.4, 1), (12.3, 37)])
def test_gaussian_kernel_is_the_normalised_formula(sigma, radius):
    g = gaussian_kernel(sigma, radius)
    ref = np.array([math.exp(-(x * x) / (2 * sigma * sigma)) for x in range(-radius, radius + 1)])
    assert g.dtype == torch.float64 and g.shape == (2 * radius + 1,)
    assert g.sum().item() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(g.numpy(), ref / ref.sum(), rtol=1e-14)
    np.testing.assert_array_equal(g.numpy(), g.numpy()[::-1])
    with pytest.raises(ValueError, match="sigma > 0"):
        gaussian_kernel(0.0, 3)


def _naive_blur(img, sigma, radius, border):
    """2-D sum over the window, out-of-range indices clamped (replicate) or mirrored (reflect)."""
    h, w = img.shape
    weights = np.array([[math.exp(-(i * i + j * j) / (2 * sigma * sigma)) for j in range(-radius, radius + 1)]
                        for i in range(-radius, radius + 1)])
    weights /= weights.sum()

    def at(k, n):
        if border == "replicate":
            return min(max(k, 0), n - 1)
        return -k if k < 0 else 2 * (n - 1) - k if k >= n else k
    out = np.zeros_like(img)
    for y in range(h):
        for x in range(w):
            out[y, x] = sum(weights[i + radius, j + radius] * img[at(y + i, h), at(x + j, w)]
                            for i in range(-radius, radius + 1) for j in range(-radius, radius + 1))
    return out


@pytest.mark.parametrize("border", ["replicate", "reflect"])
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_gaussian_blur_matches_a_naive_window_sum(border, method):
    img = np.random.default_rng(1).random((9, 12))
    ours = gaussian_blur(torch.from_numpy(img)[None], 1.1, 3, border, method)[0].numpy()
    np.testing.assert_allclose(ours, _naive_blur(img, 1.1, 3, border), atol=1e-12)


def test_gaussian_blur_keeps_constants_dtype_and_leading_axes():
    x = torch.full((2, 3, 10, 11), 0.25, dtype=torch.float32)
    for method in ("direct", "fft"):
        out = gaussian_blur(x, 2.0, 4, "replicate", method)
        assert out.shape == x.shape and out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="border must be"):
        gaussian_blur(x, 1.0, 3, "zeros", "fft")


def test_convolve_is_a_zero_border_convolution_centred_on_the_kernel():
    img = np.random.default_rng(2).random((6, 7))
    kernel = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])  # asymmetric: flips and centre show
    ours = convolve(torch.from_numpy(img), torch.from_numpy(kernel)).numpy()
    ref = np.zeros_like(img)
    top, left = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
    for y in range(6):
        for x in range(7):
            for i in range(kernel.shape[0]):
                for j in range(kernel.shape[1]):
                    yy, xx = y + top - i, x + left - j
                    if 0 <= yy < 6 and 0 <= xx < 7:
                        ref[y, x] += kernel[i, j] * img[yy, xx]
    np.testing.assert_allclose(ours, ref, atol=1e-12)


# --- Laplacian, Hann, line kernel ---------------------------------------------------------------------

def test_laplacian_of_a_quadratic_is_four_inside():
    y, x = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(7.0, dtype=torch.float64),
                          indexing="ij")
    out = laplacian((x * x + y * y)[None, None].expand(2, 3, 6, 7))
    assert out.shape == (2, 3, 6, 7)
    np.testing.assert_allclose(out[..., 1:-1, 1:-1].numpy(), 4.0, atol=1e-12)


@pytest.mark.parametrize("h, w", [(5, 8), (1, 4), (16, 16)])
def test_hann_window_2d_is_the_formula(h, w):
    def hann(n):
        return np.ones(1) if n == 1 else 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))
    np.testing.assert_allclose(hann_window_2d(h, w).numpy(), np.outer(hann(h), hann(w)), atol=1e-6)


def test_line_kernel_by_hand():
    vertical = line_kernel(5, 0.0).numpy()
    assert vertical.shape == (5, 5) and vertical.max() == 1.0
    # 16 samples y = 4j/15 splatted linearly: 56/15 lands on each inner pixel, 36/15 on each end one
    np.testing.assert_allclose(vertical[:, 2], [36 / 56, 1, 1, 1, 36 / 56], atol=1e-12)
    np.testing.assert_allclose(np.delete(vertical, 2, axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(line_kernel(5, 90.0).numpy(), vertical.T, atol=1e-12)
    assert line_kernel(4, 0.0).shape == (5, 5)  # odd size


# --- the callers' conventions ----------------------------------------------------------------------

def test_psnr_of_a_known_mse_under_each_convention():
    a = torch.full((1, 3, 12, 12), 0.5, dtype=torch.float64)
    b = a + 0.01  # every channel and either luma (weights summing to one) off by 0.01
    expected = 10 * math.log10(1 / 0.01 ** 2)  # 40 dB
    assert psnr(b, a, quantize=False).item() == pytest.approx(expected, rel=1e-12)
    assert psnr(b, a, y_channel=True, quantize=False, luma_convention="bt601-full").item() == \
        pytest.approx(expected, rel=1e-12)
    # studio swing maps [0, 1] to 219 of the 255 levels: the luma error is 0.01 * 219 levels
    studio = psnr(b, a, y_channel=True, quantize=False).item()
    assert studio == pytest.approx(10 * math.log10(255 ** 2 / (0.01 * 219) ** 2), rel=1e-9)
    assert psnr(b.float(), a.float(), quantize=False, dtype=torch.float32).dtype == torch.float32
    assert psnr(a, a, quantize=False, max_db=100.0).item() == 100.0
    assert math.isinf(psnr(a, a, quantize=False).item())


def test_distill_pair_psnr_is_metrics_psnr_with_its_convention():
    from moewir.distill.features import LUMA
    from moewir.distill.pairs import pair_statistics
    rng = np.random.default_rng(3)
    tgt = rng.random((40, 48, 3), dtype=np.float32)
    inp = np.clip(tgt + rng.normal(0, 0.02, tgt.shape), 0, 1).astype(np.float32)
    stats = pair_statistics(inp, tgt)
    chw = lambda a: torch.from_numpy(a).permute(2, 0, 1)  # noqa: E731
    same = psnr(chw(inp), chw(tgt), y_channel=True, quantize=False, luma_convention="bt601-full",
                dtype=torch.float32, max_db=100.0).item()
    assert LUMA == "bt601-full" and stats["psnr"] == same
    y = lambda a: a.astype(np.float64) @ [0.299, 0.587, 0.114]  # noqa: E731
    assert stats["psnr"] == pytest.approx(10 * math.log10(1 / np.mean((y(inp) - y(tgt)) ** 2)), abs=1e-4)
    assert pair_statistics(tgt, tgt)["psnr"] == 100.0


def test_synth_input_psnr_is_unquantised_rgb():
    from moewir.synth.build import _input_psnr
    rng = np.random.default_rng(4)
    tgt = rng.random((20, 30, 3), dtype=np.float32)
    inp = np.clip(tgt + rng.normal(0, 0.03, tgt.shape), 0, 1).astype(np.float32)
    ref = 10 * math.log10(1 / np.mean((inp.astype(np.float64) - tgt) ** 2))
    assert _input_psnr(inp, tgt) == pytest.approx(ref, rel=1e-12)
    assert math.isinf(_input_psnr(tgt, tgt))


def test_uniform_window_ssim_by_hand():
    # Constant images: mu_x = a, mu_y = b, no variance -> SSIM = (2ab + C1) / (a^2 + b^2 + C1) on 0-255.
    a = torch.full((1, 1, 9, 9), 100 / 255, dtype=torch.float64)
    b = torch.full((1, 1, 9, 9), 140 / 255, dtype=torch.float64)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 140 + c1) / (100 ** 2 + 140 ** 2 + c1)
    assert ssim(a, b, quantize=False, window="uniform", window_size=7).item() == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(a[..., :6, :6], b[..., :6, :6], window="uniform", window_size=7)
    with pytest.raises(ValueError, match="window must be"):
        ssim(a, b, window="triangle", window_size=7)


def _window(h: int, w: int, i: int, j: int, r: int) -> tuple[slice, slice]:
    return slice(max(0, i - r), i + r + 1), slice(max(0, j - r), j + r + 1)


def test_box_mean_and_min_filter_match_explicit_windows():
    """Each output pixel is the mean / minimum of its window cut at the border, by loops."""
    x = torch.rand(2, 9, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for r in (0, 1, 3, 20):
        mean, low = torch.empty_like(x), torch.empty_like(x)
        for i in range(9):
            for j in range(13):
                window = x[(slice(None), *_window(9, 13, i, j, r))]
                mean[:, i, j], low[:, i, j] = window.mean(dim=(1, 2)), window.amin(dim=(1, 2))
        torch.testing.assert_close(box_mean(x, r), mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(min_filter(x, 2 * r + 1), low, rtol=0, atol=0)
    assert box_mean(x.float(), 2).dtype == torch.float32
    with pytest.raises(ValueError, match="odd size"):
        min_filter(x, 4)


def test_median_filter_matches_numpy_on_reflected_windows():
    x = torch.rand(2, 3, 9, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for size in (1, 3, 5):
        r = size // 2
        padded = np.pad(x.numpy(), ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
        expected = np.empty_like(x.numpy())
        for i in range(9):
            for j in range(13):
                expected[..., i, j] = np.median(padded[..., i:i + size, j:j + size].reshape(2, 3, -1), axis=-1)
        torch.testing.assert_close(median_filter(x, size), torch.from_numpy(expected), rtol=0, atol=0)
    with pytest.raises(ValueError, match="odd size"):
        median_filter(x, 2)
    # a window wider than the image can reflect: the border pixels repeat instead
    strip = x[..., :2, :]
    padded = np.pad(strip.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    expected = np.stack([[np.median(padded[..., i:i + 5, j:j + 5].reshape(2, 3, -1), axis=-1)
                          for j in range(13)] for i in range(2)]).transpose(2, 3, 0, 1)
    torch.testing.assert_close(median_filter(strip, 5), torch.from_numpy(expected), rtol=0, atol=0)


def test_guided_filter_follows_he_et_al_algorithm_1():
    """Against a loop over windows: per window k, a_k = cov(I, p) / (var(I) + eps),
    b_k = mean(p) - a_k mean(I); each pixel averages the (a_k, b_k) of the windows covering it."""
    g = torch.Generator().manual_seed(1)
    guide, source = torch.rand(7, 10, dtype=torch.float64, generator=g), torch.rand(7, 10, dtype=torch.float64, generator=g)
    r, eps = 2, 1e-2
    a, b = np.zeros((7, 10)), np.zeros((7, 10))
    gi, sp = guide.numpy(), source.numpy()
    for i in range(7):
        for j in range(10):
            win = _window(7, 10, i, j, r)
            mi, mp = gi[win].mean(), sp[win].mean()
            a[i, j] = ((gi[win] * sp[win]).mean() - mi * mp) / (gi[win].var() + eps)
            b[i, j] = mp - a[i, j] * mi
    expected = np.zeros((7, 10))
    for i in range(7):
        for j in range(10):
            win = _window(7, 10, i, j, r)
            expected[i, j] = a[win].mean() * gi[i, j] + b[win].mean()
    torch.testing.assert_close(guided_filter(guide, source, r, eps), torch.from_numpy(expected), rtol=0, atol=1e-12)
    # an edge-preserving smoother: a constant stays constant, the guide filtered by itself stays itself
    torch.testing.assert_close(guided_filter(guide, torch.full_like(guide, 0.3), r, eps), torch.full_like(guide, 0.3))
    torch.testing.assert_close(guided_filter(guide, guide, r, 1e-12), guide, rtol=0, atol=1e-6)
