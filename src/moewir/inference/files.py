"""Restoring users' files and folders: which inputs, which outputs, and one run over them.

Photos and videos (:mod:`moewir.inference.video`) may be mixed: folders and patterns take both.

A bad input never stops the run: it is reported in one line naming the file, the others go on,
and the caller learns how many failed. Outputs are written to a temporary file and renamed, so
an interrupted or failed image leaves no partial file behind.
"""
from __future__ import annotations

import glob
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..data.io import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError, is_image_file, read_image,
                       source_traits, usable_image, writable_format, write_image)
from .restorer import Restorer
from .video import VIDEO_EXTENSIONS, VideoError, is_video_file, restore_video, usable_video

__all__ = ["Job", "Outcome", "plan_jobs", "check_outputs", "restore_files", "summarize"]

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Job:
    source: Path
    output: Path


@dataclass
class Outcome:
    """What happened to one input: ``status`` is ``restored``, ``skipped`` or ``failed``."""
    source: str
    output: str | None
    status: str
    error: str = ""
    megapixels: float = 0.0
    seconds: float = 0.0
    size: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the output does not keep (frames, bits)
    frames: int = 0  # a video's frames written (0 for a photo)


def _is_input(path: Path) -> bool:
    return path.is_file() and (is_image_file(path) or is_video_file(path))


def _expand(item: str, recursive: bool) -> list[tuple[Path, Path]] | None:
    """(file, path relative to the output folder) for one command-line item; None if nothing."""
    path = Path(item)
    if path.is_dir():
        files = path.rglob("*") if recursive else path.iterdir()
        return [(f, f.relative_to(path)) for f in sorted(files) if _is_input(f)]
    if path.exists() or not _GLOB_CHARS & set(item):
        return [(path, Path(path.name))] if path.exists() else None
    matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
    return [(m, Path(m.name)) for m in matches if _is_input(m)] or None


def plan_jobs(items: list[str], output_dir: str | Path, recursive: bool = False, suffix: str = "",
              extension: str | None = None) -> tuple[list[Job], list[Outcome]]:
    """Jobs for files, folders (their photos and videos; ``recursive`` keeps the sub-folder
    structure) and glob patterns. Output names keep the input's name and format, unless
    ``extension`` (an image format, e.g. ``".png"``: photos only, videos keep their container)
    or a name ``suffix`` is given. Items that match nothing, outputs that would
    overwrite an input, and two inputs mapping to one output come back as failed outcomes."""
    output_dir = Path(output_dir)
    jobs: list[Job] = []
    problems: list[Outcome] = []
    claimed: dict[Path, Path] = {}
    for item in items:
        found = _expand(item, recursive)
        if found is None:
            problems.append(Outcome(item, None, "failed", "no such file or folder, and no image or video matches it"))
            continue
        if not found and Path(item).is_dir():
            problems.append(Outcome(item, None, "failed", "a folder with no images or videos in it"
                                    + ("" if recursive else " (--recursive descends into sub-folders)")))
            continue
        for source, relative in found:
            ext = relative.suffix if is_video_file(source) else (extension or relative.suffix)
            out = output_dir / relative.with_name(relative.stem + suffix + ext)
            key = out.resolve()
            if key == source.resolve():
                problems.append(Outcome(str(source), str(out), "failed",
                                        "the output would overwrite the input; choose another -o or a --suffix"))
            elif key in claimed:
                if claimed[key] != source.resolve():
                    problems.append(Outcome(str(source), str(out), "failed",
                                            f"two inputs map to the same output (the other is {claimed[key]})"))
            else:
                claimed[key] = source.resolve()
                jobs.append(Job(source, out))
    return jobs, problems


def check_outputs(output_dir: str | Path, jobs: list[Job]) -> None:
    """Before any work: the output folder is not a file, and every image format can be written."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir}: -o must be a folder, and this is a file")
    for suffix in sorted({job.output.suffix.lower() for job in jobs if not is_video_file(job.source)}):
        if writable_format(suffix) is None:
            raise ValueError(f"cannot write {suffix or 'extension-less'} images (e.g. "
                             f"{next(j.output for j in jobs if j.output.suffix.lower() == suffix)}); "
                             f"choose another --format, e.g. png")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def _restore_one(restore: Callable[[np.ndarray], np.ndarray], job: Job, max_pixels: int) -> Outcome:
    started = time.perf_counter()
    try:
        image = read_image(job.source, max_pixels=max_pixels)
    except ImageReadError as exc:
        known = is_image_file(job.source) or not exc.problem.startswith("not an image")
        return Outcome(str(job.source), None, "failed", exc.problem if known else
                       f"{exc.problem}; moewir restores images ({', '.join(IMAGE_EXTENSIONS)}) and videos "
                       f"({', '.join(VIDEO_EXTENSIONS)})")
    notes = []
    frames, bits = source_traits(job.source)
    if frames > 1:
        notes.append(f"animated image with {frames} frames: only the first frame was restored")
    if bits == 16 and job.output.suffix.lower() != ".png":
        notes.append(f"16-bit input written as 8-bit {job.output.suffix} (--format png keeps 16 bits)")
    try:
        restored = restore(image)
    except RuntimeError as exc:  # e.g. out of memory on the device
        return Outcome(str(job.source), None, "failed",
                       f"restoration failed ({_first_line(exc)}); a smaller --tile needs less memory")
    try:
        write_image(job.output, restored, bits=bits)
    except (OSError, ValueError) as exc:
        return Outcome(str(job.source), str(job.output), "failed", f"cannot write the output ({exc})")
    h, w = image.shape[:2]
    return Outcome(str(job.source), str(job.output), "restored", megapixels=h * w / 1e6,
                   seconds=time.perf_counter() - started, size=[w, h], notes=notes)


def _restore_video_job(restore_tensor: Callable[[torch.Tensor], torch.Tensor], job: Job, max_pixels: int,
                       batch_size: int, crf: int, progress: bool) -> Outcome:
    started = time.perf_counter()
    try:
        info, frames, notes = restore_video(restore_tensor, job.source, job.output, batch_size=batch_size, crf=crf,
                                            max_pixels=max_pixels, progress=progress)
    except VideoError as exc:
        return Outcome(str(job.source), None, "failed", exc.problem)
    except ImportError as exc:  # PyAV is an optional extra
        return Outcome(str(job.source), None, "failed", str(exc))
    except RuntimeError as exc:  # e.g. out of memory on the device
        return Outcome(str(job.source), None, "failed",
                       f"restoration failed ({_first_line(exc)}); a smaller --tile or --batch needs less memory")
    except OSError as exc:
        return Outcome(str(job.source), str(job.output), "failed", f"cannot write the output ({exc})")
    return Outcome(str(job.source), str(job.output), "restored", megapixels=frames * info.width * info.height / 1e6,
                   seconds=time.perf_counter() - started, size=[info.width, info.height], notes=notes, frames=frames)


def restore_files(restorer: Restorer, jobs: list[Job], overwrite: bool = False,
                  max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True,
                  report: Callable[[str], None] = tqdm.write, batch_size: int = 4, crf: int = 17) -> list[Outcome]:
    """Restore every job: a photo with ``restorer.restore`` (float ``H x W x 3`` -> same), a
    video's frames ``batch_size`` at a time with ``restorer.restore_tensor`` (``(B, 3, H, W)`` ->
    same), encoded at quality ``crf``. Errors are reported one line each through ``report`` and
    recorded, never raised."""
    outcomes = []
    for job in tqdm(jobs, desc="restore", unit="file", disable=not progress, dynamic_ncols=True):
        video = is_video_file(job.source)
        if job.output.exists() and not overwrite and (usable_video if video else usable_image)(job.output):
            outcomes.append(Outcome(str(job.source), str(job.output), "skipped", "output exists (use --overwrite)"))
            continue  # an empty or corrupt output is restored again
        if video:
            outcomes.append(_restore_video_job(restorer.restore_tensor, job, max_pixels, batch_size, crf, progress))
        else:
            outcomes.append(_restore_one(restorer.restore, job, max_pixels))
        if outcomes[-1].status == "failed":
            report(f"moewir: error: {outcomes[-1].source}: {outcomes[-1].error}")
        for note in outcomes[-1].notes:
            report(f"moewir: warning: {outcomes[-1].source}: {note}")
    return outcomes


def summarize(outcomes: list[Outcome]) -> dict[str, float | int]:
    """Counts, megapixels and seconds per megapixel of one run."""
    done = [o for o in outcomes if o.status == "restored"]
    megapixels = sum(o.megapixels for o in done)
    seconds = sum(o.seconds for o in done)
    return {"restored": len(done), "skipped": sum(o.status == "skipped" for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes), "megapixels": megapixels,
            "seconds": seconds, "seconds_per_megapixel": seconds / megapixels if megapixels else 0.0}
