"""``moewir serve [--port 7860] [--host 127.0.0.1] [--weights W ...]``: the local web page (Gradio)."""
from __future__ import annotations

import argparse
import sys

from .options import WEIGHTS_FILES, add_device_option

HELP = "serve a local web page to restore photos (upload, before/after slider, download)"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("serve", help=HELP, description=HELP + "; needs the extra moewir[web] (Gradio). "
                              "See docs/inference.md.")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves the network)")
    p.add_argument("--weights", metavar="W", action="append", default=[],
                   help=f"{WEIGHTS_FILES}, offered besides the shipped weights (repeatable)")
    add_device_option(p)
    p.add_argument("--max-upload-mb", type=float, default=20, metavar="MB", help="largest upload (default 20)")
    p.add_argument("--max-megapixels", type=float, default=50, help="refuse larger photos (default 50)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..web import LOOPBACK, Page, require_gradio, serve, weight_sources

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_megapixels <= 0:
        raise ValueError("--max-upload-mb and --max-megapixels must be > 0")
    try:
        require_gradio()  # before the networks load
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    page = Page(weight_sources(args.weights), device=args.device, max_pixels=int(args.max_megapixels * 1e6))
    if args.host not in LOOPBACK:
        print(f"moewir: warning: serving on {args.host}: other machines can reach the page", file=sys.stderr)
    print(f"moewir serve: http://{args.host}:{args.port}  ({', '.join(page.choices)}; Ctrl-C stops)")
    serve(page, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb)
    return 0
