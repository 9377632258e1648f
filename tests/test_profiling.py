"""MAC counting and memory tracking against hand-computed values."""
import json
import math

import pytest
import torch
import torch.nn as nn

import moewir
from moewir.cli.main import main
from moewir.profiling import count_macs, peak_memory_bytes


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_convolution_macs_hand_computed():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    # every output pixel: 6 channels x 4 inputs x 9 taps
    assert count_macs(conv, torch.rand(2, 4, 10, 12))["total"] == 2 * 10 * 12 * 6 * 4 * 9


def test_fft_product_and_topk_are_counted():
    def fn(x):
        spec = torch.fft.rfft2(x)                      # 3 real 8x8 transforms
        back = torch.fft.irfft2(spec * spec.conj(), s=(8, 8))
        return back.topk(4, dim=-1).values            # 3*8 rows of 8, k=4
    macs = count_macs(_Lambda(fn), torch.rand(3, 8, 8))
    fft = 3 * 2.5 * 64 * math.log2(64)                  # flops of the real transforms
    assert macs["_fft_r2c"] == pytest.approx(fft / 2)
    assert macs["_fft_c2r"] == pytest.approx(fft / 2)
    assert macs["mul"] == pytest.approx(6 * 3 * 8 * 5 / 2)
    assert macs["topk"] == pytest.approx(3 * 8 * 8 * math.log2(4) / 2)


def test_real_multiplications_are_not_counted():
    assert count_macs(_Lambda(lambda x: x * 2), torch.rand(4, 4))["total"] == 0


def test_peak_memory_hand_computed():
    x = torch.rand(1000)                           # 4000 bytes, allocated before: not counted

    def chain(x):
        a = x * 2                                  # +4000
        b = a * 3                                  # +4000, a still alive -> peak 8000
        del a
        return b.view(-1)                          # a view allocates nothing
    assert peak_memory_bytes(_Lambda(chain), x) == 8000
    assert peak_memory_bytes(_Lambda(lambda x: (x * 2).sum()), x) == 4004


def test_profile_result_fields():
    r = moewir.profile(moewir.create_model("moewirnet-tiny"), 32, runs=2, warmup=0, device="cpu")
    assert r.model == "moewirnet-tiny" and r.size == (32, 32) and r.device == "cpu"
    assert r.params == sum(p.numel() for p in moewir.create_model("moewirnet-tiny").parameters())
    assert r.gmacs > 0 and r.latency_ms > 0 and r.peak_memory_mb > 0


def test_cli_profile_json(capsys):
    assert main(["profile", "--model", "moewirnet-tiny", "--size", "24x40", "--runs", "1",
                 "--warmup", "0", "--json", "--set", "window_size=4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size"] == [24, 40] and out["model"] == "moewirnet-tiny" and out["gmacs"] > 0


def test_cli_profile_table(capsys):
    assert main(["profile", "--model", "restormer-tiny", "--size", "16", "--runs", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "| restormer-tiny | 1x16x16 |" in out and "GMACs by operator" in out


@pytest.mark.parametrize("argv,message", [
    (["profile", "--model", "nope"], "unknown model 'nope'"),
    (["profile", "--model", "moewirnet-tiny", "--set", "dim=25"], "does not split"),
    (["profile", "--model", "moewirnet-tiny", "--set", "novalue"], "--set expects KEY=VALUE"),
    (["profile", "--model", "moewirnet-tiny", "--device", "cuda"] if not torch.cuda.is_available()
     else ["profile", "--runs", "0"], "cuda" if not torch.cuda.is_available() else "--runs"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moewir: error:") and message in err and "\n" not in err


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "profile" in capsys.readouterr().out


def test_time_calls_and_interleaved_rounds():
    from moewir.profiling import interleaved, time_calls
    calls = []
    assert len(time_calls(lambda: calls.append(1), runs=3, warmup=2)) == 3 and len(calls) == 5
    order = []
    seconds = interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3,
                          runs={"a": 2}, warmup=1)
    assert order == ["a", "b"] + ["a", "a", "b"] + ["b", "a", "a"] + ["a", "a", "b"]  # reversed on odd rounds
    assert {k: len(v) for k, v in seconds.items()} == {"a": 3, "b": 3}
    assert all(s >= 0 for v in seconds.values() for s in v)
