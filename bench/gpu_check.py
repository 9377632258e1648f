"""What a GPU day should check first: CUDA forward and backward, bf16 / fp16 autocast, torch.compile,
DDP over NCCL in one process, latency of moewirnet-tiny, moewirnet and Restormer as the image
grows, and training iterations per second. Prints ONE Markdown table (check, result, status)
and, with --json FILE, the same rows as JSON. Exit status 1 when a check fails.

    python bench/gpu_check.py [--device auto] [--quick] [--json FILE]

Under 8 minutes on an H200-class GPU (torch.compile's first call is most of it). Without a
CUDA device it still runs what the CPU can, at tiny sizes (16-64 px), and every CUDA-only
check says ``skipped: no CUDA device``; that is what the tests run (``--quick``). ``--quick``
also shrinks the sizes on a GPU (a smoke run in seconds).

* forward + backward: fp32, output shape and finite output and gradients;
* bf16 / fp16 autocast: forward + backward under ``torch.autocast``, output finite and close to
  fp32 (the maximum absolute difference on the same input, outputs are images in about
  [0, 1]); fp16 needs CUDA, bf16 runs on the CPU too;
* torch.compile (CUDA only): compile time, then the compiled forward's speed-up over eager and
  its maximum absolute difference;
* DDP, one process: ``init_process_group`` with world size 1 over a local file store (NCCL on
  CUDA; gloo, which the CPU can run, everywhere), then two iterations of the trainer's own step
  (``Trainer.step``, the shipped-weights recipe, ``bench/speed.py``'s ``build_recipe``) through
  ``DistributedDataParallel``, compared parameter by parameter with the same two iterations
  without DDP. ``moewir.training.distributed.wrap`` returns the bare model at world size 1,
  so the wrapper is built here with the same arguments it uses;
* latency: forward, batch 1, eval mode, at 256, 512 and 1024 px, interleaved rounds
  (``moewir.profiling.interleaved``), with each model's ratio to Restormer (and moewirnet-tiny's
  to restormer-tiny);
* training: iterations per second of the recipe's step, interleaved, with the same ratios.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import moewir
from moewir.devices import resolve_device
from moewir.profiling import interleaved, machine_description
from moewir.tables import markdown_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import build_recipe  # noqa: E402

SKIP = "skipped: no CUDA device"
#: Largest absolute difference from fp32 that passes (outputs are images in about [0, 1]).
TOLERANCE = {"bf16": 0.1, "fp16": 0.02, "compile": 5e-3}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Report:
    """The table's rows, each printed as one line when it is added (a run that dies midway
    still shows how far it came)."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, result: str, status: str, seconds: float = 0.0) -> None:
        self.rows.append(dict(check=check, result=result, status=status, seconds=round(seconds, 2)))
        print(f"{check}: {result} [{status}]", flush=True)

    def skip(self, check: str) -> None:
        self.add(check, SKIP, "skipped")

    def run(self, check: str, fn: Callable[[], tuple[str, str]]) -> None:
        """``fn()`` returns (result, status); an exception is a failed check, not a dead run."""
        start = time.perf_counter()
        try:
            result, status = fn()
        except Exception as exc:  # noqa: BLE001  every check reports, whatever breaks
            traceback.print_exc()
            result, status = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300], "fail"
        self.add(check, result, status, time.perf_counter() - start)

    def table(self) -> str:
        return markdown_table(["check", "result", "status"], [[r["check"], r["result"], r["status"]] for r in self.rows],
                              align="llc")


def _finite_grads(model: torch.nn.Module) -> bool:
    return all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


_NETWORKS: dict[tuple[str, str], torch.nn.Module] = {}


def network(name: str, device: torch.device) -> torch.nn.Module:
    """``name`` with seed-0 weights on ``device``, built once per run (every check uses the same)."""
    key = (name, str(device))
    if key not in _NETWORKS:
        torch.manual_seed(0)
        _NETWORKS[key] = moewir.create_model(name).to(device)
    return _NETWORKS[key]


def forward_backward(name: str, size: int, device: torch.device, dtype: torch.dtype | None = None,
                     reference: torch.Tensor | None = None) -> tuple[torch.Tensor, str, bool]:
    """One forward + backward of ``name`` on a seed-0 input, under autocast to ``dtype`` when
    given; the output, a description and whether everything was as it should."""
    model = network(name, device).train()
    model.zero_grad(set_to_none=True)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = model(image)
    out.float().square().mean().backward()
    out = out.detach().float()
    grads = _finite_grads(model)
    ok = out.shape == image.shape and bool(torch.isfinite(out).all()) and grads
    text = f"{name} {size}²: out {tuple(out.shape)} {'finite' if torch.isfinite(out).all() else 'NOT FINITE'}, " \
           f"grads {'finite' if grads else 'NOT FINITE'}"
    if reference is not None:
        diff = (out - reference).abs()
        text += f", max abs Δ vs fp32 {diff.max().item():.2e} (mean {diff.mean().item():.1e})"
        ok = ok and diff.max().item() <= TOLERANCE[next(k for k, v in DTYPES.items() if v is dtype)]
    return out, text, ok


_FP32: dict[tuple, torch.Tensor] = {}  # the fp32 outputs the autocast checks compare with


def check_precision(models: list[str], size: int, device: torch.device, dtype_name: str | None
                    ) -> tuple[str, str]:
    texts, ok = [], True
    for name in models:
        key = (name, size, str(device))
        if dtype_name is None or key not in _FP32:
            _FP32[key], text, good = forward_backward(name, size, device)
        if dtype_name is not None:
            _, text, good = forward_backward(name, size, device, DTYPES[dtype_name], _FP32[key])
        texts.append(text)
        ok = ok and good
    if device.type == "cuda":
        texts.append(f"peak {torch.cuda.max_memory_allocated(device) / 2 ** 30:.1f} GiB")
    return "; ".join(texts), "pass" if ok else "fail"


def check_compile(name: str, size: int, device: torch.device, runs: int) -> tuple[str, str]:
    model = network(name, device).eval()
    image = torch.rand(1, 3, size, size, device=device)
    compiled = torch.compile(model)
    with torch.no_grad():
        start = time.perf_counter()
        out = compiled(image)
        torch.cuda.synchronize(device)
        compile_s = time.perf_counter() - start
        diff = (out.float() - model(image).float()).abs().max().item()
        seconds = interleaved({"eager": lambda: model(image), "compiled": lambda: compiled(image)},
                              rounds=3, runs=runs, warmup=2, device=device)
    eager, fast = statistics.median(seconds["eager"]), statistics.median(seconds["compiled"])
    ok = diff <= TOLERANCE["compile"] and bool(torch.isfinite(out).all())
    return (f"{name} {size}²: first call {compile_s:.0f} s, eager {eager * 1e3:.1f} ms, compiled {fast * 1e3:.1f} ms, "
            f"speed-up {eager / fast:.2f}×, max abs Δ {diff:.1e}"), "pass" if ok else "fail"


def check_ddp(backend: str, device: torch.device, patch: int) -> tuple[str, str]:
    """Two recipe iterations through DDP (world size 1) against the same two without it."""
    with tempfile.TemporaryDirectory() as folder:
        dist.init_process_group(backend, store=dist.FileStore(str(Path(folder) / "store"), 1), rank=0, world_size=1)
        try:
            parts, batch = build_recipe("moewirnet-tiny", device, patch)
            plain, _ = build_recipe("moewirnet-tiny", device, patch)  # the same seed: the same weights
            parts.net = DistributedDataParallel(
                parts.model, device_ids=[device.index or 0] if device.type == "cuda" else None,
                find_unused_parameters=parts.config.distributed.find_unused_parameters)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(2):
                    loss = parts.step(batch)["total"]
                    plain.step(batch)
            diff = max((p - q).abs().max().item() for p, q in zip(parts.model.parameters(), plain.model.parameters()))
        finally:
            dist.destroy_process_group()
    ok = diff <= 1e-5 and loss == loss
    notes = sorted({str(w.message).splitlines()[0] for w in caught})
    return (f"world size 1, {backend}: 2 recipe steps of moewirnet-tiny through DistributedDataParallel, loss "
            f"{loss:.4f}, max abs Δ of parameters vs no DDP {diff:.1e}"
            + "".join(f"; warning: {n[:160]}" for n in notes)), "pass" if ok else "fail"


def _ratios(ms: dict[str, float], name: str) -> str:
    """``name``'s time over Restormer's (and moewirnet-tiny's over restormer-tiny's)."""
    parts = [f"{ms[name] / ms['restormer']:.2f}× restormer"] if name != "restormer" and "restormer" in ms else []
    if name == "moewirnet-tiny" and "restormer-tiny" in ms:
        parts.append(f"{ms[name] / ms['restormer-tiny']:.2f}× restormer-tiny")
    return "; ".join(parts)


def check_latency(report: Report, models: list[str], sizes: list[int], device: torch.device, rounds: int,
                  runs: int) -> None:
    networks = {name: network(name, device).eval() for name in models}
    for size in sizes:
        def measure(size=size):
            image = torch.rand(1, 3, size, size, device=device)
            with torch.no_grad():
                seconds = interleaved({n: (lambda m=m: m(image)) for n, m in networks.items()}, rounds=rounds,
                                      runs=runs, warmup=1, device=device)
            return {n: statistics.median(s) * 1e3 for n, s in seconds.items()}
        start = time.perf_counter()
        try:
            ms = measure()
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            report.add(f"latency {size}²", f"error: {type(exc).__name__}: {exc}"[:300], "fail",
                       time.perf_counter() - start)
            continue
        for i, name in enumerate(models):  # the size's time goes on its first row
            ratio = _ratios(ms, name)
            report.add(f"latency {size}² {name}", f"{ms[name]:.1f} ms" + (f"; {ratio}" if ratio else ""), "info",
                       0 if i else time.perf_counter() - start)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def check_training(report: Report, models: list[str], device: torch.device, patch: int, rounds: int, runs: int
                   ) -> None:
    start = time.perf_counter()
    try:
        steps = {}
        for name in models:
            parts, batch = build_recipe(name, device, patch)
            steps[name] = lambda parts=parts, batch=batch: parts.step(batch)
        seconds = interleaved(steps, rounds=rounds, runs=runs, warmup=2, device=device)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        report.add("training", f"error: {type(exc).__name__}: {exc}"[:300], "fail", time.perf_counter() - start)
        return
    ms = {n: statistics.median(s) * 1e3 for n, s in seconds.items()}
    for i, name in enumerate(models):
        ratio = _ratios(ms, name)
        report.add(f"training {name}", f"{1e3 / ms[name]:.2f} it/s (recipe step, 5 × {patch}² patches)"
                   + (f"; time {ratio}" if ratio else ""), "info", 0 if i else time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (what the tests run)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        device = torch.device("cuda", device.index or 0)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    full = cuda and not args.quick
    size = 256 if full else 32 if cuda else 16          # forward / backward / autocast / compile
    latency_sizes = [256, 512, 1024] if full else [32, 64] if cuda else [16, 32]
    patch = 64 if full else 16
    rounds, runs = (3, 5) if cuda else (2, 1)
    big = ["moewirnet-tiny", "moewirnet", "restormer"]
    report = Report()
    env = f"torch {torch.__version__}, {machine_description(device)}"
    if cuda:
        env += f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, " \
               f"{torch.cuda.get_device_properties(device).total_memory / 2 ** 30:.0f} GiB"
    report.add("device", env + ("" if cuda else f" ({SKIP}: CPU checks at tiny sizes)"), "info")

    report.run(f"forward + backward, fp32 ({device.type})", lambda: check_precision(big, size, device, None))
    # bf16 on a CPU without bf16 instructions is emulated and slow: the tiny network only there
    report.run(f"bf16 autocast, forward + backward ({device.type})",
               lambda: check_precision(big if cuda else big[:1], size, device, "bf16"))
    if cuda:
        report.run("fp16 autocast, forward + backward (cuda)", lambda: check_precision(big, size, device, "fp16"))
        report.run("torch.compile vs eager (cuda)", lambda: check_compile("moewirnet-tiny", size, device, runs=10))
        report.run("DDP, 1 process, nccl", lambda: check_ddp("nccl", device, patch))
    else:
        report.skip("fp16 autocast, forward + backward (cuda)")
        report.skip("torch.compile vs eager (cuda)")
        report.skip("DDP, 1 process, nccl")
    if dist.is_gloo_available():  # on the CPU: what CI can run of the DDP path
        report.run("DDP, 1 process, gloo (cpu)", lambda: check_ddp("gloo", torch.device("cpu"), 16))
    else:
        report.add("DDP, 1 process, gloo (cpu)", "skipped: this torch has no gloo backend", "skipped")
    check_latency(report, ["moewirnet-tiny", "restormer-tiny", "moewirnet", "restormer"], latency_sizes, device,
                  rounds, runs)
    check_training(report, ["moewirnet-tiny", "restormer-tiny"] + (["moewirnet", "restormer"] if full else []),
                   device, patch, rounds, 10 if cuda else 1)

    seconds = time.perf_counter() - started
    print(f"\n{env}; {'quick' if args.quick else 'full'} run, {seconds:.0f} s\n")
    print(report.table())
    result = dict(device=env, cuda=cuda, quick=args.quick, seconds=round(seconds, 1), rows=report.rows)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    sys.exit(1 if any(r["status"] == "fail" for r in main()["rows"]) else 0)
