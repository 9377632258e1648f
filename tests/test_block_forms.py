"""MoE block forms (``block_form``): their equations, the dynamics at initialisation against
Restormer, the health probe that measures them, and weights files that predate the option."""
from __future__ import annotations

import json
import statistics

import pytest
import torch
import torch.nn.functional as F

import moewir
from moewir.cli.main import main
from moewir.health import default_pair, health
from moewir.models import build_from_weights, model_spec, save_weights
from moewir.models.moewirnet import BLOCK_FORMS, MoEWIRNetConfig

EXPERTS = ("channel", "spatial", "frequency")


def _ln(x, norm):
    """Channel LayerNorm by hand (no LayerNorm2d): mean/variance over C per pixel."""
    mu = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight[:, None, None] + norm.bias[:, None, None]


@pytest.mark.parametrize("form", BLOCK_FORMS)
def test_each_block_form_computes_its_equation(form):
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny", block_form=form)
    block = net.encoders[0][0]
    for p in block.parameters():  # move LN and LayerScale off their trivial initial values
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 24, 16, 16)
    moe = block.moe

    def fusion(h):  # F_fusion(h): split, experts weighted by the router, fusion conv
        shares = moe.split(moe.linear(h)).split(moe.share, dim=1)
        w = moe.router()
        return moe.fusion(torch.cat([w[i] * e(s) for i, (e, s) in enumerate(zip(moe.experts, shares))], 1))

    if form == "prenorm":
        mid = x + fusion(_ln(x, block.norm1))
        assert moe.norm is None
    elif form == "postnorm":
        mid = _ln(x + fusion(x), moe.norm)
        assert block.norm1 is None
    else:
        h = _ln(x, block.norm1)
        out = _ln(h + fusion(h), moe.norm)
        mid = x + (block.scale.gamma * out if form == "layerscale" else out)
    expected = mid + block.ffn(_ln(mid, block.norm2))
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)


def test_every_moewirnet_size_defaults_to_the_measured_form():
    assert MoEWIRNetConfig().block_form == "prenorm"
    for name in ("moewirnet", "moewirnet-small", "moewirnet-tiny"):
        assert moewir.create_model(name).config.block_form == "prenorm"
    with pytest.raises(ValueError, match="block_form must be one of"):
        moewir.create_model("moewirnet-tiny", block_form="sandwich")


def _dynamics(form: str, seed: int):
    x, y = default_pair(64)
    torch.manual_seed(seed)
    moe = health(moewir.create_model("moewirnet", block_form=form), x, y)
    torch.manual_seed(seed)
    ref = health(moewir.create_model("restormer"), x, y)
    return moe, ref


@pytest.mark.parametrize("seed", [0, 1])
def test_paper_size_dynamics_at_init_match_restormer(seed):
    """The default block: the stream entering the output conv is within 3x of Restormer's on the
    same input (the literal block: 44x), and the experts get a real share of their module's
    gradient: together >= 3% of its squared norm in every block, each expert's median over the
    blocks >= 0.3% (the literal block: 0.1-0.2% together, 0.03% for the channel expert)."""
    moe, ref = _dynamics("prenorm", seed)
    assert moe.output_stream_rms < 3 * ref.output_stream_rms
    assert max(b.stream_rms for b in moe.blocks) < 3 * max(b.stream_rms for b in ref.blocks)
    assert min(sum(b.expert_share.values()) for b in moe.blocks) > 0.03
    for expert in EXPERTS:
        assert statistics.median(b.expert_share[expert] for b in moe.blocks) > 0.003


def test_the_literal_block_fails_those_dynamics():
    """The same checks tell the literal reading apart: a unit copy of LN(X) per block."""
    moe, ref = _dynamics("literal", 0)
    assert moe.output_stream_rms > 20 * ref.output_stream_rms
    # the stream grows by about 1 per block: 38 blocks, RMS about 13 at the end
    assert moe.blocks[-1].stream_rms > 10
    assert min(sum(b.expert_share.values()) for b in moe.blocks) < 0.01
    assert statistics.median(b.expert_share["channel"] for b in moe.blocks) < 0.003


def test_health_probe_against_direct_measurement():
    """Stream RMS, branch ratio and gradient shares of one block, measured by hand."""
    x, y = default_pair(32)
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny")
    report = health(net, x, y)
    assert [b.name for b in report.blocks][:3] == ["encoders.0.0", "encoders.1.0", "encoders.2.0"]
    assert len(report.blocks) == 9 and net.training  # its mode is restored
    with torch.no_grad():
        stream = net.embed(x)  # the first block's input: 32 px needs no padding
    block = net.encoders[0][0]
    with torch.no_grad():
        mid = stream + block.moe(block.norm1(stream))
    first = report.blocks[0]
    assert first.stream_rms == pytest.approx(float(stream.pow(2).mean().sqrt()), rel=1e-5)
    assert first.mix_ratio == pytest.approx(float((mid - stream).pow(2).mean().sqrt() / stream.pow(2).mean().sqrt()),
                                            rel=1e-4)
    net.zero_grad()
    F.l1_loss(net(x), y).backward()
    grads = {name: sum(float(p.grad.pow(2).sum()) for p in module.parameters())
             for name, module in zip(block.moe.expert_names, block.moe.experts)}
    total = sum(float(p.grad.pow(2).sum()) for p in block.moe.parameters())
    for name in EXPERTS:
        assert first.expert_share[name] == pytest.approx(grads[name] / total, rel=1e-4)
    assert report.grad_norm == pytest.approx(
        sum(float(p.grad.pow(2).sum()) for p in net.parameters()) ** 0.5, rel=1e-4)


def test_restormer_blocks_have_no_experts_and_zero_init_gives_nan_shares():
    x, y = default_pair(32)
    report = health(moewir.create_model("restormer-tiny"), x, y)
    assert len(report.blocks) == 9 and all(not b.expert_share for b in report.blocks)
    report = health(moewir.create_model("moewirnet-tiny", zero_init_output=True), x, y)
    assert report.output_grad_norm > 0
    assert all(v != v for b in report.blocks for v in b.expert_share.values())  # NaN: no gradient upstream


def test_weights_without_block_form_rebuild_the_literal_block(tmp_path):
    torch.manual_seed(0)
    net = moewir.create_model("moewirnet-tiny", block_form="literal")
    old = {k: v for k, v in model_spec(net)[1].items() if k != "block_form"}  # an old file's metadata
    save_weights(tmp_path / "old.safetensors", net, {"model_config": json.dumps(old)})
    rebuilt = build_from_weights(tmp_path / "old.safetensors")
    assert rebuilt.config.block_form == "literal"
    x = torch.rand(1, 3, 24, 24)
    torch.testing.assert_close(rebuilt(x), net(x))
    new = moewir.create_model("moewirnet-tiny")
    save_weights(tmp_path / "new.safetensors", new)
    assert build_from_weights(tmp_path / "new.safetensors").config.block_form == "prenorm"


def test_profile_health_cli(capsys, tmp_path):
    assert main(["profile", "--health", "--model", "moewirnet-tiny", "--size", "32", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["blocks"]) == 9 and set(out["blocks"][0]["expert_share"]) == set(EXPERTS)
    assert main(["profile", "--health", "--model", "moewirnet-tiny", "--size", "32",
                 "--set", "block_form=literal"]) == 0
    table = capsys.readouterr().out
    assert "| encoders.0.0 |" in table and "stream RMS entering the output conv" in table
    save_weights(tmp_path / "w.safetensors", moewir.create_model("moewirnet-tiny"))
    assert main(["profile", "--health", "--weights", str(tmp_path / "w.safetensors"), "--size", "32"]) == 0
    assert main(["profile", "--health", "--weights", str(tmp_path / "nope.safetensors")]) != 0
    assert "nope.safetensors: no such weights file" in capsys.readouterr().err
