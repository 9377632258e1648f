import importlib
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def bench_module(monkeypatch):
    """``bench_module("speed")`` imports ``bench/speed.py``; ``bench/`` stays on ``sys.path`` for
    the test (the scripts import each other) and the thread count is restored after it."""
    monkeypatch.syspath_prepend(str(BENCH))
    threads = torch.get_num_threads()
    yield importlib.import_module
    torch.set_num_threads(threads)
