"""The fast forwards (issue 16) compute what the straightforward ones did.

Every changed module is run with its current forward and with the reference copy of the
forward it replaced (tests/fast_paths_reference.py), on the same parameters and input, and the
outputs and the gradients (with respect to the input and to every parameter) must agree to
float tolerance: float64 (tight) and float32, odd sizes, batches, shifted and border windows,
every routing mode in training and in eval.
"""
from __future__ import annotations

import pytest
import torch

import moewir
from fast_paths_reference import reference_forwards
from moewir.models.experts import ChannelExpert, SpatialExpert
from moewir.models.moewirnet import MoEAttention, MoEBlock, MoEWIRNetConfig

TOL = {torch.float64: dict(rtol=1e-9, atol=1e-10), torch.float32: dict(rtol=2e-4, atol=2e-5)}


def _run(module, x, upstream):
    x = x.detach().requires_grad_()
    params = [p for p in module.parameters()]
    out = module(x)
    grads = torch.autograd.grad(out, [x, *params], upstream, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, [x, *params])]
    return out.detach(), grads


def assert_same_as_reference(module, x, dtype=torch.float64, train=True):
    module = module.to(dtype).train(train)
    x = x.to(dtype)
    with torch.no_grad():
        upstream = torch.randn_like(module(x))
    out, grads = _run(module, x, upstream)
    with reference_forwards():
        ref_out, ref_grads = _run(module, x, upstream)
    torch.testing.assert_close(out, ref_out, **TOL[dtype])
    names = ["input"] + [n for n, _ in module.named_parameters()]
    for name, g, r in zip(names, grads, ref_grads):
        scale = r.abs().max().clamp_min(1.0)  # gradients summed over many pixels: relative tolerance
        torch.testing.assert_close(g / scale, r / scale, **TOL[dtype], msg=lambda m: f"{name}: {m}")


def _randomise(module):
    """Random values for every parameter (ones/zeros initialisations would hide mistakes)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module


DTYPES = [torch.float64, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads", [1, 3])
def test_channel_expert(dtype, heads):
    assert_same_as_reference(_randomise(ChannelExpert(12, heads, bias=True)), torch.randn(2, 12, 37, 53), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [0, 2, 4])
@pytest.mark.parametrize("size", [(37, 53), (16, 24), (5, 7)])
def test_spatial_expert(dtype, shift, size):
    expert = _randomise(SpatialExpert(8, 2, window_size=8, shift=shift, topk_ratio=0.7, bias=True))
    assert_same_as_reference(expert, torch.randn(2, 8, *size), dtype)


ROUTINGS = [("soft", "uniform"), ("hard", "uniform"), ("hard", "top1"), ("hard", "topk"), ("none", "uniform")]


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("routing, hard_mode", ROUTINGS)
@pytest.mark.parametrize("bias, input_linear", [(False, True), (True, True), (True, False)])
def test_moe_attention_every_routing_mode(routing, hard_mode, train, bias, input_linear):
    cfg = MoEWIRNetConfig(dim=12, heads=(1, 1, 1, 1), window_size=4, freq_patch=4, decoder_routing=routing,
                          hard_mode=hard_mode, bias=bias, input_linear=input_linear)
    moe = _randomise(MoEAttention(12, 2, cfg, "decoder", shift=2))
    assert_same_as_reference(moe, torch.randn(2, 12, 13, 11), train=train)


@pytest.mark.parametrize("experts", [("channel",), ("spatial", "frequency"), ("frequency", "channel", "spatial")])
@pytest.mark.parametrize("block_form", ["prenorm", "postnorm", "layerscale", "literal"])
def test_moe_block_expert_subsets_and_forms(experts, block_form):
    cfg = MoEWIRNetConfig(dim=12, heads=(1, 1, 1, 1), window_size=4, freq_patch=4, experts=experts,
                          block_form=block_form, hard_mode="top1")
    block = _randomise(MoEBlock(12, 1, cfg, "decoder", shift=0))
    assert_same_as_reference(block, torch.randn(2, 12, 9, 14), train=True)
    assert_same_as_reference(block, torch.randn(2, 12, 9, 14), train=False)


def assert_float32_close(new, ref):
    """float32 through a whole network: the spatial expert's top-k may pick the other of two keys
    whose scores tie up to rounding, which changes a few pixels (the same happens between two
    machines or thread counts with the reference code); everything else must agree."""
    diff = (new - ref).abs()
    assert (diff > 1e-4).float().mean() < 0.01 and diff.mean() < 2e-5, (diff.max(), diff.mean())


NETWORKS = [
    ("moewirnet-tiny", dict(window_size=4, freq_patch=4)),
    ("moewirnet-tiny", dict(hard_mode="top1", window_size=8)),
    ("moewirnet-tiny", dict(hard_mode="topk", decoder_routing="hard", encoder_routing="none")),
    ("restormer-tiny", {}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, overrides", NETWORKS)
def test_whole_networks(name, overrides, dtype):
    model = moewir.create_model(name, **overrides)
    with torch.no_grad():  # gates away from zero so that top-1/top-k choose
        for n, p in model.named_parameters():
            if n.endswith("gates"):
                p.copy_(torch.randn_like(p))
    model.to(dtype)
    if dtype == torch.float64:  # forward and every gradient, training mode
        assert_same_as_reference(model, torch.rand(2, 3, 37, 53), dtype, train=True)
    for train in (True, False):
        x = torch.rand(2, 3, 29, 43, dtype=dtype)
        with torch.no_grad():
            new = model.train(train)(x)
            with reference_forwards():
                ref = model(x)
        if dtype == torch.float64:
            torch.testing.assert_close(new, ref, **TOL[dtype])
        else:
            assert_float32_close(new, ref)


def test_shipped_weights_give_the_same_outputs():
    restorer = moewir.load("moewirnet-tiny", device="cpu", tile=None)
    net = restorer.network.eval()
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        new = net(x)
        with reference_forwards():
            ref = net(x)
        assert_float32_close(new, ref)
        new64, ref64 = net.double()(x.double()), None
        with reference_forwards():
            ref64 = net(x.double())
    torch.testing.assert_close(new64, ref64, **TOL[torch.float64])


def test_state_dict_keys_and_shapes_are_unchanged():
    """The fast paths form their fused weights at run time from the stored parameters."""
    model = moewir.create_model("moewirnet-tiny")
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    moe = "encoders.0.0.moe."
    assert keys[moe + "linear.weight"] == (24, 24, 1, 1) and keys[moe + "split.weight"] == (24, 24, 1, 1)
    assert keys[moe + "experts.0.qkv.pointwise.weight"] == (24, 8, 1, 1)
    assert keys[moe + "experts.1.qkv.depthwise.weight"] == (24, 1, 3, 3)
    assert keys[moe + "fusion.weight"] == (24, 24, 1, 1)
    assert not any("fused" in k for k in keys)
