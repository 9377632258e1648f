"""Optional fast paths for ``moewir restore`` (issue 16, item 3), measured side by side.

    python bench/restore_backends.py [--models moewirnet-tiny] [--size 512] [--threads 2]
                                     [--rounds 5] [--backends eager compile bf16 onnxruntime]
                                     [--json bench/results/restore_backends.json] [--quick]

One tile of ``moewir restore`` (``1 x 3 x size x size``, the shipped weights for
``moewirnet-tiny``, random weights otherwise) through each backend, timed in this one process
with :func:`moewir.profiling.interleaved` (every round times each backend in turn; the ratio to
eager fp32 is taken within each round; the table gives the median over rounds and the lowest
and highest round):

* ``eager``: ``torch.inference_mode()``, float32 (what ``moewir restore`` does);
* ``compile``: ``torch.compile(network)`` (default mode, static shapes), its compile time
  reported apart (the first call);
* ``bf16``: ``torch.autocast("cpu", torch.bfloat16)`` around the eager forward;
* ``onnxruntime``: the ``moewir export`` graph (optimised) in an onnxruntime CPU session with
  ``--threads`` intra-op threads, its export time reported apart.

Each backend's output is compared with eager fp32's (largest absolute difference on the
[0, 1] image, and PSNR of one against the other). ``--quick`` shrinks everything so the tests
run it in seconds (its numbers mean nothing).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

import moewir
from moewir.profiling import interleaved, machine_description
from moewir.tables import markdown_table

BACKENDS = ("eager", "compile", "bf16", "onnxruntime")


def _eager(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x):
        with torch.inference_mode():
            return net(x)
    return run


def _bf16(net):
    def run(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x).float()
    return run


def _compiled(net):
    compiled = torch.compile(net, dynamic=False)
    return _eager(compiled)


def _onnxruntime(net, size: int, threads: int):
    import onnxruntime as ort

    from moewir.inference.export import INPUT_NAME, onnx_model_bytes
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_model_bytes(net, example_size=(size, size)), options,
                                   providers=["CPUExecutionProvider"])

    def run(x):
        return torch.from_numpy(session.run(None, {INPUT_NAME: x.numpy()})[0])
    return run


def build(name: str, net: torch.nn.Module, size: int, threads: int):
    if name == "eager":
        return _eager(net)
    if name == "bf16":
        return _bf16(net)
    if name == "compile":
        return _compiled(net)
    if name == "onnxruntime":
        return _onnxruntime(net, size, threads)
    raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def measure(model: str, backends: list[str], size: int, threads: int, rounds: int) -> list[dict]:
    net = (moewir.load(model).network if model == "moewirnet-tiny" else moewir.create_model(model)).eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    reference = _eager(net)(x)
    calls, rows = {}, {}
    for name in backends:
        start = time.perf_counter()
        try:
            fn = build(name, net, size, threads)
            out = fn(x)  # the first call: compilation for torch.compile
        except Exception as exc:  # a backend that cannot run here is reported, not fatal
            rows[name] = {"model": model, "backend": name, "error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        rows[name] = {"model": model, "backend": name, "setup_s": round(time.perf_counter() - start, 1),
                      "max_abs_diff": float((out.clamp(0, 1) - reference.clamp(0, 1)).abs().max()),
                      "psnr_vs_eager": round(psnr(out, reference), 2)}
        calls[name] = lambda fn=fn: fn(x)
    seconds = interleaved(calls, rounds=rounds, warmup=1)
    for name, times in seconds.items():
        ratios = [t / e for t, e in zip(times, seconds["eager"])] if "eager" in seconds else []
        rows[name] |= {"median_s": round(statistics.median(times), 3),
                       "ratio_to_eager": round(statistics.median(ratios), 3) if ratios else None,
                       "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)] if ratios else None}
    return [rows[name] for name in backends]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["moewirnet-tiny"])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the tests")
    args = parser.parse_args(argv)
    if "eager" not in args.backends:
        args.backends.insert(0, "eager")
    if args.quick:
        args.size, args.rounds = 80, 1
    torch.set_num_threads(args.threads)
    rows = [row for model in args.models for row in measure(model, args.backends, args.size, args.threads, args.rounds)]
    header = ["model", "backend", "time / eager (median, range)", "setup s", "max |diff|", "PSNR vs eager"]
    table = [[r["model"], r["backend"], r.get("error") or f"{r['ratio_to_eager']:.2f} ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})",
              r.get("setup_s", ""), f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "",
              r.get("psnr_vs_eager", "")] for r in rows]
    print(f"{machine_description()}, torch {torch.__version__}, 1 x 3 x {args.size}², {args.rounds} rounds")
    print(markdown_table(header, table))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_description(), "torch": torch.__version__,
                                         "size": args.size, "rounds": args.rounds, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
