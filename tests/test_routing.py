"""Router semantics and the MoE module that uses them."""
import pytest
import torch

from moewir.models.moewirnet import MoEAttention, MoEWIRNetConfig
from moewir.models.routing import Router


def _moe(routing="hard", hard_mode="top1", stage="decoder", **kw):
    cfg = MoEWIRNetConfig(dim=12, heads=(1, 1, 1, 1), window_size=4, freq_patch=4,
                          **{f"{stage}_routing": routing}, hard_mode=hard_mode, **kw)
    return MoEAttention(12, 1, cfg, stage, shift=0)


def _count_calls(moe):
    calls = [0] * len(moe.experts)
    for i, expert in enumerate(moe.experts):
        expert.register_forward_hook(lambda *a, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


def test_soft_weights_are_softmax_of_gates_and_sum_to_one():
    router = Router(3, "soft")
    with torch.no_grad():
        router.gates.copy_(torch.tensor([0.5, -1.0, 2.0]))
    w = router()
    e = torch.exp(torch.tensor([0.5, -1.0, 2.0]))
    torch.testing.assert_close(w, e / e.sum())
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))


def test_top1_eval_computes_only_the_argmax_expert():
    moe = _moe().eval()
    with torch.no_grad():
        moe.router.gates.copy_(torch.tensor([0.1, 0.9, 0.3]))
    calls = _count_calls(moe)
    x = torch.randn(1, 12, 8, 8)
    with torch.no_grad():
        y = moe(x)
    assert calls == [0, 1, 0]
    # Equal to the fusion of the spatial share alone, the other slots zero.
    shares = moe.split(moe.linear(x)).split(4, dim=1)
    slots = [torch.zeros_like(shares[0]), moe.experts[1](shares[1]), torch.zeros_like(shares[2])]
    torch.testing.assert_close(y, moe.norm(x + moe.fusion(torch.cat(slots, 1))))


def test_topk_eval_computes_k_experts_with_renormalised_softmax():
    moe = _moe(hard_mode="topk", hard_top_k=2).eval()
    gates = torch.tensor([0.2, -1.0, 1.0])
    with torch.no_grad():
        moe.router.gates.copy_(gates)
    calls = _count_calls(moe)
    with torch.no_grad():
        moe(torch.randn(1, 12, 8, 8))
    assert calls == [1, 0, 1]
    w = moe.router()
    e = torch.exp(gates[[0, 2]])
    torch.testing.assert_close(w, torch.stack([e[0], torch.tensor(0.0), e[1]]) / e.sum())


def test_hard_training_computes_all_experts_and_gates_get_gradient():
    moe = _moe().train()
    calls = _count_calls(moe)
    moe(torch.randn(2, 12, 8, 8)).square().mean().backward()
    assert calls == [1, 1, 1]
    grad = moe.router.gates.grad
    assert grad is not None and (grad != 0).all()
    # Forward value in training is still the hard one-hot choice.
    w = moe.router()
    assert torch.equal(w.detach(), torch.tensor([1.0, 0.0, 0.0]))  # zero gates: argmax ties -> first


def test_soft_gates_get_gradient():
    moe = _moe(routing="soft", stage="encoder").train()
    moe(torch.randn(2, 12, 8, 8)).square().mean().backward()
    assert (moe.router.gates.grad != 0).all()


def test_uniform_mode_equals_mean_of_experts():
    moe = _moe(hard_mode="uniform").eval()
    torch.testing.assert_close(moe.router(), torch.full((3,), 1 / 3))
    x = torch.randn(1, 12, 8, 8)
    shares = moe.split(moe.linear(x)).split(4, dim=1)
    outs = [e(s) for e, s in zip(moe.experts, shares)]
    expected = moe.norm(x + moe.fusion(torch.cat([o / 3 for o in outs], 1)))
    torch.testing.assert_close(moe(x), expected)
    assert not list(moe.router.parameters())


def test_none_routing_is_plain_concatenation():
    moe = _moe(routing="none").eval()
    torch.testing.assert_close(moe.router(), torch.ones(3))


def test_eval_is_deterministic_in_every_mode():
    x = torch.randn(1, 12, 8, 8)
    for kw in [dict(routing="soft", stage="encoder"), dict(hard_mode="top1"), dict(hard_mode="topk"),
               dict(hard_mode="uniform")]:
        moe = _moe(**kw).eval()
        with torch.no_grad():
            assert torch.equal(moe(x), moe(x))


@pytest.mark.parametrize("bad", [dict(mode="fuzzy"), dict(mode="hard", hard_mode="gumbel"),
                                 dict(mode="hard", hard_mode="topk", top_k=4)])
def test_router_rejects_bad_options(bad):
    with pytest.raises(ValueError):
        Router(3, **bad)
