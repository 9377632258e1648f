"""``keep_freed_memory``: glibc serves large tensors from its heap afterwards, checked with
glibc's own accounting (``mallinfo2().hblkhd``, the bytes held in mmapped blocks), in a fresh
interpreter so that the test process's allocator is left alone."""
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import ctypes, ctypes.util, sys, torch
from moewir.devices import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
changed = keep_freed_memory() if sys.argv[1] == "keep" else None
big = torch.ones(64 * 2 ** 20 // 4)  # 64 MiB, above glibc's largest mmap threshold
print(changed, libc.mallinfo2().hblkhd >= big.numel() * 4)
"""


def _glibc_has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")
    except OSError:
        return False


def _probe(mode: str, env: dict | None = None) -> str:
    run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return run.stdout.strip()


@pytest.mark.skipif(not (sys.platform.startswith("linux") and _glibc_has_mallinfo2()), reason="needs glibc >= 2.33")
def test_large_tensors_come_from_the_heap_after_keep_freed_memory():
    assert _probe("default") == "None True"  # glibc's default: the 64 MiB tensor is an mmap
    assert _probe("keep") == "True False"  # after the call: no mmapped block holds it
    assert _probe("keep", {"MOEWIR_MALLOC": "system"}) == "False True"  # the opt-out changes nothing


KEPT = r"""
import sys, torch
import moewir.inference.memory as memory
from moewir.devices import keep_freed_memory, kept_heap_bytes
if sys.argv[1] == "keep":
    keep_freed_memory()
memory._available_host_bytes = lambda: 2 ** 30  # the system's share fixed: only the kept heap moves
before, budget_before = kept_heap_bytes(), memory.memory_budget(torch.device("cpu"))
big = torch.ones(256 * 2 ** 20 // 4)  # 256 MiB
del big
# 90%: the interpreter's own small allocations between the two readings may take some of the
# free bytes counted before (a few hundred KiB, depending on the heap's layout)
print(kept_heap_bytes() - before >= 0.9 * 256 * 2 ** 20,
      memory.memory_budget(torch.device("cpu")) - budget_before >= memory.HOST_FRACTION * 0.9 * 256 * 2 ** 20)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and _glibc_has_mallinfo2()), reason="needs glibc >= 2.33")
def test_auto_tile_budget_counts_the_memory_the_process_keeps():
    run = lambda mode: subprocess.run([sys.executable, "-c", KEPT, mode], capture_output=True, text=True,
                                      check=True).stdout.strip()
    assert run("keep") == "True True"  # the freed 256 MiB stay in the heap, and the budget grows by its share
    assert run("default") == "False False"  # glibc's default unmaps it: nothing kept, the budget as before


def test_allocator_bench_runs_both_settings(tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "allocator.py"
    out = tmp_path / "a.json"
    run = subprocess.run([sys.executable, str(script), "--size", "32", "--rounds", "2", "--threads", "1",
                          "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert [len(result["seconds"][s]) for s in ("glibc", "keep")] == [2, 2]
    assert result["ratio_low"] <= result["ratio"] <= result["ratio_high"] and result["peak_mib"]["keep"] > 0
    assert "keep_freed_memory" in run.stdout
