"""Tiled inference against untiled inference."""
import pytest
import torch
from torch import nn

from moewir.ops.tiling import TilePlan, blend_weights, forward_planned, plan_tiles, tile_starts, tiled_forward
from moewir.models import create_model


# Hand-computed (tile 512, overlap 32, align 8 unless given): n windows of size s cover L when
# n * s - (n - 1) * overlap >= L; n is the smallest count with n * 512 - (n - 1) * 32 >= L, s the
# smallest multiple of 8 >= (L + (n - 1) * 32) / n for which the evenly spread starts, rounded
# to multiples of 8, leave every overlap >= 32.
HAND_PLANS = [
    # L, tile, overlap, align, size, starts
    (1024, 512, 32, 8, 368, (0, 328, 656)),  # 2 x 528 needed > 512 -> 3; 1088 / 3 = 362.7 -> 368; 656 / 2 = 328
    (513, 512, 32, 8, 280, (0, 233)),  # 545 / 2 = 272.5 -> 280; last start 513 - 280
    (520, 512, 32, 8, 280, (0, 240)),  # just above the tile: 552 / 2 = 276 -> 280
    (100, 512, 32, 8, 100, (0,)),  # shorter than a tile: one window, the image
    (512, 512, 32, 8, 512, (0,)),
    (521, 512, 32, 8, 280, (0, 241)),  # prime: 553 / 2 = 276.5 -> 280
    (1009, 512, 32, 8, 360, (0, 328, 649)),  # prime: 1073 / 3 = 357.7 -> 360; 649 / 2 = 324.5 -> 328; gaps 328, 321 <= 328
    (2053, 512, 32, 8, 440, (0, 400, 808, 1208, 1613)),  # prime: 5 windows, 2181 / 5 = 436.2 -> 440; 1613 / 4 steps
    (1080, 512, 32, 8, 384, (0, 352, 696)),  # 1144 / 3 = 381.3 -> 384; 696 / 2 = 348 -> 352 (round half up)
    (1920, 512, 32, 8, 504, (0, 472, 944, 1416)),  # 2016 / 4 = 504; stride 472 = 504 - 32 exactly
    (257, 256, 32, 8, 152, (0, 105)),  # 289 / 2 = 144.5 -> 152
    (17, 16, 4, 1, 11, (0, 6)),  # align 1: 21 / 2 = 10.5 -> 11
]


@pytest.mark.parametrize("length, tile, overlap, align, size, starts", HAND_PLANS)
def test_plan_matches_hand_computed_plans(length, tile, overlap, align, size, starts):
    plan = plan_tiles(length, tile, overlap, align)
    assert (plan.size, plan.starts) == (size, starts)
    assert tile_starts(length, tile, overlap, align) == list(starts)


@pytest.mark.parametrize("length, tile, overlap, align", [
    (1000, 256, 32, 8), (257, 256, 32, 8), (513, 128, 16, 1), (100, 256, 8, 8), (3840, 512, 32, 8),
    (2160, 512, 32, 8), (997, 97, 24, 8), (150, 48, 16, 8), (203, 48, 16, 8), (20, 16, 7, 8), (4099, 512, 0, 8)])
def test_plan_covers_with_the_overlap_in_the_fewest_smallest_windows(length, tile, overlap, align):
    plan = plan_tiles(length, tile, overlap, align)
    n, s, starts = len(plan.starts), plan.size, plan.starts
    assert starts[0] == 0 and starts[-1] + s == length and s <= max(tile, 1) or length <= tile
    assert all(b - a <= s - overlap for a, b in zip(starts, starts[1:]))
    if length > tile:
        assert all(x % align == 0 for x in starts[:-1]) and s % align == 0
        # fewer windows of at most `tile` cannot cover the length with the overlap
        assert (n - 1) * tile - (n - 2) * overlap < length
        # evenly spread: gaps differ by at most one alignment step (plus the flush last window)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        assert max(gaps) - min(gaps) <= 2 * align
        # the window is the smallest aligned one of this count, or one step above it (when rounding
        # the starts to the alignment would otherwise leave a gap too wide)
        bound = -(-(length + (n - 1) * overlap) // n)
        assert bound <= s <= -(-bound // align) * align + align


def _summed(plan: TilePlan, overlap: int) -> torch.Tensor:
    total = torch.zeros(plan.length)
    for start, weight in zip(plan.starts, blend_weights(plan, overlap)):
        total[start:start + plan.size] += weight
    return total


@pytest.mark.parametrize("length, tile, overlap", [(1024, 512, 32), (1009, 512, 32), (2053, 512, 32),
                                                   (150, 48, 16), (203, 48, 16), (999, 100, 30), (300, 64, 0)])
def test_blend_weights_sum_to_one_and_ignore_the_cuts(length, tile, overlap):
    plan = plan_tiles(length, tile, overlap, 8)
    weights = blend_weights(plan, overlap)
    torch.testing.assert_close(_summed(plan, overlap), torch.ones(length), atol=1e-6, rtol=0)
    quarter = overlap // 4
    for k, (start, weight) in enumerate(zip(plan.starts, weights)):
        assert torch.all(weight >= 0) and torch.all(weight <= 1)
        if k > 0:  # pixels within a quarter overlap of a cut never count
            assert torch.all(weight[:quarter] == 0)
        if k < len(plan.starts) - 1:
            assert torch.all(weight[plan.size - quarter:] == 0)
    # away from every overlap, and at the image border, the weight is 1
    shared = torch.zeros(length, dtype=torch.bool)
    for a, b in zip(plan.starts, plan.starts[1:]):
        shared[b:a + plan.size] = True
    for start, weight in zip(plan.starts, weights):
        alone = ~shared[start:start + plan.size]
        assert torch.all(weight[alone] == 1)
    assert weights[0][0] == 1 and weights[-1][-1] == 1


def test_blend_weights_of_the_old_fixed_stride_plan_sum_to_one():
    plan = TilePlan(1024, 512, (0, 480, 512))  # overlaps of 32 and 480
    torch.testing.assert_close(_summed(plan, 32), torch.ones(1024), atol=1e-6, rtol=0)


def test_local_network_tiled_equals_untiled_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 8, 8 if i < 3 else 3, 3, padding=1) for i in range(4)]).eval()
    image = torch.rand(2, 3, 150, 203)  # receptive field radius 4 <= overlap / 4
    full = net(image)
    tiled = tiled_forward(net, image, tile=48, overlap=16, align=8)
    torch.testing.assert_close(tiled, full, atol=1e-5, rtol=1e-5)
    # the even plan: 150 -> 5 rows of 48, 203 -> 6 columns of 48 (hand count: 5 * 48 - 4 * 16 = 176 >= 150)
    assert len(plan_tiles(150, 48, 16, 8).starts) == 5 and len(plan_tiles(203, 48, 16, 8).starts) == 6
    for tile, overlap in [(64, 16), (96, 20), (40, 16)]:  # receptive field 4 <= overlap / 4
        torch.testing.assert_close(tiled_forward(net, image, tile=tile, overlap=overlap, align=8), full,
                                   atol=1e-5, rtol=1e-5)
    # and the old fixed-stride plan, through the same blend
    old = forward_planned(net, image, TilePlan(150, 48, (0, 32, 64, 96, 102)),
                          TilePlan(203, 48, (0, 32, 64, 96, 128, 155)), 16)
    torch.testing.assert_close(old, full, atol=1e-5, rtol=1e-5)


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
