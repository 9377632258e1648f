"""Make the data for moewir's shipped default weights, and ship a trained checkpoint.

    python bench/default_weights.py data  [--out data/default]          # photos -> synthesized pairs
    moewir train configs/default_weights.yml                            # [--resume] across sessions
    python bench/default_weights.py ship  [--experiment experiments/default_weights]

``data`` gathers clean photos that need no download: scikit-image's bundled colour photos and
the photographs of the Debian packages ``lomiri-wallpapers-16.04``, ``lomiri-wallpapers-20.04``
and ``mate-backgrounds`` (``apt-get download`` them and ``dpkg-deb -x`` into ``--debian``, or
install them: ``/usr/share/backgrounds``). Abstract and desktop-pattern wallpapers are left
out; sources and licences are listed in ``docs/model_card.md``. Photos are downscaled to a
longer side of 768 px and made into haze, rain, snow, raindrop and night-rain pairs by
``moewir synth`` with a held-out photo split for validation.

``ship`` copies the experiment's latest EMA weights into ``src/moewir/pretrained/`` (the
model name and config travel in the safetensors metadata) and prints the validation table for
the model card.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import yaml

from moewir.models import create_model, load_weights, model_spec, save_weights
from moewir.synth.build import build_dataset
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    data = sub.add_parser("data")
    data.add_argument("--out", default="data/default")
    data.add_argument("--debian", default="/", help="root where the Debian packages are installed or extracted")
    data.add_argument("--per-image", type=int, default=6)
    ship = sub.add_parser("ship")
    ship.add_argument("--experiment", default="experiments/default_weights")
    args = parser.parse_args()

    if args.step == "data":
        out = Path(args.out)
        photos = gather_photos(Path(args.debian), out.parent / f"{out.name}_photos")
        print(f"{len(photos)} photos")
        build_dataset(out, TASKS, clean=photos, per_image=args.per_image, seed=0, split=0.85, max_side=768)
        return
    experiment = Path(args.experiment)
    iteration = latest_checkpoint(experiment / "checkpoints")
    if iteration is None:
        sys.exit(f"{experiment}: no checkpoint yet")
    config = yaml.safe_load((experiment / "config.yml").read_text())
    model = create_model(config["model"]["name"], **{k: v for k, v in config["model"].items() if k != "name"})
    load_weights(experiment / "checkpoints" / f"net_ema_{iteration}.safetensors", model)
    target = ROOT / "src" / "moewir" / "pretrained" / f"{model_spec(model)[0]}.safetensors"
    save_weights(target, model, {"iteration": iteration, "experiment": experiment.name,
                                 "tasks": ",".join(TASKS), "model_card": "docs/model_card.md"})
    print(f"{target.relative_to(ROOT)}: iteration {iteration}, {target.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
