"""Whole-network behaviour: shapes, gradients, determinism, configs, registry."""
import itertools

import pytest
import torch

import moewir
from moewir.models import model_spec
from moewir.models.moewirnet import EXPERTS
from moewir.profiling import count_macs

TINY = dict(dim=12, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1, heads=(1, 1, 2, 2))


def test_registry_lists_every_network():
    assert set(moewir.list_models()) == {"dcp", "mgf", "moewirnet", "moewirnet-small", "moewirnet-tiny", "promptir",
                                         "restormer", "restormer-tiny", "restormer-tiny-matched"}


@pytest.mark.parametrize("name", ["moewirnet-tiny", "moewirnet-small", "restormer-tiny"])
def test_registered_models_restore_shape(name):
    model = moewir.create_model(name).eval()
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        assert model(x).shape == x.shape


def test_create_model_records_name_and_config():
    model = moewir.create_model("moewirnet-tiny", window_size=4)
    name, config = model_spec(model)
    assert name == "moewirnet-tiny"
    assert config["window_size"] == 4 and model.config.window_size == 4


def test_unknown_model_and_option_give_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'.*moewirnet"):
        moewir.create_model("nope")
    with pytest.raises(ValueError, match="unknown MoEWIRNetConfig option.*windowsize"):
        moewir.create_model("moewirnet-tiny", windowsize=4)
    with pytest.raises(ValueError, match="experts must be"):
        moewir.create_model("moewirnet-tiny", experts=["channel", "wavelet"])
    for name in ("moewirnet-tiny", "restormer-tiny"):  # an odd width used to crash in a LayerNorm
        with pytest.raises(ValueError, match="dim must be even.*got 21"):
            moewir.create_model(name, dim=21)


@pytest.mark.parametrize("size", [(37, 53), (1, 1), (8, 8), (5, 130)])
def test_any_size_comes_back_the_same_size(size):
    model = moewir.create_model("moewirnet-tiny", **TINY).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_batch_items_are_independent():
    model = moewir.create_model("moewirnet-tiny", **TINY).eval()
    x = torch.rand(3, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:2], model(x[1:2]), atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    model = moewir.create_model("moewirnet-tiny").train()
    x = torch.rand(2, 3, 32, 32)
    (model(x) - x.flip(-1)).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_eval_is_deterministic():
    model = moewir.create_model("moewirnet-tiny").eval()
    x = torch.rand(1, 3, 33, 47)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_constant_images_give_finite_output(value):
    model = moewir.create_model("moewirnet-tiny").eval()
    with torch.no_grad():
        assert torch.isfinite(model(torch.full((1, 3, 32, 32), value))).all()


@pytest.mark.parametrize("experts", [c for n in (1, 2, 3) for c in itertools.combinations(EXPERTS, n)],
                         ids=lambda e: "+".join(e))
def test_every_expert_subset_builds_and_runs(experts):
    model = moewir.create_model("moewirnet-tiny", experts=list(experts), **TINY).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize("enc,dec", [("soft", "hard"), ("hard", "soft"), ("none", "none"), ("soft", "soft")])
def test_routing_per_stage(enc, dec):
    model = moewir.create_model("moewirnet-tiny", encoder_routing=enc, bottleneck_routing=enc,
                                decoder_routing=dec, refinement_routing=dec, **TINY)
    modes = {m.router.mode for m in model.encoders.modules() if hasattr(m, "router")}
    modes_dec = {m.router.mode for m in model.decoders.modules() if hasattr(m, "router")}
    assert modes == {enc} and modes_dec == {dec}
    model(torch.rand(1, 3, 16, 16)).mean().backward()


def test_top1_decoder_computes_one_expert_per_module_at_eval():
    model = moewir.create_model("moewirnet-tiny", hard_mode="top1", **TINY).eval()
    calls = []
    for m in model.decoders.modules():
        if hasattr(m, "router"):
            for e in m.experts:
                e.register_forward_hook(lambda mod, *a: calls.append(mod))
    n_modules = sum(1 for m in model.decoders.modules() if hasattr(m, "router"))
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16))
    assert len(calls) == n_modules


def test_shifted_windows_alternate_between_blocks():
    model = moewir.create_model("moewirnet", num_blocks=(2, 1, 1, 1), num_refinement_blocks=1, dim=12,
                                heads=(1, 1, 1, 1))
    shifts = [blk.moe.experts[1].shift for blk in model.encoders[0]]
    assert shifts == [0, model.config.window_size // 2]


def test_paper_size_meets_the_parameter_and_mac_budget():
    model = moewir.create_model("moewirnet").eval()
    params = sum(p.numel() for p in model.parameters())
    assert params <= 19e6
    macs = count_macs(model, torch.rand(1, 3, 256, 256))
    assert macs["total"] <= 90e9
    assert macs["_fft_r2c"] > 0 and macs["topk"] > 0 and macs["bmm"] > 0


def test_restormer_matches_the_published_size():
    """Zamir et al. (2022) report 26.13M parameters and 140.99 GMACs (convolutions) at 256x256."""
    model = moewir.create_model("restormer").eval()
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(26.13, abs=0.01)
    macs = count_macs(model, torch.rand(1, 3, 256, 256))
    assert macs["convolution"] / 1e9 == pytest.approx(140.99, abs=0.05)


@pytest.mark.parametrize("name", ["moewirnet-tiny", "restormer-tiny"])
def test_zero_init_output_starts_at_identity_and_still_learns(name):
    model = moewir.create_model(name, zero_init_output=True)
    x = torch.rand(1, 3, 20, 28)
    torch.testing.assert_close(model(x), x)
    loss = (model(x) - x.flip(-1)).abs().mean()
    loss.backward()
    assert model.output.weight.grad.abs().sum() > 0  # the zero conv gets a gradient, so training moves off
    with torch.no_grad():
        model.output.weight -= 0.1 * model.output.weight.grad
    assert not torch.allclose(model(x), x)


@pytest.mark.parametrize("name", ["moewirnet-tiny", "restormer-tiny"])
def test_residual_gate_scales_each_images_residual_by_its_own_gate(name):
    torch.manual_seed(0)
    plain = moewir.create_model(name).eval()
    gated = moewir.create_model(name, residual_gate=True).eval()
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["gate.linear.bias", "gate.linear.weight"] and not unexpected
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        residual = plain(x) - x
        torch.testing.assert_close(gated(x) - x, 0.5 * residual)  # w = 0, b = 0: g = 0.5 everywhere
        gated.gate.linear.weight.normal_()
        gated.gate.linear.bias.fill_(0.3)
        pooled = []
        hook = gated.bottleneck.register_forward_hook(lambda m, a, out: pooled.append(out.mean(dim=(2, 3))))
        out = gated(x)
        hook.remove()
        g = torch.sigmoid(pooled[0] @ gated.gate.linear.weight.T + 0.3)  # (B, 1), by hand
    assert not torch.allclose(g[0], g[1])
    torch.testing.assert_close(out - x, g.reshape(2, 1, 1, 1) * residual, rtol=1e-4, atol=1e-5)
    gated.train()
    (gated(x) - x).abs().mean().backward()
    assert gated.gate.linear.weight.grad.abs().sum() > 0


def test_a_gated_network_round_trips_through_its_weights_file(tmp_path):
    from moewir.models import build_from_weights, save_weights
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny", residual_gate=True, zero_init_output=True).eval()
    with torch.no_grad():
        net.gate.linear.weight.normal_()
        net.output.weight.normal_(std=0.01)
    save_weights(tmp_path / "g.safetensors", net)
    back = build_from_weights(tmp_path / "g.safetensors").eval()
    assert back.config.residual_gate and back.gate is not None
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))


@pytest.mark.parametrize("name", ["moewirnet-tiny", "restormer-tiny"])
def test_the_dcp_prior_starts_unused_and_feeds_the_dark_channel_priors_image(name):
    from moewir.models.dcp import DCPConfig, DarkChannelPrior
    torch.manual_seed(0)
    plain = moewir.create_model(name).eval()
    with_prior = moewir.create_model(name, prior="dcp").eval()
    assert with_prior.prior_embed.weight.shape == plain.embed.weight.shape
    assert not with_prior.prior_embed.weight.any()
    missing, unexpected = with_prior.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["prior_embed.weight"] and not unexpected
    x = torch.rand(2, 3, 32, 40) * 0.6 + 0.3  # a veiled, low-contrast image
    with torch.no_grad():
        assert torch.equal(with_prior(x), plain(x))  # zero weights: the same network
        # the image's embedding moved onto the prior's: the network sees only DCP(I)
        with_prior.prior_embed.weight.copy_(with_prior.embed.weight)
        with_prior.embed.weight.zero_()
        dehazed = DarkChannelPrior(DCPConfig())(x).clamp(0, 1)
        expected = plain(dehazed) - dehazed + x  # the same features, the global residual on I
        torch.testing.assert_close(with_prior(x), expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(dehazed, x, atol=0.05)


@pytest.mark.parametrize("name", ["moewirnet-tiny", "restormer-tiny"])
def test_the_prior_mix_starts_closed_and_opens_onto_the_dark_channel_priors_image(name):
    """I_hat = I + M (P - I) + H_refine: M = 0 at the start (the network without the mix),
    M = 1 with the network's residual at zero gives P = DCP(I) itself, M = 0.5 half of it."""
    from moewir.models.dcp import DCPConfig, DarkChannelPrior
    torch.manual_seed(0)
    plain = moewir.create_model(name, prior="dcp").eval()
    mixed = moewir.create_model(name, prior="dcp_mix").eval()
    missing, unexpected = mixed.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["prior_mix.conv.bias", "prior_mix.conv.weight"] and not unexpected
    x = torch.rand(2, 3, 32, 40) * 0.6 + 0.3
    dehazed = DarkChannelPrior(DCPConfig())(x).clamp(0, 1)
    with torch.no_grad():
        assert torch.equal(mixed(x), plain(x))
        mixed.output.weight.zero_()  # H_refine = 0
        for m, want in ((1.0, dehazed), (0.5, (x + dehazed) / 2)):
            mixed.prior_mix.conv.bias.fill_(m)
            torch.testing.assert_close(mixed(x), want, rtol=0, atol=1e-6)
    assert not torch.allclose(dehazed, x, atol=0.05)
    # closed, it still learns: with the output I and the target P, L = mean((I_hat - P)^2) gives
    # dL/dbias = sum over pixels of sum over channels of 2 (I - P) (P - I) / n = -2 mean((P - I)^2)
    mixed.prior_mix.conv.bias.data.zero_()
    ((mixed(x) - dehazed) ** 2).mean().backward()
    torch.testing.assert_close(mixed.prior_mix.conv.bias.grad, -2 * ((dehazed - x) ** 2).mean().reshape(1),
                               rtol=1e-4, atol=1e-8)


def test_an_unknown_prior_is_a_clear_error():
    with pytest.raises(ValueError, match="prior must be one of none, dcp, dcp_mix, got 'fog'"):
        moewir.create_model("moewirnet-tiny", prior="fog")


def test_weights_without_a_prior_load_into_a_network_with_one(tmp_path):
    from moewir.models import build_from_weights, save_weights
    torch.manual_seed(0)
    net = moewir.create_model("restormer-tiny").eval()
    save_weights(tmp_path / "plain.safetensors", net)
    widened = build_from_weights(tmp_path / "plain.safetensors", overrides={"prior": "dcp"}).eval()
    assert widened.config.prior == "dcp" and not widened.prior_embed.weight.any()
    x = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        assert torch.equal(widened(x), net(x))
        widened.prior_embed.weight.normal_(std=0.1)
    save_weights(tmp_path / "prior.safetensors", widened)
    back = build_from_weights(tmp_path / "prior.safetensors").eval()
    with torch.no_grad():
        assert back.config.prior == "dcp" and torch.equal(back(x), widened(x))
    with pytest.raises(ValueError, match="prior.safetensors: weights do not fit the model"):
        build_from_weights(tmp_path / "prior.safetensors", overrides={"prior": "none"})
    mixed = build_from_weights(tmp_path / "prior.safetensors", overrides={"prior": "dcp_mix"}).eval()
    with torch.no_grad():  # a file with the embedded prior loads with the mix closed
        assert not mixed.prior_mix.conv.weight.any() and torch.equal(mixed(x), widened(x))


def test_a_tiled_restore_gives_every_tile_the_whole_photos_prior():
    """The restorer computes DCP(I) once on the whole photo (one airlight) and crops it with each
    tile; a tile that computed its own would see another airlight (a bright corner here)."""
    from moewir.inference import Restorer
    from moewir.models.dcp import DCPConfig, DarkChannelPrior
    from moewir.ops.tiling import tiled_forward

    torch.manual_seed(0)
    network = moewir.create_model("restormer-tiny", prior="dcp").eval()
    with torch.no_grad():
        network.prior_embed.weight.normal_(0, 0.2)
    image = 0.3 + 0.4 * torch.rand(1, 3, 96, 120)
    image[..., :24, :24] = 0.98  # the photo's haziest spot: only the top-left tiles see it
    whole = DarkChannelPrior(DCPConfig())(image).clamp(0, 1)
    with torch.no_grad():
        expected = tiled_forward(lambda both: network(both[:, :3], prior=both[:, 3:]),
                                 torch.cat([image, whole], dim=1), tile=64, overlap=16)
        per_tile = tiled_forward(network, image, tile=64, overlap=16)
        torch.testing.assert_close(network(image, prior=whole), network(image))  # the default prior
    got = Restorer(network, device="cpu", tile=64, tile_overlap=16).restore_tensor(image)
    torch.testing.assert_close(got, expected.clamp(0, 1))
    assert (got - per_tile.clamp(0, 1)).abs().max() > 1e-3  # per-tile priors would differ
