"""``moewir convert IN [--model NAME] -o OUT.safetensors``: an official Restormer / PromptIR release
(or any weights file moewir reads) as a moewir weights file; see ``docs/evaluation.md``."""
from __future__ import annotations

import argparse

from ..models import list_models, model_spec

HELP = "convert an official Restormer or PromptIR checkpoint into a moewir weights file"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help=HELP,
        description=HELP + " (.safetensors with the model name and config in its metadata, which every "
                    "command then reads without --model). The release is read with torch.load(weights_only=True): "
                    "no code in it runs. See docs/evaluation.md.")
    p.add_argument("source", metavar="IN", help="Restormer .pth ({'params': ...}), PromptIR Lightning .ckpt, "
                                                "or a moewir .safetensors")
    p.add_argument("--model", metavar="NAME",
                   help=f"registered model (the architecture), one of: {', '.join(list_models())}; for a release, "
                        "a size of its family (default: the release's own, restormer or promptir; the family and "
                        "the LayerNorm type are read from the file)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="the weights file to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models import convert_weights

    network = convert_weights(args.source, args.output, args.model)
    name, config = model_spec(network)
    parameters = sum(p.numel() for p in network.parameters())
    print(f"converted {args.source} to {args.output}: {name} ({parameters / 1e6:.2f}M parameters"
          + (f", layer_norm {config['layer_norm']}" if "layer_norm" in config else "") + ")")
    return 0
