"""Options and argument types shared by several sub-commands.

``--model NAME`` means the same in every command that takes it: a registered model, by name
(:func:`moewir.list_models`), the network architecture. A weights file written by ``moewir
train`` names its own architecture, so next to ``--weights`` ``--model`` is needed only for
files without moewir metadata; an official Restormer or PromptIR release (``.pth`` / ``.ckpt``)
names its family itself, and ``--model`` then picks a size of it (default: the release's).
Each command's help says which weights it runs when no ``--weights`` is given (``restore``: the model's shipped weights; ``export`` and ``profile``:
random weights).
"""
from __future__ import annotations

import argparse
from typing import Any

import yaml

from ..models import list_models
from ..yamlfiles import load_yaml


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["dim=24", "num_blocks=[1,1,1,2]"]`` -> ``{"dim": 24, "num_blocks": [1, 1, 1, 2]}``.

    Values are read as YAML, so numbers (``5e-4`` too), booleans, lists and strings all work.
    """
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = load_yaml(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {key}: cannot read value {value!r}: {exc.problem}") from None
    return overrides


def add_set_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help=f"override a {what} option (repeatable; values are YAML, "
                             "e.g. --set window_size=16 --set experts=[channel,spatial])")


def add_model_option(parser: argparse.ArgumentParser, without_weights: str, with_weights: str | None = None,
                     default: str | None = None) -> None:
    """``--model NAME`` (see the module docstring). ``without_weights`` says what the command
    does with the model when no weights file is given; ``with_weights`` replaces the sentence
    about files without metadata, for commands whose ``--weights`` differs."""
    with_weights = with_weights or ("with --weights, needed only for files without moewir metadata (for an "
                                    "official Restormer / PromptIR release: a size of its family, default the "
                                    "release's)")
    parser.add_argument("--model", metavar="NAME", default=default,
                        help=f"registered model (the architecture), one of: {', '.join(list_models())}. "
                             f"Without --weights: {without_weights}; {with_weights}")


#: What ``--weights`` / ``--compare`` take.
WEIGHTS_FILES = ("weights written by `moewir train` or `moewir convert`, an official Restormer (.pth) / "
                 "PromptIR (.ckpt) release, or a registered model name: its shipped weights (the classical "
                 "`dcp` and `mgf` need none)")


def add_weights_option(parser: argparse.ArgumentParser, what: str = WEIGHTS_FILES) -> None:
    parser.add_argument("--weights", metavar="W", help=what)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then the CPU), cpu, cuda, "
                                                         "cuda:N or mps")


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run a network on users' images."""
    parser.add_argument("--tile", default="512", metavar="PX|auto",
                        help="restore in windows of at most PX x PX to bound memory (0: whole image at once; "
                             "auto: whole image when it fits in memory, else the largest windows up to 512 that "
                             "fit; default 512)")
    parser.add_argument("--tile-overlap", type=int, default=32, metavar="PX", help="window overlap (default 32)")
    add_device_option(parser)
    parser.add_argument("--half", action="store_true",
                        help="half precision: float16 autocast on CUDA/MPS, bfloat16 on the CPU")
    parser.add_argument("--self-ensemble", action="store_true",
                        help="average the restorations of the 8 flips and quarter turns (8x the time)")


def parse_tile(text: str) -> int | str | None:
    """``--tile``: ``"auto"``, ``0`` (no tiles: ``None``) or a whole number of pixels >= 16."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    try:
        tile = int(value)
    except ValueError:
        tile = -1
    if tile == 0:
        return None
    if tile < 16:
        raise ValueError(f"--tile must be a whole number of pixels >= 16, 0 (no tiles) or auto, got {text!r}")
    return tile
