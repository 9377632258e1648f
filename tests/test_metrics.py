"""PSNR / SSIM cross-checked against scikit-image and hand-computed values."""
import math

import numpy as np
import pytest
import torch

from moewir.metrics import psnr, ssim
from moewir.ops.color import luma

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is the independent reference")


def _pair(seed=0, h=40, w=52):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    noisy = np.clip(clean.astype(int) + rng.integers(-30, 31, (h, w, 3)), 0, 255).astype(np.uint8)
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1).double() / 255  # noqa: E731
    return clean, noisy, to_t(clean), to_t(noisy)


def _y255(a):
    a = a.astype(np.float64) / 255
    return 16 + 65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_matches_skimage(crop):
    clean, noisy, tc, tn = _pair()
    c = slice(crop, -crop or None)
    ref = skimage_metrics.peak_signal_noise_ratio(clean[c, c], noisy[c, c], data_range=255)
    assert psnr(tn, tc, crop_border=crop).item() == pytest.approx(ref, rel=1e-10)
    ref_y = skimage_metrics.peak_signal_noise_ratio(_y255(clean)[c, c], _y255(noisy)[c, c], data_range=255)
    assert psnr(tn, tc, crop_border=crop, y_channel=True).item() == pytest.approx(ref_y, rel=1e-10)


@pytest.mark.parametrize("crop", [0, 3])
def test_ssim_matches_skimage(crop):
    clean, noisy, tc, tn = _pair(1)
    c = slice(crop, -crop or None)
    kw = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    ref = skimage_metrics.structural_similarity(clean[c, c].astype(float), noisy[c, c].astype(float),
                                                channel_axis=2, **kw)
    assert ssim(tn, tc, crop_border=crop).item() == pytest.approx(ref, abs=1e-6)
    ref_y = skimage_metrics.structural_similarity(_y255(clean)[c, c], _y255(noisy)[c, c], **kw)
    assert ssim(tn, tc, crop_border=crop, y_channel=True).item() == pytest.approx(ref_y, abs=1e-6)


def test_by_hand_batches_and_errors():
    a = torch.zeros(2, 3, 16, 16)
    b = a.clone()
    b[0] += 10 / 255  # MSE 100 -> 10 log10(255^2 / 100)
    out = psnr(b, a)
    assert out.shape == (2,) and out[0].item() == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert math.isinf(out[1].item()) and ssim(a, a)[0].item() == pytest.approx(1.0)
    assert luma(torch.ones(3, 2, 2), "bt601-studio").flatten()[0].item() == pytest.approx(235 / 255)
    # quantize=True rounds like saved 8-bit images: an error of 0.4 level vanishes
    assert math.isinf(psnr(a + 0.4 / 255, a).min().item()) and psnr(a + 0.4 / 255, a, quantize=False)[0] < 60
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(a, a[..., :8])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[..., :10, :10], a[..., :10, :10])
