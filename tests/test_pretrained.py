"""The weights shipped in the package: they load with no argument and do restore."""
from __future__ import annotations

import numpy as np
import pytest

import moewir
from moewir.data import read_image
from moewir.models import DEFAULT_MODEL, shipped_weights
from moewir.metrics import psnr
from moewir.synth import synthesize
from moewir.synth.build import default_photos


SHIPPED = ["restormer-tiny-matched", "moewirnet-tiny"]


@pytest.mark.parametrize("name", SHIPPED)
def test_weights_are_shipped_and_described(name):
    path = shipped_weights(name)
    assert path is not None and path.stat().st_size < 10e6
    restorer = moewir.load(name, device="cpu")
    assert restorer.name == name and restorer.network.config.zero_init_output
    assert DEFAULT_MODEL in SHIPPED  # the commands' default has weights to run


@pytest.mark.parametrize("task", ["haze", "rain", "snow"])
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_improve_a_degraded_photo(name, task):
    """A new degradation (seed unseen in training) of an embedded photo, 256 px crop: each shipped
    network must beat the unrestored input on Y-PSNR (it was trained on these photos' scenes,
    with other random weather; held-out numbers are in docs/model_card.md)."""
    import torch

    clean = read_image(default_photos()[1])[:256, :256]
    degraded, clean, _ = synthesize(clean, task, 12345, 0.6)
    restored = moewir.load(name, device="cpu", tile=None).restore(degraded.astype(np.float32))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)  # noqa: E731
    before = psnr(to_t(degraded), to_t(clean), y_channel=True).item()
    after = psnr(to_t(restored), to_t(clean), y_channel=True).item()
    assert after > before + 0.5, (before, after)


def test_weights_written_before_block_form_restore_as_they_did(tmp_path):
    """A file whose metadata predates ``block_form`` (the v1 shipped weights are one) must rebuild
    the literal block and give the output the code before the option computed. The weights are a
    fixed fill (sorted keys, one generator), written with the metadata of that time; the numbers
    were pinned by the same fill and input run on the code of commit 33353bd."""
    import json

    import torch
    from safetensors.torch import save_file

    from moewir.models import build_from_weights, model_spec

    net = moewir.create_model("moewirnet-tiny", zero_init_output=True, block_form="literal")
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for key, value in sorted(net.state_dict().items()):
        norm_scale = key.endswith(("norm1.weight", "norm2.weight"))
        tensors[key] = (0.03 * torch.randn(value.shape, generator=generator, dtype=torch.float64)).float() + norm_scale
    config = {k: v for k, v in model_spec(net)[1].items() if k not in ("block_form", "residual_gate")}
    path = tmp_path / "v1.safetensors"
    save_file(tensors, str(path), metadata={"format": "moewir", "model_name": "moewirnet-tiny",
                                            "model_config": json.dumps(config)})
    legacy = build_from_weights(path).eval()
    assert legacy.config.block_form == "literal" and not legacy.config.residual_gate
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = legacy(x)
    assert float(y.double().sum()) == pytest.approx(2781.905732806772, abs=1e-3)
    assert float((y - x).abs().double().mean()) == pytest.approx(0.06809111208163408, abs=1e-6)
    assert [float(v) for v in y[0, :, 7, 11]] == pytest.approx([0.684569, 0.803442, 0.245758], abs=2e-6)


def test_create_model_pretrained_is_the_shipped_network():
    """timm's ``create_model(name, pretrained=True)``: the shipped weights, their recorded config
    (the prenorm block, the identity start) kept under overrides that leave the shapes alone."""
    import torch

    from moewir.models import load_weights, model_spec

    net = moewir.create_model("moewirnet-tiny", pretrained=True).eval()
    reference = moewir.create_model("moewirnet-tiny", block_form="prenorm", zero_init_output=True).eval()
    load_weights(shipped_weights("moewirnet-tiny"), reference)  # by hand: the config the file records
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))
    wider = moewir.create_model("moewirnet-tiny", pretrained=True, window_size=4)
    assert wider.config.window_size == 4 and wider.config.block_form == "prenorm"
    assert model_spec(wider) == ("moewirnet-tiny", {**model_spec(net)[1], "window_size": 4})
    with pytest.raises(ValueError, match="weights do not fit the model"):
        moewir.create_model("moewirnet-tiny", pretrained=True, dim=12)
    matched = moewir.create_model("restormer-tiny-matched", pretrained=True).eval()
    by_hand = moewir.create_model("restormer-tiny-matched", zero_init_output=True).eval()
    load_weights(shipped_weights("restormer-tiny-matched"), by_hand)
    with torch.no_grad():
        assert torch.equal(matched(x), by_hand(x))
    with pytest.raises(ValueError, match="no weights are shipped for 'restormer'"):
        moewir.create_model("restormer", pretrained=True)
    assert model_spec(torch.nn.Conv2d(3, 3, 1)) == ("Conv2d", {})


