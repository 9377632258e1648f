"""On-disk dataset layouts, detected automatically and mapped to canonical task names.

=============  ===========================================================  ==============
layout         structure                                                     task names
=============  ===========================================================  ==============
weatherbench   ``{train,test}/{HAZE,RAIN,SNOW,...}/{input,target}/*``        lower-cased
foundir        ``NN<Category>/{LQ,GT}/*`` (``01Haze``, ``05Rain_Haze``, ...)  see FOUNDIR
unirain        ``{drs,drd,nrs,nrd}/{input,target}/*``                        see UNIRAIN
generic        ``<task>/{input,target}/*``                                   lower-cased
list           a ``.txt``/``.csv`` file of ``input,target[,task]`` lines     given / "mixed"
=============  ===========================================================  ==============

Inputs and targets are paired by file stem. Any input without a target, or target without an
input, is an error that lists what is missing: nothing is silently dropped.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from .io import is_image_file

__all__ = ["Pair", "DatasetLayoutError", "discover", "detect_layout", "canonical_task", "match_pairs",
           "FOUNDIR", "UNIRAIN", "SPLITS", "select_tasks"]

SPLITS = ("train", "test")

#: FoundIR weather categories -> canonical task names (others: lower-cased, "_" -> "+").
FOUNDIR = {"haze": "haze", "rain": "rain", "raindrop": "raindrop", "nightrain": "nightrain",
           "rain_haze": "rain+haze", "lowlight_haze": "lowlight+haze"}
#: UniRain rain types (day/night x streak/drop) -> canonical task names.
UNIRAIN = {"drs": "rain", "drd": "raindrop", "nrs": "nightrain", "nrd": "nightraindrop"}
_FOUNDIR_DIR = re.compile(r"^(\d+)[ _-]?([A-Za-z][A-Za-z_]*)$")


class DatasetLayoutError(ValueError):
    """A dataset folder or list cannot be read as any known layout, or its pairs do not match."""


@dataclass(frozen=True)
class Pair:
    input: Path
    target: Path
    task: str

    @property
    def name(self) -> str:
        return self.input.stem


def canonical_task(name: str) -> str:
    """``"Rain_Haze"`` -> ``"rain+haze"``; UniRain codes and FoundIR names are mapped."""
    key = name.strip().lower()
    if key in UNIRAIN:
        return UNIRAIN[key]
    return FOUNDIR.get(key, key.replace("_", "+").replace(" ", "+"))


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def _by_stem(files: list[Path], where: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DatasetLayoutError(f"{where}: two files share the name {f.stem!r} "
                                     f"({out[f.stem].name}, {f.name}); pairs are matched by name")
        out[f.stem] = f
    return out


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def match_pairs(input_dir: Path, target_dir: Path, task: str) -> list[Pair]:
    """Pair the images of two folders by stem; report every mismatch in one error."""
    for d in (input_dir, target_dir):
        if not d.is_dir():
            raise DatasetLayoutError(f"{d}: folder not found")
    inputs = _by_stem(_images(input_dir), input_dir)
    targets = _by_stem(_images(target_dir), target_dir)
    no_target = sorted(set(inputs) - set(targets))
    no_input = sorted(set(targets) - set(inputs))
    if no_target or no_input:
        parts = []
        if no_target:
            parts.append(f"{len(no_target)} input(s) without a target in {target_dir} ({_listing(no_target)})")
        if no_input:
            parts.append(f"{len(no_input)} target(s) without an input in {input_dir} ({_listing(no_input)})")
        raise DatasetLayoutError(f"task {task!r}: unmatched pairs: " + "; ".join(parts))
    if not inputs:
        raise DatasetLayoutError(f"{input_dir}: no images")
    return [Pair(inputs[s], targets[s], task) for s in sorted(inputs)]


def _subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has(folder: Path, *names: str) -> bool:
    return all((folder / n).is_dir() for n in names)


def detect_layout(root: str | Path) -> str:
    """Name of the layout of ``root`` (see the module docstring)."""
    root = Path(root)
    if root.is_file():
        return "list"
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: no such file or folder")
    subdirs = _subdirs(root)
    if any(d.name in SPLITS and any(_has(t, "input", "target") for t in _subdirs(d)) for d in subdirs):
        return "weatherbench"
    if any(_FOUNDIR_DIR.match(d.name) and _has(d, "LQ", "GT") for d in subdirs):
        return "foundir"
    paired = [d for d in subdirs if _has(d, "input", "target")]
    if paired and {d.name.lower() for d in paired} <= set(UNIRAIN):
        return "unirain"
    if paired:
        return "generic"
    raise DatasetLayoutError(
        f"{root}: no known dataset layout; expected {{train,test}}/<TASK>/{{input,target}} (WeatherBench), "
        f"NN<Category>/{{LQ,GT}} (FoundIR), {{drs,drd,nrs,nrd}}/{{input,target}} (UniRain), "
        f"<task>/{{input,target}}, or a .txt/.csv list of input,target[,task]")


def _read_list(path: Path) -> dict[str, list[Pair]]:
    tasks: dict[str, list[Pair]] = {}
    missing = []
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not row[0] or row[0].startswith("#"):
                continue
            if lineno == 1 and [c.lower() for c in row[:2]] == ["input", "target"]:
                continue  # header
            if len(row) not in (2, 3):
                raise DatasetLayoutError(f"{path}:{lineno}: expected input,target[,task], got {len(row)} fields")
            inp, tgt = (Path(c) if Path(c).is_absolute() else path.parent / c for c in row[:2])
            missing += [str(p) for p in (inp, tgt) if not p.is_file()]
            task = canonical_task(row[2]) if len(row) == 3 and row[2] else "mixed"
            tasks.setdefault(task, []).append(Pair(inp, tgt, task))
    if missing:
        raise DatasetLayoutError(f"{path}: {len(missing)} listed file(s) do not exist ({_listing(missing)})")
    if not tasks:
        raise DatasetLayoutError(f"{path}: the list holds no pairs")
    return tasks


def discover(root: str | Path, split: str | None = "train") -> dict[str, list[Pair]]:
    """All pairs under ``root``, grouped by canonical task name.

    ``split`` chooses ``train`` or ``test`` in the WeatherBench layout (ignored elsewhere).
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout == "list":
        return _read_list(root)
    if layout == "weatherbench":
        if split not in SPLITS:
            raise DatasetLayoutError(f"{root}: WeatherBench layout needs split 'train' or 'test', got {split!r}")
        root = root / split
        if not root.is_dir():
            raise DatasetLayoutError(f"{root}: split folder not found")
        task_dirs = [(d, d.name) for d in _subdirs(root) if _has(d, "input", "target")]
        pairs_dirs = [(d / "input", d / "target", name) for d, name in task_dirs]
    elif layout == "foundir":
        pairs_dirs = [(d / "LQ", d / "GT", _FOUNDIR_DIR.match(d.name).group(2))
                      for d in _subdirs(root) if _FOUNDIR_DIR.match(d.name) and _has(d, "LQ", "GT")]
    else:  # unirain, generic
        pairs_dirs = [(d / "input", d / "target", d.name) for d in _subdirs(root) if _has(d, "input", "target")]
    tasks: dict[str, list[Pair]] = {}
    for inp, tgt, name in pairs_dirs:
        task = canonical_task(name)
        if task in tasks:
            raise DatasetLayoutError(f"{root}: two folders map to task {task!r}")
        tasks[task] = match_pairs(inp, tgt, task)
    return tasks


def select_tasks(found: dict[str, list[Pair]], wanted: list[str] | None, root: str | Path) -> dict[str, list[Pair]]:
    """The ``wanted`` tasks of a discovered dataset (all when ``None``); unknown ones are an error."""
    if wanted is None:
        return found
    wanted = [canonical_task(t) for t in wanted]
    missing = [t for t in wanted if t not in found]
    if missing:
        raise DatasetLayoutError(f"{root}: no pairs for task(s) {', '.join(missing)}; found {', '.join(sorted(found))}")
    return {t: found[t] for t in wanted}
