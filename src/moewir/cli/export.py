"""``moewir export (--weights W.safetensors | --model NAME) --onnx OUT.onnx [--opset N] [--size H W] [--check]``.

See ``docs/export.md``; the work is done by :mod:`moewir.inference.export`.
"""
from __future__ import annotations

import argparse

from ..inference.export import DEFAULT_OPSET, MIN_EXAMPLE_SIZE, MIN_OPSET
from ..models import list_models, model_spec, needs_weights
from .options import add_model_option, add_weights_option

HELP = "export a network to ONNX (dynamic batch, height and width)"


def _dimension(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {value}")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help=HELP,
        description=HELP + ". Input 'image': (B, 3, H, W) float32 RGB in [0, 1]; output 'restored': the "
                    "same shape, float32, not clamped. Needs the optional packages onnx, onnxscript and "
                    "onnxruntime (pip install 'moewir[onnx]'); see docs/export.md.")
    add_weights_option(p)
    add_model_option(p, "export it with RANDOM weights (to try the export, not to restore photos)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    p.add_argument("--size", type=_dimension, nargs=2, default=(256, 256), metavar=("H", "W"),
                   help=f"size of the example input the graph is traced with, at least {MIN_EXAMPLE_SIZE}; "
                        "the exported graph accepts any size from 5x5 on (default 256 256)")
    p.add_argument("--check", action="store_true",
                   help="before writing, run the model with onnxruntime at another, non-multiple-of-8 "
                        "size with batch 2 and compare with PyTorch; nothing is written if they differ")
    p.add_argument("--atol", type=float, default=1e-3,
                   help="largest absolute difference --check accepts (default 1e-3)")
    p.add_argument("--no-optimize", action="store_true",
                   help="skip onnxscript's graph optimiser: a much faster export (moewirnet: 2.5 instead of 12 "
                        "minutes), a model that runs a little slower")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inference import load
    from ..inference.export import INPUT_NAME, MIN_SIZE, OUTPUT_NAME, export_onnx, require_onnx

    if not args.weights and not args.model:
        raise ValueError("give the weights to export (--weights W.safetensors), or --model NAME to "
                         "export a randomly initialised network")
    classical = args.weights or args.model  # a registered name given as --weights loads that model
    if classical in list_models() and not needs_weights(classical):
        raise ValueError(f"{classical} is a classical method with no learned weights; moewir does not export "
                         f"those to ONNX. Restore with it directly: moewir restore PHOTOS -o OUT --model {classical}")
    try:
        require_onnx(runtime=args.check)
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    if args.weights:
        network = load(args.weights, device="cpu", tile=None, model=args.model).network
        origin = f"weights {args.weights}"
    else:
        network = load(args.model, device="cpu", tile=None, pretrained=False).network
        origin = "RANDOM weights: untrained, to test the export, not to restore photos"
    report = export_onnx(network, args.onnx, args.opset, args.size, verify=args.check, atol=args.atol,
                         metadata={"moewir.weights": str(args.weights) if args.weights else "random (untrained)"},
                         optimize=not args.no_optimize)
    print(f"exported {model_spec(network)[0]} ({origin}) to {report.path}: {report.num_bytes / 1e6:.1f} MB, opset "
          f"{report.opset}, traced at {args.size[0]}x{args.size[1]} in {report.seconds:.1f} s")
    print(f"input '{INPUT_NAME}': (batch, 3, height, width) float32 RGB in [0, 1], height and width >= "
          f"{MIN_SIZE}; output '{OUTPUT_NAME}': same shape, float32, not clamped (clamp to [0, 1])")
    for (h, w), diff in report.checks:
        print(f"check: onnxruntime vs PyTorch at 2x3x{h}x{w}: max abs diff {diff:.2e} (accepted up to "
              f"{args.atol:g})")
    return 0
