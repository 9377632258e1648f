"""Parameters, multiply-accumulates, latency and peak memory of a network.

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and
matrix products, attention included) plus the formulas below for what it does not count:

* FFTs: ``5 N log2 N`` flops for a complex transform of ``N`` points (the Cooley-Tukey count),
  half of that for real-input/real-output transforms, per batch of transforms;
* the complex product ``Q_fft * conj(K_fft)``: 6 flops per complex element;
* top-k selection: ``n log2 k`` comparisons per row of ``n`` scores, one flop each.

Elementwise operations (activations, normalisation, softmax) are not counted, as in the
papers' tables. MACs are reported as flops / 2.

Timing: :func:`time_calls` times any callable (the device synchronised around each call) and
:func:`interleaved` times several in turn, round after round, so that machine noise hits them
alike; ratios between them are meaningful only when measured so, in one process.
"""
from __future__ import annotations

import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import torch
import torch.nn as nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from .devices import resolve_device
from .models import model_spec

__all__ = ["ProfileResult", "profile", "count_macs", "peak_memory_bytes", "time_calls", "interleaved",
           "machine_description"]

aten = torch.ops.aten


def _raw(formula):
    """Mark a formula to receive the real tensors (it needs dtypes), not only their shapes."""
    formula._get_raw = True
    return formula


def _fft_flops(shape, dims, real: bool) -> int:
    points = math.prod(shape[d] for d in dims)
    transforms = math.prod(shape) // max(points, 1)
    flops = 5 * points * math.log2(max(points, 2)) * transforms
    return int(flops / 2 if real else flops)


@_raw
def _fft_r2c(inputs, dim, normalization, onesided, *args, out_val=None, **kwargs):
    return _fft_flops(inputs.shape, dim, real=True)


@_raw
def _fft_c2r(inputs, dim, normalization, last_dim_size, *args, out_val=None, **kwargs):
    # The input holds the one-sided spectrum; the transform is over the full real length.
    full = list(inputs.shape)
    full[dim[-1]] = last_dim_size
    return _fft_flops(full, dim, real=True)


@_raw
def _fft_c2c(inputs, dim, normalization, forward, *args, out_val=None, **kwargs):
    return _fft_flops(inputs.shape, dim, real=False)


@_raw
def _complex_mul(a, b, *args, out_val=None, **kwargs):
    if isinstance(out_val, torch.Tensor) and out_val.is_complex():
        return 6 * out_val.numel()
    return 0


@_raw
def _topk(inputs, k, *args, out_val=None, **kwargs):
    return int(inputs.numel() * math.log2(max(k, 2)))


_EXTRA_FORMULAS = {
    aten._fft_r2c: _fft_r2c,
    aten._fft_c2r: _fft_c2r,
    aten._fft_c2c: _fft_c2c,
    aten.mul: _complex_mul,
    aten.topk: _topk,
}


def count_macs(model: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """Multiply-accumulates of one forward pass, total and per counted operator."""
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    with torch.no_grad(), counter:
        model(inputs)
    per_op = {str(op).removeprefix("aten."): flops / 2 for op, flops in counter.get_flop_counts()["Global"].items()
              if flops}
    return {"total": counter.get_total_flops() / 2, **per_op}


class _TensorMemoryTracker(TorchDispatchMode):
    """Tracks the bytes of tensor storage that operators allocate and that are still alive.

    Outputs that alias an input (views, in-place results) allocate nothing; a storage counts
    until its last reference dies. Scratch space inside one operator is not seen.
    """

    def __init__(self):
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key, (ref, nbytes) in list(self.live.items()):
            if ref.expired():
                del self.live[key]
                self.current -= nbytes
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        for tensor, ret in zip(outputs, func._schema.returns):
            if not isinstance(tensor, torch.Tensor) or ret.alias_info is not None:
                continue
            storage = tensor.untyped_storage()
            ref = StorageWeakRef(storage)
            if ref.cdata not in self.live:
                self.live[ref.cdata] = (ref, storage.nbytes())
                self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        return out


def peak_memory_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Peak memory allocated by one forward pass above what was allocated before it.

    On CUDA this is the caching allocator's peak (workspaces included); elsewhere it is the
    peak of live tensor storage allocated during the forward (see :class:`_TensorMemoryTracker`).
    """
    if inputs.device.type == "cuda":
        torch.cuda.synchronize(inputs.device)
        torch.cuda.reset_peak_memory_stats(inputs.device)
        before = torch.cuda.memory_allocated(inputs.device)
        with torch.no_grad():
            model(inputs)
        torch.cuda.synchronize(inputs.device)
        return torch.cuda.max_memory_allocated(inputs.device) - before
    tracker = _TensorMemoryTracker()
    with torch.no_grad(), tracker:
        model(inputs)
    return tracker.peak


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_calls(fn: Callable[[], object], runs: int = 1, warmup: int = 0,
               device: str | torch.device = "cpu") -> list[float]:
    """Seconds of each of ``runs`` calls of ``fn()`` after ``warmup`` untimed ones; ``device``
    is synchronised before and after every call (CUDA and MPS run asynchronously)."""
    device = torch.device(device)
    times = []
    for i in range(warmup + runs):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def interleaved(calls: Mapping[str, Callable[[], object]], rounds: int = 3, runs: int | Mapping[str, int] = 1,
                warmup: int = 1, device: str | torch.device = "cpu") -> dict[str, list[float]]:
    """Per round, the median seconds of ``runs`` calls of each of ``calls`` (``runs`` may map a
    name to its own count); the calls take turns within every round, in reverse order on odd
    rounds, so slow drifts of the machine hit them alike. ``warmup`` untimed calls of each
    come first. Returns ``{name: [seconds of round 0, round 1, ...]}``."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    count = (lambda name: runs.get(name, 1)) if isinstance(runs, Mapping) else (lambda name: runs)
    names = list(calls)
    for name in names:
        time_calls(calls[name], runs=0, warmup=warmup, device=device)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            seconds[name].append(statistics.median(time_calls(calls[name], runs=max(1, count(name)), device=device)))
    return seconds


def machine_description(device: str | torch.device = "cpu") -> str:
    """The GPU's name, or the CPU and the number of threads torch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


@dataclass
class ProfileResult:
    model: str
    size: tuple[int, int]
    batch: int
    params: int
    gmacs: float
    latency_ms: float
    latency_runs: int
    peak_memory_mb: float
    device: str
    threads: int
    macs_by_op: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def profile(model: nn.Module, size: int | tuple[int, int] = 256, batch: int = 1, runs: int = 10,
            warmup: int = 2, device: str | torch.device = "auto", count: bool = True) -> ProfileResult:
    """Profile ``model`` on a ``batch x 3 x H x W`` input in eval mode.

    Latency is the median of ``runs`` timed forward passes after ``warmup`` untimed ones.
    ``count=False`` skips the MAC count (it is slow on very large inputs).
    """
    h, w = (size, size) if isinstance(size, int) else size
    device = device if isinstance(device, torch.device) else resolve_device(device)
    model = model.to(device).eval()
    inputs = torch.rand(batch, getattr(getattr(model, "config", None), "in_channels", 3), h, w, device=device)
    macs = count_macs(model, inputs) if count else {"total": float("nan")}
    with torch.no_grad():
        times = time_calls(lambda: model(inputs), runs=runs, warmup=warmup, device=device)
    return ProfileResult(
        model=model_spec(model)[0], size=(h, w), batch=batch,
        params=sum(p.numel() for p in model.parameters()), gmacs=macs.pop("total") / 1e9,
        latency_ms=statistics.median(times) * 1e3, latency_runs=runs,
        peak_memory_mb=peak_memory_bytes(model, inputs) / 2 ** 20, device=str(device),
        threads=torch.get_num_threads(), macs_by_op={k: v / 1e9 for k, v in macs.items()})
