"""Make the data for moewir's shipped default weights, and ship a trained checkpoint.

    python bench/default_weights.py data  [--out data/default]          # photos -> synthesized pairs
    python bench/default_weights.py data-v2 --debian ROOT [--out data/v2]  # more photos, same test pairs
    moewir train configs/default_weights.yml                            # [--resume] across sessions
    python bench/default_weights.py ship  [--experiment experiments/default_weights]
    python bench/default_weights.py curves --experiment E [E ...] [--plot FILE]  # validation curves

``data`` gathers clean photos that need no download: scikit-image's bundled colour photos and
the photographs of the Debian packages ``lomiri-wallpapers-16.04``, ``lomiri-wallpapers-20.04``
and ``mate-backgrounds`` (``apt-get download`` them and ``dpkg-deb -x`` into ``--debian``, or
install them: ``/usr/share/backgrounds``). Abstract and desktop-pattern wallpapers are left
out; sources and licences are listed in ``docs/model_card.md``. Photos are downscaled to a
longer side of 768 px and made into haze, rain, snow, raindrop and night-rain pairs by
``moewir synth`` with a held-out photo split for validation.

``data-v2`` adds the photographs of twelve more Debian packages (``EXTRA_PACKAGES``: streets,
vehicles, buildings, people, close-ups; ``docs/model_card.md``) as training pairs only and
merges them with ``data/default``, whose test pairs stay byte for byte what they were, so
numbers on the held-out photos stay comparable. The photos with real weather in them
(``REAL_WEATHER``) are kept out of training: they are the real-weather test set.

``ship`` copies the experiment's latest EMA weights into ``src/moewir/pretrained/`` (the
model name and config travel in the safetensors metadata) and prints the validation table for
the model card.

``curves`` prints the validation PSNR per task and iteration of one or more experiments (their
``val_log.csv``) beside the unrestored input and the dark channel prior on the same crops, and
draws one panel per task and one for the mean (``--plot``; needs matplotlib).
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import yaml
from PIL import Image

from moewir.models import build_from_weights, model_spec, save_weights
from moewir.synth.build import build_dataset, merge_datasets
from moewir.training.checkpoint import latest_checkpoint

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["haze", "rain", "snow", "raindrop", "nightrain"]
#: scikit-image's bundled colour photographs (the others are grey, scientific or synthetic).
SKIMAGE_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"]
#: Wallpaper folders that hold photographs (``mate/abstract`` and ``mate/desktop`` do not).
WALLPAPER_GLOBS = ["*.jpg", "mate/nature/*.jpg"]


def gather_photos(debian: Path, into: Path) -> list[Path]:
    """Copy the clean photos into one folder (names prefixed by source) and return them."""
    import skimage

    into.mkdir(parents=True, exist_ok=True)
    found = [(Path(skimage.__file__).parent / "data" / name, "skimage") for name in SKIMAGE_PHOTOS]
    backgrounds = debian / "usr" / "share" / "backgrounds"
    found += [(p, "debian") for pattern in WALLPAPER_GLOBS for p in sorted(backgrounds.glob(pattern))]
    missing = [str(p) for p, _ in found if not p.is_file()]
    if missing or len(found) <= len(SKIMAGE_PHOTOS):
        sys.exit(f"photos missing: {missing or backgrounds}; see this script's docstring")
    copies = []
    for path, source in found:
        copies.append(into / f"{source}_{path.name}")
        shutil.copyfile(path, copies[-1])
    return copies


#: Real fog, mist, haze and snow: restored side by side in the model card, never trained on.
REAL_WEATHER = {
    "usr/share/lxqt/wallpapers/fog.jpg": "fog", "usr/share/lxqt/wallpapers/beam.png": "mist",
    "usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg": "fog",
    "usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg": "mist",
    "usr/share/lxqt/wallpapers/Valendas.png": "haze",
    "usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg": "haze",
    "usr/share/doc/opencv-doc/examples/data/aero1.jpg": "haze", "usr/share/doc/opencv-doc/examples/data/aero3.jpg": "haze",
    "usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg": "haze",
    "usr/share/puzzle-jigsaw/samples/pexels-photo-302304.jpeg": "snow on the ground"}
_WALLPAPERS = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_OPENCV = "usr/share/doc/opencv-doc/examples/"
#: Clean training photos of ``data-v2`` by Debian package (``apt-get download`` the packages and
#: ``dpkg-deb -x`` each into one ``--debian`` root). Left out besides ``REAL_WEATHER``: the scikit-image
#: photos ``data`` already has, and ``motorcycle_right`` (the held-out motorcycle from beside);
#: grey ones (``camera``, ``brick``, ``grass``, ``gravel``, the ``Grey`` wallpaper); opencv's
#: ``licenseplate_motion`` (synthetic motion blur); jigzo's penguin (CC-BY-NC-SA).
EXTRA_PHOTOS = {
    "lxqt-themes": [f"usr/share/lxqt/wallpapers/{n}" for n in [
        "after-the-rain.jpg", "this-is-not-windows.jpg", "cloud.png", "drop.png", "appleflower.png", "butterfly.png",
        "Butterfly-Kenneth-Wimer.jpg", "flowers.png"]],
    "plasma-workspace-wallpapers": [_WALLPAPERS.format(n) for n in [
        "Path", "EveningGlow", "BytheWater", "Kite", "FallenLeaf", "OneStandsOut", "ColorfulCups"]],
    "palapeli-data": [f"usr/share/palapeli/collection/{n}.jpg" for n in [
        "castle-maintenon", "cincinnati-bridge", "citrus-fruits", "european-honey-bee", "panther-chameleon-female"]],
    "opencv-doc": [_OPENCV + n for n in [
        "data/leuvenA.jpg", "data/leuvenB.jpg", "data/building.jpg", "data/home.jpg", "text/scenetext01.jpg",
        "text/scenetext02.jpg", "text/scenetext03.jpg", "text/scenetext04.jpg", "text/scenetext05.jpg",
        "text/scenetext_segmented_word01.jpg", "data/messi5.jpg", "data/squirrel_cls.jpg",
        "alphamat/input_images/plant.jpg", "data/aloeL.jpg", "data/fruits.jpg", "data/baboon.jpg",
        "data/butterfly.jpg", "data/graf1.png"]],
    "tuxpaint-data": [f"usr/share/tuxpaint/templates/{n}.jpg" for n in [
        "lighthouse", "sheep", "cliff", "corn_maze", "redwoods_above", "trees_above", "trees_at_dusk",
        "sun_behind_clouds", "ocean_waves", "ocean_splash", "rocks", "mossy_log", "burnt_bark", "mossy_bark",
        "mudstone", "spiders_web", "sun_behind_leaves", "jellyfish", "wool_mill_machine"]],
    "jigzo-data": [f"usr/share/games/jigzo/puzzles/00_default/{n}.pzl" for n in [
        "bike-3x4", "train-2x2", "heli-4x3", "castle-6x3", "windmill-4x4", "tobogan-4x3", "clouds-4x4", "horse-4x3",
        "gorilla2-3x3", "bird-2x3", "blackberry-3x3"]],
    "puzzle-jigsaw": ["usr/share/puzzle-jigsaw/samples/cat-animal-cat-portrait-mackerel.jpg"],
    "digikam-data": ["usr/share/digikam/about/images/body-background.jpg"],
    "python3-sklearn": ["usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg"],
    "python-matplotlib-data": ["usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg"],
    "cimg-examples": ["usr/share/doc/cimg-dev/examples/img/parrot.ppm"],
    "libjxl-testdata": [f"usr/share/libjxl-testdata/{n}.png" for n in [
        "jxl/flower/flower", "external/wesaturate/500px/cvo9xd_keong_macan_srgb8",
        "external/wesaturate/500px/tmshre_riaphotographs_srgb8", "external/wesaturate/500px/u76c0g_bliznaca_srgb8",
        "jxl/hdr_room"]]}
EXTRA_PACKAGES = list(EXTRA_PHOTOS)


def photo_stem(path: str) -> str:
    """A package photo's name: the wallpaper's folder for the KDE wallpapers (all named by their
    resolution), the file's stem otherwise."""
    parts = Path(path).parts
    return parts[-4] if parts[-1][0].isdigit() else Path(path).stem


def photo_name(package: str, path: str) -> str:
    """A distinct file stem for a package photo: the package, then :func:`photo_stem`."""
    return f"{package}_{photo_stem(path)}"


def jigzo_photo(puzzle: Path) -> Image.Image:
    """The photograph of a jigzo ``.pzl`` puzzle: the last (largest) JPEG embedded in the file is
    the texture atlas, and the ``image X Y W H`` line gives the photo's box in it."""
    data = puzzle.read_bytes()
    box = next((line.split()[1:5] for line in data[:4096].split(b"\n") if line.startswith(b"image ")), None)
    start = data.rfind(b"\xff\xd8\xff")
    if box is None or start < 0:
        sys.exit(f"{puzzle}: not a jigzo puzzle with an embedded photo")
    try:
        x, y, w, h = (int(v) for v in box)
        atlas = Image.open(io.BytesIO(data[start:])).convert("RGB")
    except (ValueError, OSError) as exc:
        sys.exit(f"{puzzle}: cannot read the embedded photo ({exc})")
    if x < 0 or y < 0 or x + w > atlas.width or y + h > atlas.height:
        sys.exit(f"{puzzle}: image box {x} {y} {w} {h} lies outside the embedded {atlas.width}x{atlas.height} JPEG")
    return atlas.crop((x, y, x + w, y + h))


def gather_extra_photos(debian: Path, into: Path) -> list[Path]:
    """Copy (or, for jigzo, cut out) ``EXTRA_PHOTOS`` from ``debian`` into ``into``."""
    photos = [(package, path) for package, paths in EXTRA_PHOTOS.items() for path in paths]
    missing = [path for _, path in photos if not (debian / path).is_file()]
    if missing:
        sys.exit(f"{debian}: {len(missing)} photos missing (first: {missing[0]}); "
                 f"apt-get download {' '.join(EXTRA_PACKAGES)} and dpkg-deb -x each into {debian}")
    into.mkdir(parents=True, exist_ok=True)
    copies = []
    for package, path in photos:
        source = debian / path
        copies.append(into / f"{photo_name(package, path)}{'.png' if source.suffix == '.pzl' else source.suffix}")
        if source.suffix == ".pzl":
            jigzo_photo(source).save(copies[-1])
        else:
            shutil.copyfile(source, copies[-1])
    return copies


def read_val_log(experiment: Path) -> dict[int, dict[str, float]]:
    """``{iteration: {task: psnr}}`` from an experiment's ``val_log.csv``."""
    import csv

    curves: dict[int, dict[str, float]] = {}
    with open(experiment / "val_log.csv") as f:
        for row in csv.DictReader(f):
            curves.setdefault(int(row["iteration"]), {})[row["task"]] = float(row["psnr"])
    return curves


def curves(experiments: list[Path], plot: str | None) -> None:
    """The ``curves`` step: a table per experiment and, with ``plot``, the panels."""
    import statistics

    from moewir.tables import markdown_table
    from offset_error import offsets

    config = yaml.safe_load((experiments[0] / "config.yml").read_text())
    val = config["datasets"]["val"]
    if val.get("max_per_task") is not None or val.get("split", "test") != "test":
        sys.exit(f"{experiments[0]}: curves compares with the input on every test pair; this experiment "
                 f"validated on {val.get('max_per_task')} pairs of split {val.get('split')!r}")
    root = val.get("root") or config["datasets"]["train"]["root"]
    references = offsets("dcp", root, val["center_crop"], 10 ** 9)
    levels = {"input": {t: r["input"] for t, r in references.items()}, "dcp": {t: r["output"] for t, r in references.items()}}
    logs = {e.name: read_val_log(e) for e in experiments}
    tasks = sorted(t for t in references if all(t in v for log in logs.values() for v in log.values()))
    for name, log in logs.items():
        rows = [[i, *(f"{log[i][t]:.2f}" for t in tasks), f"{statistics.fmean(log[i][t] for t in tasks):.2f}"]
                for i in sorted(log)]
        rows += [[k, *(f"{v[t]:.2f}" for t in tasks), f"{statistics.fmean(v.values()):.2f}"] for k, v in levels.items()]
        print(f"\n{name}\n\n" + markdown_table(["iteration", *tasks, "mean"], rows, align="r" * (len(tasks) + 2)))
    if plot:
        from plots import grid, line_plot

        panels = []
        for task in [*tasks, "mean"]:
            def value(scores):
                return statistics.fmean(scores.values()) if task == "mean" else scores[task]
            panel = Path(plot).with_name(f".{Path(plot).stem}_{task}.png")
            line_plot(panel, {name: [(i, value(v)) for i, v in log.items()] for name, log in logs.items()},
                      "iteration", "PSNR (dB, Y)", f"{task}: held-out 256-px centre crops",
                      size=(640, 360), hlines={k: value(v) for k, v in levels.items()})
            panels.append(panel)
        grid(panels, plot, cols=2, title="validation PSNR per task; dashed: the input and the dark channel prior")
        for panel in panels:
            panel.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    data = sub.add_parser("data")
    data.add_argument("--out", default="data/default")
    data.add_argument("--debian", default="/", help="root where the Debian packages are installed or extracted")
    data.add_argument("--per-image", type=int, default=6)
    v2 = sub.add_parser("data-v2")
    v2.add_argument("--out", default="data/v2")
    v2.add_argument("--base", default="data/default", help="the dataset whose pairs (test split included) are kept")
    v2.add_argument("--debian", required=True, help="root where EXTRA_PACKAGES are extracted")
    v2.add_argument("--per-image", type=int, default=6)
    v2.add_argument("--workers", type=int, default=2)
    plot = sub.add_parser("curves")
    plot.add_argument("--experiment", nargs="+", required=True, type=Path)
    plot.add_argument("--plot", help="write the panels here (PNG)")
    ship = sub.add_parser("ship")
    ship.add_argument("--experiment", default="experiments/default_weights")
    args = parser.parse_args()

    if args.step == "data":
        out = Path(args.out)
        photos = gather_photos(Path(args.debian), out.parent / f"{out.name}_photos")
        print(f"{len(photos)} photos")
        build_dataset(out, TASKS, clean=photos, per_image=args.per_image, seed=0, split=0.85, max_side=768)
        return
    if args.step == "curves":
        curves(args.experiment, args.plot)
        return
    if args.step == "data-v2":
        out = Path(args.out)
        photos = gather_extra_photos(Path(args.debian), out.parent / f"{out.name}_photos")
        print(f"{len(photos)} more photos, training pairs only")
        extra = out.parent / f"{out.name}_extra"
        build_dataset(extra, TASKS, clean=photos, per_image=args.per_image, seed=1, split=1.0, max_side=768,
                      workers=args.workers)
        records = merge_datasets(out, [Path(args.base), extra])
        print(f"{out}: {len(records)} pairs")
        return
    experiment = Path(args.experiment)
    iteration = latest_checkpoint(experiment / "checkpoints")
    if iteration is None:
        sys.exit(f"{experiment}: no checkpoint yet")
    # the checkpoint names its network and config (a fine-tune's config.yml names its start file too)
    model = build_from_weights(experiment / "checkpoints" / f"net_ema_{iteration}.safetensors")
    target = ROOT / "src" / "moewir" / "pretrained" / f"{model_spec(model)[0]}.safetensors"
    save_weights(target, model, {"iteration": iteration, "experiment": experiment.name,
                                 "tasks": ",".join(TASKS), "model_card": "docs/model_card.md"})
    print(f"{target.relative_to(ROOT)}: iteration {iteration}, {target.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
