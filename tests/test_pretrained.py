"""The weights shipped in the package: they load with no argument and do restore."""
from __future__ import annotations

import numpy as np
import pytest

import moewir
from moewir.cli.restore import DEFAULT_MODEL
from moewir.data import read_image
from moewir.inference import shipped_weights
from moewir.metrics import psnr
from moewir.synth import synthesize
from moewir.synth.build import default_photos


def test_default_weights_are_shipped_and_described():
    path = shipped_weights(DEFAULT_MODEL)
    assert path is not None and path.stat().st_size < 10e6
    restorer = moewir.load(DEFAULT_MODEL, device="cpu")
    assert restorer.name == DEFAULT_MODEL and restorer.network.config.zero_init_output


@pytest.mark.parametrize("task", ["haze", "rain", "snow"])
def test_default_weights_improve_a_degraded_photo(task):
    """A new degradation (seed unseen in training) of an embedded photo, 256 px crop: the shipped
    network must beat the unrestored input on Y-PSNR (it was trained on these photos' scenes,
    with other random weather; held-out numbers are in docs/model_card.md)."""
    import torch

    clean = read_image(default_photos()[1])[:256, :256]
    degraded, clean, _ = synthesize(clean, task, 12345, 0.6)
    restored = moewir.load(DEFAULT_MODEL, device="cpu", tile=None).restore(degraded.astype(np.float32))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)  # noqa: E731
    before = psnr(to_t(degraded), to_t(clean), y_channel=True).item()
    after = psnr(to_t(restored), to_t(clean), y_channel=True).item()
    assert after > before + 0.5, (before, after)


def test_weights_written_before_block_form_restore_as_they_did():
    """The shipped file's metadata predates ``block_form``: it must rebuild the literal block and
    give the output the code before the option computed (pinned from that code, commit 33353bd)."""
    import torch

    from moewir.inference.restorer import build_from_weights
    from moewir.training.checkpoint import read_metadata

    path = shipped_weights(DEFAULT_MODEL)
    assert "block_form" not in read_metadata(path)["model_config"]
    net = build_from_weights(path).eval()
    assert net.config.block_form == "literal"
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x)
    assert float(y.double().sum()) == pytest.approx(2598.5185562111437, abs=1e-3)
    assert float((y - x).abs().double().mean()) == pytest.approx(0.04903553200137038, abs=1e-6)
    assert [float(v) for v in y[0, :, 7, 11]] == pytest.approx([0.708044, 0.708061, 0.182615], abs=2e-6)
