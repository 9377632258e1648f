"""Entry point of the ``moewir`` console script.

A ``ValueError`` or ``OSError`` (a bad option, file or config) is printed as one line,
``moewir: error: ...``, with exit status 2; ``moewir --debug ...`` or the environment variable
``MOEWIR_DEBUG=1`` prints its full traceback before that line.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from .. import __version__
from . import ablate, convert, demo, distill, evaluate, export, profile, restore, serve, synth, train

#: Sub-command modules; each provides ``add_parser(subparsers)`` and sets ``run``.
COMMANDS = (demo, profile, synth, train, ablate, evaluate, restore, serve, export, convert, distill)
#: Set to anything but "" or "0", it works like ``--debug``.
DEBUG_VARIABLE = "MOEWIR_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moewir",
        description="All-in-one adverse-weather image restoration (MOE-WIRNet): restore photos and videos with "
                    "the shipped or your own weights (or in a local web page), synthesize paired weather data, "
                    "distill real-rain training data, train, run the paper's ablations, evaluate, export to ONNX, "
                    "convert the baselines' official checkpoints and profile networks.")
    parser.add_argument("--version", action="version", version=f"moewir {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the full traceback, not only the one-line message "
                             f"(also: {DEBUG_VARIABLE}=1)")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _debugging(args: argparse.Namespace) -> bool:
    return args.debug or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0
    except (ValueError, OSError) as exc:
        if _debugging(args):
            traceback.print_exc()
        print(f"moewir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _debugging(args):
            traceback.print_exc()
        print("moewir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
