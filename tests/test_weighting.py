"""Each reweighting strategy against hand-computed sequences; exact resume from state_dict."""
import io
import math

import numpy as np
import pytest
import torch

from moewir.training.weighting import WEIGHTINGS, create_weighting


def _softmax(*x):
    z = [math.exp(v) for v in x]
    return [v / sum(z) for v in z]


def _run(w, seq):
    return [w.update({"a": a, "b": b}) for a, b in seq]


def test_equal():
    assert _run(create_weighting("equal", ["a", "b"]), [(3.0, 0.1)]) == [{"a": 1.0, "b": 1.0}]


def test_ori_and_rci_by_hand():
    seq = [(2.0, 1.0), (4.0, 0.5)]
    ori = _run(create_weighting("ori", ["a", "b"], momentum=0.5, kappa=1.0), seq)
    assert ori[0] == pytest.approx({"a": 1.0, "b": 1.0})  # phi = 0 at the start
    # step 2: H = (3, 0.75), eta = (4/3, 2/3), L_opt = (2, 0.5), phi = (ln 2, 0)
    expected = [2 * p for p in _softmax(4 / 3 * math.log(2), 0.0)]
    assert [ori[1]["a"], ori[1]["b"]] == pytest.approx(expected, rel=1e-9)
    rci = _run(create_weighting("rci", ["a", "b"], momentum=0.5, kappa=0.5), seq)
    assert [rci[1]["a"], rci[1]["b"]] == pytest.approx([2 * p for p in _softmax(8 / 3, 4 / 3)], rel=1e-9)


def test_ori_is_safe_at_zero_and_keeps_the_scale():
    w = create_weighting("ori", ["a", "b", "c"])
    for losses in [(0.0, 0.0, 0.0), (0.0, 1.0, 1e-30), (5.0, 0.0, 1e-8)]:
        out = w.update(dict(zip("abc", losses)))
        assert all(np.isfinite(v) for v in out.values())
        assert sum(out.values()) == pytest.approx(3.0)
    with pytest.raises(FloatingPointError, match="task"):
        w.update({"a": float("nan"), "b": 1.0, "c": 1.0})


def test_unirain_by_hand():
    w = create_weighting("unirain", ["a", "b"], window=3, tau=5.0, warmup=3)
    out = _run(w, [(1, 2), (1, 2), (1, 2), (0.8, 2.0), (0.6, 2.2), (0.4, 2.0)])
    assert out[:3] == [{"a": 1.0, "b": 1.0}] * 3  # warm-up
    # 3-point least-squares slope = (y2 - y0) / 2 on losses normalised by the first 3 means (1, 2)
    # step 4: slopes (-0.1, 0); AF = 1 (no slope history sum) -> TBS = softmax(2 * (-0.1, 0) / 0.1)
    assert [out[3]["a"], out[3]["b"]] == pytest.approx([2 * p for p in _softmax(-2, 0)], rel=1e-9)
    # step 5: slopes (-0.2, 0.05); a_max history (0, 0.05): AF = min(2 e^5 / (1 + e^5), 1) = 1
    assert [out[4]["a"], out[4]["b"]] == pytest.approx([2 * p for p in _softmax(-1.6, 0.4)], rel=1e-9)
    # step 6: slopes (-0.2, 0); a_max history (0, .05, 0): AF = 3 / (2 + e^5)
    af = 3 / (2 + math.exp(5))
    tbs, tss = _softmax(-2, 0), _softmax(3 * 0.2 / 0.5, 0)  # own |slope| sums (0.5, 0.05)
    assert [out[5]["a"], out[5]["b"]] == pytest.approx(
        [2 * (af * tbs[i] + (1 - af) * tss[i]) for i in range(2)], rel=1e-9)
    assert w.last["af"] == pytest.approx(af)


def test_dwa_by_hand():
    out = _run(create_weighting("dwa", ["a", "b"], temperature=1.0, period=1), [(1, 1), (2, 1), (1, 1)])
    assert out[0] == out[1] == {"a": 1.0, "b": 1.0}
    assert [out[2]["a"], out[2]["b"]] == pytest.approx([2 * p for p in _softmax(2, 1)], rel=1e-9)
    out = _run(create_weighting("dwa", ["a", "b"], temperature=2.0, period=2),
               [(1, 1), (1, 1), (3, 1), (1, 1), (9, 9)])
    # period means (1, 1) then (2, 1): ratio (2, 1), applied from step 5
    assert out[:4] == [{"a": 1.0, "b": 1.0}] * 4
    assert [out[4]["a"], out[4]["b"]] == pytest.approx([2 * p for p in _softmax(1, 0.5)], rel=1e-9)


def test_uncertainty_total_and_gradient():
    w = create_weighting("uncertainty", ["a", "b"])
    la, lb = torch.tensor(2.0, requires_grad=True), torch.tensor(0.5, requires_grad=True)
    total, weights = w.combine({"a": la, "b": lb})
    assert total.item() == pytest.approx(2.5) and weights == {"a": 1.0, "b": 1.0}
    total.backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L at s = 0
    np.testing.assert_allclose(w.log_vars.grad.numpy(), [1 - 2.0, 1 - 0.5])
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([math.log(2.0), 0.0]))
    assert w.update({"a": 1.0, "b": 1.0})["a"] == pytest.approx(0.5)


def _step(w, losses: dict[str, float]) -> dict[str, float]:
    """One iteration as the trainer runs it: reference losses (here 1.5 + 2x the loss, so they
    vary) first for the strategies that read them."""
    if w.needs_reference:
        w.set_reference({t: 1.5 + 2.0 * v for t, v in losses.items()})
    return w.update(losses)


@pytest.mark.parametrize("name", list(WEIGHTINGS))
def test_resume_from_state_dict_reproduces_the_weights(name):
    opts = {"unirain": {"window": 4, "warmup": 5}, "dwa": {"period": 3}}.get(name, {})
    rng = np.random.default_rng(0)
    seq = [tuple(rng.uniform(0.1, 1.0, 3) * np.exp(-0.05 * t)) for t in range(40)]
    tasks = ["haze", "rain", "snow"]
    full = create_weighting(name, tasks, **opts)
    expected = [_step(full, dict(zip(tasks, s))) for s in seq]
    first = create_weighting(name, tasks, **opts)
    for s in seq[:17]:
        _step(first, dict(zip(tasks, s)))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = create_weighting(name, tasks, **opts)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert [_step(resumed, dict(zip(tasks, s))) for s in seq[17:]] == expected[17:]
    if name != "equal":
        assert any(abs(v - 1.0) > 1e-3 for e in expected for v in e.values()) or name == "uncertainty"


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="unknown weighting"):
        create_weighting("gradnorm", ["a"])
    with pytest.raises(ValueError, match="bad options"):
        create_weighting("ori", ["a"], beta=3)
    with pytest.raises(ValueError, match="not 'ori'"):
        create_weighting("ori", ["a"]).load_state_dict(create_weighting("rci", ["a"]).state_dict())


def test_smoothed_ori_by_hand():
    """``smoothing = s``: the indices see ``Ltilde_t = s Ltilde_{t-1} + (1 - s) L_t``."""
    seq = [(2.0, 1.0), (4.0, 0.5), (1.0, 0.5)]
    out = _run(create_weighting("ori", ["a", "b"], momentum=0.5, smoothing=0.5), seq)
    # Ltilde: (2, 1), (3, 0.75), (2, 0.625); H: (2, 1), (2.5, 0.875), (2.25, 0.75)
    # L_opt: (2, 1), (2, 0.75), (2, 0.625); step 2: eta = (1.2, 6/7), phi = (ln 1.5, 0)
    assert [out[1]["a"], out[1]["b"]] == pytest.approx([2 * p for p in _softmax(1.2 * math.log(1.5), 0.0)])
    # step 3: eta = (2 / 2.25, 0.625 / 0.75), phi = (0, 0): a new best for both
    assert [out[2]["a"], out[2]["b"]] == pytest.approx([1.0, 1.0])
    raw = [(3.0, 1.0), (1.0, 2.0), (5.0, 0.3)]
    assert _run(create_weighting("ori", ["a", "b"], smoothing=0.0), raw) == _run(create_weighting("ori", ["a", "b"]), raw)
    with pytest.raises(ValueError, match="smoothing"):
        create_weighting("ori", ["a"], smoothing=1.0)


def test_smoothed_ori_swings_less_on_noisy_losses():
    """One patch per task: losses jump by 3x between iterations around a slow decay."""
    rng = np.random.default_rng(1)
    seq = [tuple(np.exp(-0.01 * t) * rng.uniform(0.3, 1.0, 3)) for t in range(300)]
    spread = {}
    for s in (0.0, 0.95):
        w = create_weighting("ori", ["a", "b", "c"], smoothing=s)
        ws = [list(w.update(dict(zip("abc", x))).values()) for x in seq]
        spread[s] = max(max(v) / min(v) for v in ws[50:])
    assert spread[0.95] < spread[0.0] / 3, spread


@pytest.mark.parametrize("name", [n for n in WEIGHTINGS if n != "uncertainty"])
def test_weights_sum_to_the_number_of_tasks(name):
    opts = {"unirain": {"window": 4, "warmup": 5}, "dwa": {"period": 3}}.get(name, {})
    rng = np.random.default_rng(2)
    w = create_weighting(name, ["a", "b", "c"], **opts)
    for t in range(60):
        out = _step(w, dict(zip("abc", rng.uniform(0.05, 2.0, 3) * np.exp(-0.03 * t))))
        assert sum(out.values()) == pytest.approx(3.0, rel=1e-9)


def test_relative_by_hand():
    """``r`` is an EMA of the reference losses; ``w = K r^-p / sum r^-p``; the losses
    themselves do not move the weights."""
    w = create_weighting("relative", ["a", "b"], momentum=0.5, power=1.0)
    with pytest.raises(RuntimeError, match="no reference loss"):
        w.update({"a": 1.0, "b": 1.0})
    w.set_reference({"a": 0.6, "b": 0.06})
    assert [w.update({"a": 0.5, "b": 0.2})[t] for t in "ab"] == pytest.approx([2 / 11, 20 / 11], rel=1e-12)
    w.set_reference({"a": 1.0, "b": 0.14})  # r = (0.8, 0.1)
    assert [w.update({"a": 9.0, "b": 0.0})[t] for t in "ab"] == pytest.approx([2 / 9, 16 / 9], rel=1e-12)
    half = create_weighting("relative", ["a", "b"], power=0.5)
    half.set_reference({"a": 0.64, "b": 0.04})  # r^-1/2 = (1.25, 5)
    assert [half.update({"a": 1.0, "b": 1.0})[t] for t in "ab"] == pytest.approx([0.4, 1.6], rel=1e-12)
    flat = create_weighting("relative", ["a", "b"], power=0.0)
    flat.set_reference({"a": 0.64, "b": 0.04})
    assert flat.update({"a": 1.0, "b": 1.0}) == pytest.approx({"a": 1.0, "b": 1.0})
    with pytest.raises(FloatingPointError, match="non-finite reference loss for task"):
        w.set_reference({"a": float("inf"), "b": 1.0})
    with pytest.raises(ValueError, match="power"):
        create_weighting("relative", ["a"], power=-1)


def test_uncertainty_weights_are_learnt_and_not_renormalised():
    """They start at 1 each (sum K) and move off K once ``s`` is trained (docs/training.md)."""
    w = create_weighting("uncertainty", ["a", "b", "c"])
    assert sum(w.update({"a": 1.0, "b": 1.0, "c": 1.0}).values()) == pytest.approx(3.0)
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    for _ in range(5):
        total, _ = w.combine({t: torch.tensor(v) for t, v in zip("abc", (0.2, 1.0, 3.0))})
        opt.zero_grad()
        total.backward()
        opt.step()
    weights = w.update({"a": 1.0, "b": 1.0, "c": 1.0})
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L: s rises for L > 1 (weight falls), falls for L < 1
    assert weights["a"] > 1.0 > weights["c"] and abs(sum(weights.values()) - 3.0) > 1e-3
