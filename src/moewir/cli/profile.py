"""``moewir profile``: parameters, GMACs, latency and peak memory of a registered model, or with
``--health`` its residual stream and gradient distribution (:mod:`moewir.health`)."""
from __future__ import annotations

import argparse
import json

import torch

from ..health import default_pair, format_health, health
from ..models import build_from_weights, create_model
from ..profiling import ProfileResult, profile
from ..tables import markdown_table
from .options import add_device_option, add_model_option, add_set_option, add_weights_option, parse_overrides

HELP = "measure parameters, GMACs, latency and peak memory of a model"
#: The model profiled when no --model is given.
DEFAULT_PROFILED = "moewirnet"


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {text!r}") from None
    if min(size) < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return size


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("profile", help=HELP, description=HELP + ". MACs count convolutions, "
                              "attention matrix products, FFTs and top-k selection (see docs/profiling.md).")
    add_model_option(p, f"built with random weights (default {DEFAULT_PROFILED}; --seed with --health)",
                     "with --weights (--health only), needed only for files without moewir metadata")
    p.add_argument("--size", type=_size, default=None, metavar="N|HxW",
                   help="input height and width (default: 256; 128 with --health)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    p.add_argument("--runs", type=int, default=10, help="timed forward passes; the median is reported (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed passes before timing (default: 2)")
    add_device_option(p)
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-macs", action="store_true", help="skip the MAC count (slow on very large inputs)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--health", action="store_true",
                   help="instead: per block, the stream RMS, branch/stream ratios and each expert's share of "
                        "its MoE module's gradient, for one synthesized rain pair at --size (default 128 here)")
    add_weights_option(p, "with --health: a trained .safetensors file instead of a fresh network")
    p.add_argument("--seed", type=int, default=0, help="with --health: seed of the fresh network (default: 0)")
    add_set_option(p, "model config")
    p.set_defaults(run=run)


def format_result(r: ProfileResult) -> str:
    lines = [markdown_table(
        ["model", "input", "params (M)", "GMACs", "latency (ms)", "peak memory (MB)", "device"],
        [[r.model, f"{r.batch}x{r.size[0]}x{r.size[1]}", f"{r.params / 1e6:.2f}", f"{r.gmacs:.2f}",
          f"{r.latency_ms:.1f}", f"{r.peak_memory_mb:.0f}", f"{r.device} ({r.threads} threads)"]], align="llrrrrl")]
    if r.macs_by_op:
        lines += ["", "GMACs by operator: " + ", ".join(f"{op} {v:.2f}" for op, v in
                                                      sorted(r.macs_by_op.items(), key=lambda kv: -kv[1]))]
    lines.append(f"latency: median of {r.latency_runs} runs")
    return "\n".join(lines)


def run_health(args: argparse.Namespace) -> int:
    if args.weights:
        if args.set:
            raise ValueError("--set changes a fresh --model; a weights file carries its own config")
        model = build_from_weights(args.weights, args.model)
    else:
        torch.manual_seed(args.seed)
        model = create_model(args.model or DEFAULT_PROFILED, **parse_overrides(args.set))
    size = args.size or (128, 128)
    if size[0] != size[1]:
        raise ValueError("--health needs a square --size")
    report = health(model, *default_pair(size[0]))
    print(json.dumps(report.as_dict(), indent=2) if args.json else format_health(report))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.health:
        return run_health(args)
    if args.weights:
        raise ValueError("--weights goes with --health")
    if args.batch < 1 or args.runs < 1 or args.warmup < 0:
        raise ValueError("--batch and --runs must be at least 1 and --warmup at least 0")
    model = create_model(args.model or DEFAULT_PROFILED, **parse_overrides(args.set))
    result = profile(model, args.size or (256, 256), batch=args.batch, runs=args.runs, warmup=args.warmup,
                     device=args.device, count=not args.no_macs)
    print(json.dumps(result.as_dict(), indent=2) if args.json else format_result(result))
    return 0
