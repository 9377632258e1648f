"""Tiled inference against untiled inference."""
import pytest
import torch
from torch import nn

from moewir.ops.tiling import blend_window, tile_starts, tiled_forward
from moewir.models import create_model


def test_starts_cover_the_image_with_the_overlap():
    for length, tile, overlap, align in [(1000, 256, 32, 8), (257, 256, 32, 8), (513, 128, 16, 1), (100, 256, 8, 8)]:
        starts = tile_starts(length, tile, overlap, align)
        assert starts[0] == 0 and min(starts[-1] + tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
        assert all(s % align == 0 for s in starts[:-1])


def test_blend_weights_ignore_the_cut_and_stay_positive():
    w = blend_window(64, 100, 64, 1000, 32)
    assert torch.all(w[:8] == 0) and torch.all(w[-8:] == 0) and torch.all(w[24:40] == 1)
    assert torch.all(blend_window(64, 0, 64, 64, 32) == 1)


def test_local_network_tiled_equals_untiled_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 8, 8 if i < 3 else 3, 3, padding=1) for i in range(4)]).eval()
    image = torch.rand(2, 3, 150, 203)  # receptive field radius 4 <= overlap / 4
    full = net(image)
    tiled = tiled_forward(net, image, tile=48, overlap=16, align=8)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=1e-5)


def test_moewirnet_tiled_is_close_to_untiled():
    torch.manual_seed(0)
    model = create_model("moewirnet-tiny").eval()
    y, x = torch.meshgrid(torch.linspace(0, 1, 160), torch.linspace(0, 1, 224), indexing="ij")
    image = torch.stack([0.5 + 0.3 * torch.sin(9 * x), 0.5 + 0.3 * torch.cos(7 * y), 0.4 + 0.3 * x * y])[None]
    with torch.no_grad():
        full = model(image)
    tiled = tiled_forward(model, image, tile=128, overlap=32)
    mse = torch.mean((tiled - full) ** 2).item()
    psnr = 10 * torch.log10(torch.tensor(1.0 / mse)).item()
    # channel attention is global, so tiles differ a little: 35.0 dB for this untrained model
    assert tiled.shape == full.shape and psnr > 30, psnr
    assert torch.equal(tiled_forward(model, image, tile=None), full)


def test_bad_tiles():
    with pytest.raises(ValueError, match="overlap"):
        tiled_forward(nn.Identity(), torch.rand(1, 3, 64, 64), tile=32, overlap=16)
