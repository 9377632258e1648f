"""The median-guided filter ``mgf``: hand-computed cases, a streaked scene, the registry."""
import numpy as np
import pytest
import torch

import moewir
from moewir.cli.main import main
from moewir.data import read_image, write_image
from moewir.metrics import psnr
from moewir.models import create_model, needs_weights
from moewir.models.mgf import MGFConfig


def test_a_flake_on_a_flat_wall_spreads_to_the_box_mean_of_the_box_mean():
    """Median of a lone bright pixel on a constant image: the constant. A constant guide has no
    variance, so a = 0 and b = mean(I): the output is the box mean of the box mean of I; at the
    flake, with radius 1, c + d / 9 (each of the 9 windows around it averages 9 pixels, one the
    flake), and c where no window reaches it."""
    c, d = 0.3, 0.63
    image = torch.full((1, 3, 15, 15), c, dtype=torch.float64)
    image[..., 7, 7] += d
    out = create_model("mgf", window=3, radius=1, eps=1e-3)(image)
    torch.testing.assert_close(out[..., 7, 7], torch.full((1, 3), c + d / 9, dtype=torch.float64))
    torch.testing.assert_close(out[..., 0, 0], torch.full((1, 3), c, dtype=torch.float64))
    assert out.sum().item() == pytest.approx(image.sum().item())  # nothing lost, only spread


def test_keeps_an_edge_that_the_median_keeps():
    """A clean vertical step is its own median, so the guide equals the source and a = var / (var
    + eps): with eps small against the step's variance, the output is the step."""
    image = torch.zeros(1, 3, 12, 12)
    image[..., 6:] = 1.0
    out = create_model("mgf", window=5, radius=2, eps=1e-6)(image)
    torch.testing.assert_close(out, image, atol=1e-4, rtol=0)


def test_removes_thin_bright_streaks_from_a_smooth_scene():
    """One-pixel streaks every 6 columns over a smooth gradient: the median drops them, and the
    guided filter keeps the gradient, so the output is far closer to the scene than the input."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    scene = (0.2 + 0.3 * xx + 0.2 * yy).expand(1, 3, 48, 48).contiguous()
    rainy = scene.clone()
    rainy[..., ::6] = (rainy[..., ::6] + 0.4).clamp(max=1)
    out = moewir.load("mgf", device="cpu").restore_tensor(rainy)
    before, after = psnr(rainy, scene).item(), psnr(out, scene).item()
    assert after > before + 6, (before, after)  # 15.8 -> 23.4 dB


def test_learns_nothing_and_checks_its_options():
    assert not needs_weights("mgf")
    net = create_model("mgf", pretrained=True)
    assert sum(1 for _ in net.parameters()) == 0 and net.config == MGFConfig()
    with pytest.raises(ValueError, match="odd number"):
        create_model("mgf", window=4)
    with pytest.raises(ValueError, match="eps"):
        create_model("mgf", eps=0.0)


def test_restore_and_eval_commands_take_it(tmp_path, capsys):
    rng = np.random.default_rng(0)
    scene = np.clip(0.3 + 0.05 * rng.standard_normal((40, 56, 3)), 0, 1).astype(np.float32)
    rainy = scene.copy()
    rainy[:, ::5] = np.clip(rainy[:, ::5] + 0.5, 0, 1)
    for split, image in (("input", rainy), ("target", scene)):
        write_image(tmp_path / "data" / "test" / "RAIN" / split / "a.png", image)
    source = tmp_path / "data" / "test" / "RAIN" / "input" / "a.png"
    assert main(["restore", str(source), "-o", str(tmp_path / "out"), "--model", "mgf", "--device", "cpu",
                 "--no-progress"]) == 0
    expected = moewir.load("mgf", device="cpu").restore(read_image(source))
    assert np.abs(read_image(tmp_path / "out" / "a.png") - expected).max() <= 0.5 / 255 + 1e-6
    capsys.readouterr()
    assert main(["eval", "--weights", "mgf", "--input-baseline", "--data", str(tmp_path / "data"), "--no-progress"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| rain |")]
    scores = {r.split("|")[2].strip(): float(r.split("|")[4].strip(" *")) for r in rows}
    assert scores["mgf"] > scores["input"] + 3, scores


def test_tiles_and_batches_give_the_whole_images_result():
    """It is local: with the default options, 64-px tiles (overlap 24) of a batch of two photos
    give what filtering each whole photo gives."""
    images = torch.rand(2, 3, 150, 170, generator=torch.Generator().manual_seed(3))
    whole = torch.cat([create_model("mgf")(image[None]) for image in images]).clamp(0, 1)
    restorer = moewir.load("mgf", device="cpu", tile=64, tile_overlap=24)
    assert restorer.tile_for(tuple(images.shape)) is not None
    torch.testing.assert_close(restorer.restore_tensor(images), whole, atol=1e-6, rtol=0)
