"""bench/speed.py and bench/gpu_check.py at --quick sizes on the CPU (their main(), in this
process): every row is there, the numbers are positive and finite, the CUDA-only checks say
they were skipped, the JSON is valid. About 30 s on a free core."""
import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    threads = torch.get_num_threads()
    try:
        import gpu_check
        import speed
        yield speed, gpu_check
    finally:
        sys.path.remove(str(BENCH))
        torch.set_num_threads(threads)


def _table_lines(printed: str, header: str) -> list[str]:
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def _positive(x: float) -> bool:
    return math.isfinite(x) and x > 0


def test_speed_quick_prints_every_ratio_and_writes_json(bench, tmp_path, capsys):
    speed, _ = bench
    out = tmp_path / "speed.json"
    result = speed.main(["--quick", "--rounds", "2", "--runs", "1", "--threads", "1", "--json", str(out)])
    printed = capsys.readouterr().out

    keys = [key for key, *_ in speed.RATIOS] + [key for key, *_ in speed.RATES]
    assert [r["key"] for r in result["rows"]] == keys
    table = _table_lines(printed, "| measurement |")
    assert len(table) == 2 + len(keys)                      # header, rule, one line per row
    assert all(line.count("|") == 7 for line in table)      # six cells: no stray "|" inside one
    for row, line in zip(result["rows"], table[2:]):
        assert line.startswith(f"| {row['what']} |")
        assert _positive(row["value"]) and row["low"] <= row["value"] <= row["high"]
        if row["goal"] is None:
            assert row["status"] == "info"
        else:
            assert row["status"] == ("pass" if row["value"] <= float(row["goal"].lstrip("≤ ")) else "fail")
    ratios = {r["key"]: r for r in result["rows"]}
    assert {k for k, r in ratios.items() if r["goal"]} == {"forward", "forward_tiny", "train_step_tiny", "tiled"}
    assert all(len(s) == 2 and all(_positive(x) for x in s) for s in result["seconds"].values())

    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["rows"] == result["rows"] and written["quick"] is True and written["threads"] == 1


def test_gpu_check_quick_on_the_cpu_skips_only_cuda_parts(bench, tmp_path, capsys):
    _, gpu_check = bench
    out = tmp_path / "gpu.json"
    result = gpu_check.main(["--quick", "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    rows = {r["check"]: r for r in result["rows"]}

    cuda_only = ["fp16 autocast, forward + backward (cuda)", "torch.compile vs eager (cuda)", "DDP, 1 process, nccl"]
    for check in cuda_only:
        assert rows[check]["status"] == "skipped" and rows[check]["result"] == gpu_check.SKIP
        assert f"{check}: skipped: no CUDA device" in printed
    ran = ["forward + backward, fp32 (cpu)", "bf16 autocast, forward + backward (cpu)", "DDP, 1 process, gloo (cpu)"]
    for check in ran:
        assert rows[check]["status"] == "pass", rows[check]
    assert not [r for r in result["rows"] if r["status"] == "fail"]
    assert "max abs Δ vs fp32" in rows["bf16 autocast, forward + backward (cpu)"]["result"]

    models = ["moewirnet-tiny", "restormer-tiny", "moewirnet", "restormer"]
    for size in (16, 32):
        for name in models:
            text = rows[f"latency {size}² {name}"]["result"]
            assert _positive(float(re.match(r"([\d.]+) ms", text).group(1)))
            ratios = [float(x) for x in re.findall(r"([\d.]+)× restormer", text)]
            assert len(ratios) == {"moewirnet-tiny": 2, "restormer": 0}.get(name, 1)
            assert all(_positive(x) for x in ratios)
    for name in ("moewirnet-tiny", "restormer-tiny"):
        assert _positive(float(re.match(r"([\d.]+) it/s", rows[f"training {name}"]["result"]).group(1)))

    table = _table_lines(printed, "| check | result | status |")
    assert len(table) == 2 + len(result["rows"])
    assert all(line.count("|") == 4 for line in table)      # three cells each
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["rows"] == result["rows"] and written["cuda"] is False


def test_restore_backends_quick(tmp_path, capsys):
    """bench/restore_backends.py at --quick size, eager against bf16 (torch.compile and the
    ONNX export take minutes, so they are left to the real run): one row per backend, eager's
    ratio 1, bf16 close to eager but not bit-equal, the JSON holds what was printed."""
    sys.path.insert(0, str(BENCH))
    threads = torch.get_num_threads()
    try:
        import restore_backends
        assert restore_backends.main(["--quick", "--threads", "1", "--backends", "eager", "bf16",
                                      "--json", str(tmp_path / "r.json")]) == 0
    finally:
        sys.path.remove(str(BENCH))
        torch.set_num_threads(threads)
    rows = {r["backend"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert sorted(rows) == ["bf16", "eager"]
    assert rows["eager"]["ratio_to_eager"] == 1.0 and rows["eager"]["max_abs_diff"] == 0.0
    assert 0 < rows["bf16"]["max_abs_diff"] < 0.1 and _positive(rows["bf16"]["ratio_to_eager"])
    assert len(_table_lines(capsys.readouterr().out, "| model | backend")) == 4
