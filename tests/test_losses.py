"""The composite loss against hand-computed values and numpy."""
import math

import numpy as np
import pytest
import torch

from moewir.ops.filters import laplacian
from moewir.training.losses import CompositeLoss, charbonnier, fourier_l1


def test_constant_error_by_hand():
    pred, target = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)
    terms = CompositeLoss().terms(pred, target)
    assert terms["char"].item() == pytest.approx(3 * math.sqrt(0.25 + 1e-6), rel=1e-6)
    assert terms["edge"].item() == pytest.approx(3e-3, rel=1e-4)  # Laplacian of a constant is 0
    # rfft2 of a constant c on n x n: one DC coefficient c n^2; real+imag parts of n x (n/2+1) values
    assert terms["freq"].item() == pytest.approx(8 / 24 + 2 / 8 + 0.5 / 2, rel=1e-6)
    total = CompositeLoss()(pred, target).item()
    assert total == pytest.approx(terms["char"].item() + 0.05 * terms["edge"].item() + 0.01 * terms["freq"].item(),
                                  rel=1e-6)
    assert CompositeLoss(scales=1)(pred, target).item() == pytest.approx(
        math.sqrt(0.25 + 1e-6) + 0.05 * 1e-3 + 0.01 * 8 / 24, rel=1e-6)


def test_laplacian_matches_a_naive_loop():
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    out = laplacian(x)
    p = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    ref = np.zeros_like(x.numpy())
    for i in range(5):
        for j in range(6):
            ref[..., i, j] = p[..., i, j + 1] + p[..., i + 2, j + 1] + p[..., i + 1, j] + p[..., i + 1, j + 2] - 4 * p[..., i + 1, j + 1]
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)


def test_fourier_l1_matches_numpy_and_charbonnier_by_hand():
    x, y = torch.rand(2, 3, 8, 6, dtype=torch.float64), torch.rand(2, 3, 8, 6, dtype=torch.float64)
    d = np.fft.rfft2(x.numpy()) - np.fft.rfft2(y.numpy())
    assert fourier_l1(x, y).item() == pytest.approx(np.mean(np.abs(np.stack([d.real, d.imag]))), rel=1e-5)
    d = np.fft.rfft2(x.numpy(), norm="ortho") - np.fft.rfft2(y.numpy(), norm="ortho")
    assert fourier_l1(x, y, "ortho").item() == pytest.approx(np.mean(np.abs(np.stack([d.real, d.imag]))), rel=1e-5)
    a, b = torch.tensor([0.0, 0.3]), torch.tensor([0.4, 0.3])
    assert charbonnier(a, b).item() == pytest.approx((math.sqrt(0.16 + 1e-6) + 1e-3) / 2, rel=1e-6)


def test_loss_has_gradients_and_checks_shapes():
    pred = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss = CompositeLoss()(pred, torch.rand(2, 3, 16, 16))
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ in shape"):
        CompositeLoss()(pred, torch.rand(2, 3, 8, 8))
    assert CompositeLoss()(torch.rand(1, 3, 1, 1), torch.rand(1, 3, 1, 1)).isfinite()  # too small for 3 scales
