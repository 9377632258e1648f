"""Entry point of the ``moewir`` console script."""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import ablate, demo, distill, evaluate, export, profile, restore, synth, train

#: Sub-command modules; each provides ``add_parser(subparsers)`` and sets ``run``.
COMMANDS = (demo, profile, synth, train, ablate, evaluate, restore, export, distill)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moewir",
        description="All-in-one adverse-weather image restoration (MOE-WIRNet): "
                    "profile, and later synthesize, train, evaluate and restore.")
    parser.add_argument("--version", action="version", version=f"moewir {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0
    except (ValueError, OSError) as exc:
        print(f"moewir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("moewir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
