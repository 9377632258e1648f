"""The local web page of ``moewir serve``: upload a photo, pick the weights and the tile size,
compare before and after with a slider, download the result.

:class:`Page` holds the networks and does the work with the library's own functions (the same
reading, errors, restoration and writing as ``moewir restore``); :func:`build_app` lays it out
with Gradio (the optional extra ``moewir[web]``), imported only there. Uploads are bounded in
bytes (Gradio refuses larger files) and in pixels (checked from the header before decoding);
a bad file gets the CLI's one line, ``moewir: error: <file>: <problem>``, in the page.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.io import IMAGE_EXTENSIONS, ImageReadError, read_image, source_traits, to_uint8, write_image
from .inference import Restorer, load
from .models import DEFAULT_MODEL, list_models, needs_weights, shipped_weights

__all__ = ["TILES", "KEEP_RESULTS", "LOOPBACK", "Result", "Page", "weight_sources", "require_gradio", "build_app",
           "serve"]

#: The page's tile choices: label -> ``Restorer(tile=...)``.
TILES = {"512": 512, "256": 256, "1024": 1024, "auto": "auto", "whole image": None}
#: Result folders kept on disk (older ones are removed: a long-running page does not fill the disk).
KEEP_RESULTS = 16
#: Host names that serve only this machine.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def require_gradio():
    """The ``gradio`` module (ImportError with the install line when it is missing)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio
    except ImportError:
        raise ImportError("the web page needs Gradio: pip install 'moewir[web]'") from None
    return gradio


@dataclass
class Result:
    """One restoration for the page: the before / after images, the PNG to download, a status line."""
    before: np.ndarray | None
    after: np.ndarray | None
    download: str | None
    status: str


def weight_sources(files: list[str] | None = None) -> dict[str, str]:
    """Label -> ``moewir.load`` source: every registered model with shipped weights
    (:data:`~moewir.models.DEFAULT_MODEL` first), those that need none (``dcp``), then each
    weights file (labelled by its file name, or its path when two names clash). The first is
    the page's default."""
    shipped = [name for name in list_models() if shipped_weights(name) is not None]
    sources = {name: name for name in sorted(shipped, key=lambda name: name != DEFAULT_MODEL)}
    sources.update({name: name for name in list_models() if not needs_weights(name)})
    for file in files or []:
        label = Path(file).name if Path(file).name not in sources else str(file)
        sources[label] = str(file)
    return sources


class Page:
    """The networks behind the page (all loaded at start, so a bad weights file fails at once)
    and the one action it offers, :meth:`restore`."""

    def __init__(self, sources: dict[str, str], device: str = "auto", max_pixels: int = 50_000_000,
                 workdir: str | os.PathLike | None = None):
        if not sources:
            raise ValueError("no weights to serve: pass --weights W.safetensors")
        self.restorers = {label: load(source, device=device) for label, source in sources.items()}
        self.max_pixels = max_pixels
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="moewir-web-"))
        self._requests = 0

    @property
    def choices(self) -> list[str]:
        return list(self.restorers)

    def restore(self, upload: str | os.PathLike | None, choice: str, tile: str) -> Result:
        """Restore the uploaded file with the weights ``choice`` in tiles ``tile`` (a :data:`TILES` label)."""
        if not upload:
            return Result(None, None, None, "moewir: error: no photo uploaded")
        path = Path(upload)
        if choice not in self.restorers:
            return Result(None, None, None,
                          f"moewir: error: unknown weights {choice!r} (one of {', '.join(self.choices)})")
        if tile not in TILES:
            return Result(None, None, None, f"moewir: error: unknown tile {tile!r} (one of {', '.join(TILES)})")
        try:
            image = read_image(path, max_pixels=self.max_pixels)
        except ImageReadError as exc:
            return Result(None, None, None, f"moewir: error: {path.name}: {exc.problem}")
        base = self.restorers[choice]
        restorer = Restorer(base.network, device=base.device, tile=TILES[tile], tile_overlap=base.tile_overlap)
        started = time.perf_counter()
        try:
            restored = restorer.restore(image)
        except RuntimeError as exc:  # e.g. out of memory
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            return Result(None, None, None, f"moewir: error: {path.name}: restoration failed ({first}); "
                                            f"a smaller tile needs less memory")
        seconds = time.perf_counter() - started
        self._requests += 1  # one folder per request, numbered: names never collide, the oldest go first
        folder = Path(tempfile.mkdtemp(prefix=f"{self._requests:08d}-", dir=self.workdir))
        output = folder / f"{path.stem}_restored.png"
        write_image(output, restored, bits=source_traits(path)[1])
        self._forget_old_results()
        h, w = image.shape[:2]
        return Result(to_uint8(image), to_uint8(restored), str(output),
                      f"restored {path.name} ({w}x{h}) with {choice} on {restorer.device}, "
                      f"{'whole image' if restorer.whole_image else f'tiles {tile}'}, "
                      f"{seconds:.1f} s")


    def _forget_old_results(self) -> None:
        folders = sorted(p for p in self.workdir.iterdir() if p.is_dir())
        for old in folders[:-KEEP_RESULTS]:
            shutil.rmtree(old, ignore_errors=True)


def build_app(page: Page, max_upload_mb: float = 20):
    """The Gradio page for ``page`` (launch it with ``max_file_size=f"{max_upload_mb}mb"``)."""
    gr = require_gradio()

    def run(upload, choice, tile):
        result = page.restore(upload, choice, tile)
        slider = (result.before, result.after) if result.after is not None else None
        return slider, result.download, result.status

    # Gradio keeps a copy of every upload and result: removed hourly once an hour old
    with gr.Blocks(title="moewir: adverse-weather restoration", delete_cache=(3600, 3600)) as app:
        gr.Markdown("## moewir: remove rain, raindrops, haze, snow and night rain\n"
                    f"Upload a photo (at most {max_upload_mb:g} MB and {page.max_pixels / 1e6:g} megapixels), "
                    "pick the weights and the tile size, and restore. Drag the slider to compare; "
                    "the result downloads as PNG.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="photo", file_types=list(IMAGE_EXTENSIONS), type="filepath",
                                 elem_id="upload")
                choice = gr.Dropdown(page.choices, value=page.choices[0], label="weights", elem_id="weights")
                tile = gr.Dropdown(list(TILES), value="512", label="tile size (px)", elem_id="tile")
                button = gr.Button("Restore", variant="primary", elem_id="restore")
                status = gr.Textbox(label="status", interactive=False, elem_id="status")
                download = gr.File(label="restored (PNG)", interactive=False, elem_id="download")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="before / after", format="png", type="numpy", interactive=False,
                                        elem_id="slider")
        button.click(run, [upload, choice, tile], [slider, download, status], concurrency_limit=1)
    return app


def serve(page: Page, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 20) -> None:
    """Serve the page until interrupted (one restoration at a time)."""
    app = build_app(page, max_upload_mb)
    app.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, share=False, max_file_size=f"{max_upload_mb:g}mb",
        allowed_paths=[str(page.workdir)], ssr_mode=False, show_error=True, inbrowser=False)
