"""The dark channel prior restorer (``dcp``): He et al.'s equations on a hand-built hazy image
whose answer is known, its airlight rule, its whole-image restore, and its place in the
commands (restore, eval, train refuses it)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import moewir
from moewir.cli.main import main
from moewir.data import read_image, write_image
from moewir.metrics import psnr
from moewir.models import create_model, needs_weights
from moewir.models.dcp import DCPConfig, dark_channel, estimate_airlight
from moewir.synth import default_photos
from moewir.synth.weather import haze
from moewir.training.trainer import build_model_and_ema

AIRLIGHT = torch.tensor([0.9, 0.85, 0.8], dtype=torch.float64)


def _hazy_scene(t: float = 0.6):
    """``J`` whose red channel is 0 everywhere (so its dark channel is 0) with a 6 x 6 "sky" of
    the airlight colour in the top-left corner, seen through transmission ``t``."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(1, 3, 24, 32, dtype=torch.float64, generator=g) * 0.8 + 0.1
    clean[:, 0] = 0.0
    clean[0, :, :6, :6] = AIRLIGHT[:, None, None]
    return clean, clean * t + AIRLIGHT[:, None, None] * (1 - t)


def test_recovers_the_scene_exactly_where_the_prior_holds():
    """With omega 1 and no refinement: A is read in the sky (the brightest dark channel),
    t~ = 1 - dark(I / A) = 1 - (1 - t) = t off the sky, so J = (I - A) / t + A is the scene;
    in the sky I = A, so the output is A (the scene there) whatever t~ is."""
    clean, hazy = _hazy_scene(t=0.6)
    net = create_model("dcp", window=3, omega=1.0, guided_radius=0, top_fraction=0.01)
    out = net(hazy)
    far = torch.ones(24, 32, dtype=torch.bool)
    far[:8, :8] = False  # pixels whose 3 x 3 window touches the sky see t~ = 0, not t
    torch.testing.assert_close(out[..., far], clean[..., far], rtol=0, atol=1e-12)
    torch.testing.assert_close(out[..., 1:5, 1:5], clean[..., 1:5, 1:5], rtol=0, atol=1e-12)
    a = estimate_airlight(hazy, dark_channel(hazy, 3), 0.01)
    torch.testing.assert_close(a, AIRLIGHT[None], rtol=0, atol=1e-12)
    # omega < 1 keeps some haze: t~ = 1 - 0.95 (1 - t), as Eq. 12 says
    kept = create_model("dcp", window=3, omega=0.95, guided_radius=0, top_fraction=0.01)(hazy)
    t_kept = 1 - 0.95 * 0.4
    torch.testing.assert_close(kept[..., far], ((hazy - AIRLIGHT[:, None, None]) / t_kept
                                                + AIRLIGHT[:, None, None])[..., far], rtol=0, atol=1e-12)


def test_airlight_is_the_brightest_pixel_among_the_haziest():
    """Not the brightest pixel of the image (a white object), nor the highest dark channel alone."""
    image = torch.zeros(1, 3, 10, 10)
    dark = torch.zeros(1, 10, 10)
    image[0, :, 0, 0] = 1.0                                # white, but dark channel 0: not a candidate
    dark[0, 5, 5], image[0, :, 5, 5] = 0.9, torch.tensor([0.6, 0.6, 0.6])   # the highest dark channel
    dark[0, 7, 2], image[0, :, 7, 2] = 0.8, torch.tensor([0.9, 0.8, 0.7])   # second, but brighter
    torch.testing.assert_close(estimate_airlight(image, dark, 0.02), torch.tensor([[0.9, 0.8, 0.7]]))
    torch.testing.assert_close(estimate_airlight(image, dark, 0.01), torch.tensor([[0.6, 0.6, 0.6]]))


def test_dehazes_an_embedded_photo_far_above_the_input():
    """The default (guided filter, radius 60) on ``moewir synth``'s haze of an embedded photo."""
    photo = read_image(default_photos()[0])[::2, ::2]
    hazy, _ = haze(photo, np.random.default_rng(0), 0.5, {})
    restorer = moewir.load("dcp", device="cpu")
    out = restorer.restore(hazy.astype(np.float32))

    def chw(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
    before, after = psnr(chw(hazy), chw(photo)).item(), psnr(chw(out), chw(photo)).item()
    assert after > before + 4, (before, after)


def test_restores_whole_images_whatever_the_tile():
    """The airlight is one colour per photo: tiles would each find their own, so none are used."""
    _, hazy = _hazy_scene()
    image = hazy.float().repeat(1, 1, 4, 4)  # 96 x 128
    whole = create_model("dcp")(image).clamp(0, 1)
    restorer = moewir.load("dcp", device="cpu", tile=32, tile_overlap=8)
    assert restorer.whole_image and restorer.tile_for(tuple(image.shape)) is None
    torch.testing.assert_close(restorer.restore_tensor(image), whole)


def test_learns_nothing_so_it_is_ready_and_not_trainable():
    assert not needs_weights("dcp") and needs_weights("moewirnet-tiny")
    net = create_model("dcp", pretrained=True)
    assert sum(1 for _ in net.parameters()) == 0 and net.config == DCPConfig()
    with pytest.raises(ValueError, match="learns nothing.*nothing to train"):
        build_model_and_ema({"name": "dcp"}, 0.0, torch.device("cpu"))
    assert moewir.profile(net, 32, runs=1, warmup=0).params == 0  # profiled like any model
    with pytest.raises(ValueError, match="odd number"):
        create_model("dcp", window=4)
    with pytest.raises(ValueError, match="omega"):
        create_model("dcp", omega=0.0)


def test_restore_and_eval_commands_take_it(tmp_path, capsys):
    photo = read_image(default_photos()[1])[::4, ::4]
    hazy, _ = haze(photo, np.random.default_rng(1), 0.6, {})
    for split, image in (("input", hazy), ("target", photo)):
        write_image(tmp_path / "data" / "test" / "HAZE" / split / "a.png", image)
    assert main(["restore", str(tmp_path / "data" / "test" / "HAZE" / "input" / "a.png"), "-o", str(tmp_path / "out"),
                 "--model", "dcp", "--device", "cpu", "--no-progress"]) == 0
    assert "dcp on cpu, whole images" in capsys.readouterr().out
    expected = moewir.load("dcp", device="cpu").restore(read_image(tmp_path / "data" / "test" / "HAZE" / "input" / "a.png"))
    assert np.abs(read_image(tmp_path / "out" / "a.png") - expected).max() <= 0.5 / 255 + 1e-6
    assert main(["eval", "--weights", "dcp", "--input-baseline", "--data", str(tmp_path / "data"),
                 "--no-progress"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| haze |")]
    scores = {r.split("|")[2].strip(): float(r.split("|")[4].strip(" *")) for r in rows}
    assert scores["dcp"] > scores["input"] + 3, scores
