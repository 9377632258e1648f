"""moewir's Restormer and PromptIR against the official architecture code, on the official
checkpoint formats.

    python bench/official_parity.py --restormer PATH/restormer_arch.py --promptir PATH/model.py \
        [--sizes 64x64 61x83] [--json FILE]

The official files are not part of moewir: pass your own copies (github swz30/Restormer,
``basicsr/models/archs/restormer_arch.py``; github va1shn9v/PromptIR, ``net/model.py``). Without
either argument the script says so and exits 0. For each network (Restormer with ``WithBias``
and with ``BiasFree`` LayerNorms, PromptIR with its prompt decoder) at the paper's size it

1. builds the official network with random weights (norm weights, biases and attention
   temperatures perturbed too, so that every parameter matters),
2. saves them in the release's format: ``{"params": state_dict}`` for Restormer, a Lightning
   checkpoint (``state_dict`` with ``net.`` prefixes, plus epoch/loop/optimizer entries) for
   PromptIR,
3. loads that file with ``moewir.load(path, model=...)`` and compares ``Restorer.restore`` with
   the official network run as the official test scripts run it (reflect-pad the bottom and
   right to a multiple of 8, crop back, clamp to [0, 1]),

and prints the largest absolute difference per size: of the restored images (float32), and of
the raw network outputs (unclamped) in float32 and, with both networks cast to float64, in
float64, which separates float rounding from a real difference.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import moewir
from moewir.tables import markdown_table


def import_file(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def perturb(network: torch.nn.Module, seed: int) -> None:
    """Random values for the parameters the official init sets to constants."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in network.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith("temperature") or (p.ndim == 1 and name.endswith("weight")):
                p.copy_(1 + 0.2 * noise)
            elif p.ndim == 1:  # biases (norms, the prompt weights' Linear)
                p.copy_(0.1 * noise)


def official_forward(network: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """As the official test scripts: reflect-pad bottom/right to a multiple of 8, run, crop."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (0, (8 - w % 8) % 8, 0, (8 - h % 8) % 8), mode="reflect")
    with torch.no_grad():
        return network(padded)[..., :h, :w]


def save_release(network: torch.nn.Module, family: str, path: Path) -> None:
    state = network.state_dict()
    if family == "restormer":
        torch.save({"params": state}, path)
    else:  # what Lightning writes, with the network under the LightningModule's ``net``
        torch.save({"epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.0.1",
                    "state_dict": {f"net.{k}": v for k, v in state.items()},
                    "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 1}}}},
                    "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_path": "", "kth_value":
                                                                       torch.tensor(float("inf"))}},
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999),
                                                                         "params": [0]}]}],
                    "lr_schedulers": [{"base_lrs": [2e-4], "last_epoch": 0}]}, path)


def compare(official: torch.nn.Module, family: str, model: str, sizes, seed: int, folder: Path) -> list[dict]:
    perturb(official, seed)
    official.eval()
    path = folder / f"{model}_{family}.pth"
    save_release(official, family, path)
    ours = moewir.load(path, model=model, device="cpu", tile=None)
    rows = []
    for h, w in sizes:
        image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed + h * w))
        theirs = official_forward(official, image)
        restored = (ours.restore_tensor(image) - theirs.clamp(0, 1)).abs().max().item()
        with torch.no_grad():
            raw32 = (ours.network(image) - theirs).abs().max().item()
        official.double()
        ours.network.double()
        with torch.no_grad():
            raw64 = (ours.network(image.double()) - official_forward(official, image.double())).abs().max().item()
        official.float()
        ours.network.float()
        rows.append({"network": family, "layer_norm": ours.network.config.layer_norm, "size": f"{h}x{w}",
                     "restore_float32": restored, "forward_float32": raw32, "forward_float64": raw64,
                     "official_output_range": [round(theirs.min().item(), 3), round(theirs.max().item(), 3)]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restormer", metavar="restormer_arch.py", help="the official Restormer architecture file")
    parser.add_argument("--promptir", metavar="model.py", help="the official PromptIR architecture file (net/model.py)")
    parser.add_argument("--sizes", nargs="+", default=["64x64", "61x83"], metavar="HxW")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if not args.restormer and not args.promptir:
        print("official_parity: no official architecture file given (--restormer, --promptir); nothing compared")
        return 0
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    torch.manual_seed(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.restormer:
            arch = import_file(args.restormer, "official_restormer_arch")
            for norm in ("WithBias", "BiasFree"):
                rows += compare(arch.Restormer(LayerNorm_type=norm), "restormer", "restormer", sizes, args.seed,
                                Path(tmp))
        if args.promptir:
            arch = import_file(args.promptir, "official_promptir_model")
            rows += compare(arch.PromptIR(decoder=True), "promptir", "promptir", sizes, args.seed, Path(tmp))
    print(markdown_table(["network", "LayerNorm", "size", "restore, float32", "forward, float32",
                          "forward, float64", "official output range"],
                         [[r["network"], r["layer_norm"], r["size"], f"{r['restore_float32']:.1e}",
                           f"{r['forward_float32']:.1e}", f"{r['forward_float64']:.1e}",
                           str(r["official_output_range"])] for r in rows]))
    print("\nmax |ours - official|; restore: moewir.load(...).restore_tensor against the official output "
          "clamped to [0, 1]; forward: the networks' raw outputs")
    if args.json:
        Path(args.json).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
