"""Argument types shared by several sub-commands."""
from __future__ import annotations

import argparse
from typing import Any

import yaml

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
