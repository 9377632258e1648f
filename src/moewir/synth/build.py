"""``moewir synth``: a paired dataset in the WeatherBench layout from clean photos.

Output: ``OUT/{train,test}/<TASK>/{input,target}/<photo>_<k>.png`` plus ``OUT/manifest.json``
and ``OUT/manifest.csv`` with every sample's generator parameters. Each sample has its own
seed derived from ``(seed, photo index, task, k)``, so the output is byte-identical for a seed
whatever the number of workers. Each photo is read once; workers take one photo at a time. A photo's samples all go to the same split (no leakage).
"""
from __future__ import annotations

import csv
import functools
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..data.io import ImageReadError, atomic_file, is_image_file, read_image, write_image
from ..metrics import psnr
from .tasks import TASKS, synthesize, task_seed

__all__ = ["default_photos", "build_dataset", "merge_datasets", "Job", "load_depth", "depth_maps",
           "fit_longer_side"]


def default_photos() -> list[Path]:
    """The embedded clean photos (public domain / CC0, see ``photos/ATTRIBUTION.txt``)."""
    folder = resources.files("moewir.synth") / "photos"
    return sorted(Path(str(p)) for p in folder.iterdir() if str(p).endswith(".jpg"))


@dataclass(frozen=True)
class Job:
    """All samples of one photo: it is read and resized once."""
    photo: Path
    photo_index: int
    samples: tuple[tuple[str, int], ...]  # (task, k)
    split: str
    seed: int
    severity: tuple[float, float]
    max_side: int | None
    depth: Path | None = None  # this photo's depth map, if the user gave a depth folder
    depth_inverse: bool = False  # the map is disparity / inverse depth (bright = near)


def _resize_to(image: np.ndarray, size: tuple[int, int], lanczos: bool = False) -> np.ndarray:
    """Resize a float ``H x W x C`` image to ``size = (H, W)`` channel by channel, in float."""
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image
    method = Image.Resampling.LANCZOS if lanczos else Image.Resampling.BILINEAR
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32)).resize((w, h), method))
                for c in range(image.shape[2])]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def fit_longer_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side``."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    return _resize_to(image, (max(1, round(h * scale)), max(1, round(w * scale))), lanczos=True)


def load_depth(path: Path, size: tuple[int, int], inverse: bool = False) -> np.ndarray:
    """A user depth map as ``H x W`` float in ``[0, 1]`` (1 = farthest), resized to ``size``.

    Any image format the reader knows (16-bit PNGs keep their precision). The map is
    normalised by its own range; ``inverse`` flips disparity-style maps (bright = near).
    """
    depth = _resize_to(read_image(path), size).mean(axis=2)
    low, high = float(depth.min()), float(depth.max())
    if high - low < 1e-6:
        raise ValueError(f"{path}: depth map is constant")
    depth = (depth - low) / (high - low)
    return 1.0 - depth if inverse else depth


def depth_maps(folder: str | Path, photos: list[Path]) -> dict[Path, Path]:
    """Match a depth map to every photo by file stem; one error lists photos without one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: --depth must be a folder of depth maps named like the photos")
    maps = {p.stem: p for p in folder.rglob("*") if p.is_file() and is_image_file(p)}
    missing = [p.name for p in photos if p.stem not in maps]
    if missing:
        raise ValueError(f"{folder}: no depth map for {len(missing)} of {len(photos)} photos "
                         f"(first: {', '.join(missing[:5])})")
    return {p: maps[p.stem] for p in photos}


def _run(job: Job, skip_bad: bool = False) -> list[dict] | ImageReadError:
    """The samples of one photo; with ``skip_bad`` an unreadable photo is returned as its error."""
    try:
        clean = fit_longer_side(read_image(job.photo), job.max_side)
    except ImageReadError as exc:
        if not skip_bad:
            raise
        return exc
    depth = load_depth(job.depth, clean.shape[:2], job.depth_inverse) if job.depth else None
    results = []
    for task, k in job.samples:
        rng = np.random.default_rng(task_seed(job.seed, job.photo_index, task, k))
        severity = float(rng.uniform(*job.severity))
        degraded, target, params = synthesize(clean, task, rng, severity, depth)
        results.append({"task": task, "sample": k, "degraded": degraded, "target": target, "params": params})
    return results


def _input_psnr(degraded: np.ndarray, target: np.ndarray) -> float:
    """PSNR of a sample's input against its target: every RGB channel of the float images, not
    rounded to 8-bit levels first (``inf`` where the task left the photo unchanged)."""
    def chw(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).permute(2, 0, 1)
    return psnr(chw(degraded), chw(target), crop_border=0, y_channel=False, quantize=False).item()


def build_dataset(out: str | Path, tasks: list[str], clean: list[Path] | None = None, per_image: int = 1,
                  seed: int = 0, split: float = 0.9, workers: int = 0,
                  severity: tuple[float, float] = (0.2, 1.0), max_side: int | None = None,
                  progress: bool = True, depth: str | Path | None = None,
                  depth_inverse: bool = False, skip_bad: bool = False,
                  on_skip: Callable[[ImageReadError], None] | None = None) -> list[dict]:
    """Write the dataset; returns the manifest records.

    ``depth`` is a folder of depth maps named like the photos (any image format, larger =
    farther, or nearer when ``depth_inverse``); haze then uses them instead of the depth proxy.
    An unreadable photo raises :class:`ImageReadError` (from worker processes too); with
    ``skip_bad`` it is left out and passed to ``on_skip``.
    """
    TASKS.require(tasks)
    if not 0.0 < split <= 1.0:
        raise ValueError(f"--split must be in (0, 1], got {split}")
    if not 0.0 <= severity[0] <= severity[1] <= 1.0:
        raise ValueError(f"severity range must satisfy 0 <= low <= high <= 1, got {severity}")
    photos = sorted(clean) if clean else default_photos()
    if not photos:
        raise ValueError("no clean photos given")
    order = np.random.default_rng(seed).permutation(len(photos))
    n_test = 0 if split >= 1.0 or len(photos) < 2 else max(1, round(len(photos) * (1 - split)))
    test = {int(i) for i in order[:n_test]}
    samples = tuple((t, k) for t in tasks for k in range(per_image))
    depth_of = depth_maps(depth, photos) if depth else {}
    jobs = [Job(p, i, samples, "test" if i in test else "train", seed, severity, max_side,
                depth_of.get(p), depth_inverse) for i, p in enumerate(photos)]
    out = Path(out)
    records = []
    # spawn, not fork: forking a process whose torch/OpenMP threads are running can deadlock
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 0 else None
    try:
        run = functools.partial(_run, skip_bad=skip_bad)
        results = pool.map(run, jobs) if pool else map(run, jobs)
        with tqdm(total=len(jobs) * len(samples), desc="synth", unit="img", disable=not progress) as bar:
            for job, photo_results in zip(jobs, results):
                if isinstance(photo_results, ImageReadError):
                    if on_skip:
                        on_skip(photo_results)
                    bar.update(len(samples))
                    continue
                for res in photo_results:
                    rel = f"{job.split}/{res['task'].upper()}"
                    name = f"{job.photo.stem}_{res['sample']:02d}.png"
                    write_image(out / rel / "input" / name, res["degraded"])
                    write_image(out / rel / "target" / name, res["target"])
                    records.append({"split": job.split, "task": res["task"], "input": f"{rel}/input/{name}",
                                    "target": f"{rel}/target/{name}", "source": str(job.photo),
                                    "psnr": round(_input_psnr(res["degraded"], res["target"]), 4),
                                    "params": res["params"]})
                    bar.update()
    finally:
        if pool:
            pool.shutdown()
    _write_manifests(out, {"seed": seed, "tasks": tasks, "per_image": per_image, "split": split,
                           "severity": list(severity)}, records)
    return records


def merge_datasets(out: str | Path, parts: list[str | Path]) -> list[dict]:
    """Hard-link (or copy) the pairs of several ``moewir synth`` datasets into one; returns the
    merged manifest records.

    Every part keeps its files byte for byte and its records (each gains ``part``, the index of
    the dataset it came from). This is how a dataset grows without changing its test pairs: the
    pairs of a photo are seeded by its index in the sorted photo list, so re-synthesising with
    more photos would give the old photos new weather; build the new photos as their own dataset
    (``split=1.0`` for train only) and merge it with the old one. ``out`` must be new or empty.
    Two parts with a photo of the same name, a part without ``manifest.json`` or a file its
    manifest lists but that is missing is an error naming it, raised before anything is written.
    """
    out, parts = Path(out), [Path(p) for p in parts]
    if not parts:
        raise ValueError(f"{out}: merge_datasets needs at least one dataset to merge")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: exists and is not empty; merge into a new folder (stale pairs would be read)")
    for part in parts:
        if out.resolve().is_relative_to(part.resolve()) or part.resolve().is_relative_to(out.resolve()):
            raise ValueError(f"{out}: the merged dataset must be a new folder, not one of the parts or inside one")
    manifests, records, origin, photos = [], [], {}, {}
    for index, part in enumerate(parts):
        try:
            manifest = json.loads((part / "manifest.json").read_text())
            if not isinstance(manifest.get("samples"), list):
                raise ValueError("no 'samples' list")
        except (OSError, ValueError, AttributeError) as exc:
            raise ValueError(f"{part}: not a moewir synth dataset (manifest.json: {exc})") from None
        for record in manifest["samples"]:
            if not all(isinstance(record.get(key), str) for key in ("input", "target", "source")):
                raise ValueError(f"{part / 'manifest.json'}: a sample without input, target and source: {record}")
            photo = Path(record["source"]).stem
            if photos.setdefault(photo, part) != part:
                raise ValueError(f"{part / 'manifest.json'}: photo {photo!r} is also in {photos[photo]}; "
                                 f"merged datasets need distinct photo names")
            for key in ("input", "target"):
                if not (part / record[key]).is_file():
                    raise ValueError(f"{part / record[key]}: listed in {part / 'manifest.json'} but missing")
                if record[key] in origin:
                    raise ValueError(f"{part / record[key]}: also in {origin[record[key]]}; "
                                     f"merged datasets need distinct photo names")
                origin[record[key]] = part
            records.append({**record, "part": index})
        manifests.append({"root": str(part), **{k: v for k, v in manifest.items() if k != "samples"}})
    for record in records:
        for key in ("input", "target"):
            source, target = origin[record[key]] / record[key], out / record[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(source, target)
    tasks = list(dict.fromkeys(t for m in manifests for t in m.get("tasks", [])))
    _write_manifests(out, {"tasks": tasks, "parts": manifests}, records)
    return records


def _write_manifests(out: Path, header: dict, records: list[dict]) -> None:
    """``manifest.json`` (``header`` plus the records as ``samples``) and ``manifest.csv``."""
    with atomic_file(out / "manifest.json", "w") as f:
        json.dump({**header, "samples": records}, f, indent=1, sort_keys=True)
    with atomic_file(out / "manifest.csv", "w") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "task", "input", "target", "source", "psnr", "severity", "params"])
        for r in records:
            writer.writerow([r["split"], r["task"], r["input"], r["target"], r["source"], r["psnr"],
                             r["params"]["severity"], json.dumps(r["params"], sort_keys=True)])


def clean_photos(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: --clean must be a folder of photos")
    photos = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))
    if not photos:
        raise ValueError(f"{folder}: no images found")
    return photos
