"""The package layering of docs/code_map.md, read from the source's import statements."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "moewir"

#: The layer-free bottom: modules every unit may import, and which import nothing from moewir.
BOTTOM = {"registry", "tables"}

#: Package (or top-level module) -> the moewir packages it may import besides BOTTOM. Everything
#: else is a layering error: imports point down, and training and inference stand side by side.
ALLOWED = {
    "registry": set(),
    "tables": set(),
    "devices": set(),
    "yamlfiles": set(),
    "ops": set(),
    "data": set(),
    "metrics": {"ops", "data"},
    "models": {"ops", "data"},
    "synth": {"ops", "data", "metrics"},
    "profiling": {"models", "devices"},
    "health": {"models", "data", "synth"},
    "evaluation": {"ops", "data", "metrics"},
    "distill": {"ops", "data", "metrics", "synth"},
    "inference": {"ops", "data", "models", "devices"},
    "training": {"ops", "data", "metrics", "models", "devices", "yamlfiles", "evaluation"},
    "web": {"data", "models", "inference"},
}


def _unit(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _imported_units(path: Path, source: str | None = None) -> set[str]:
    """The top-level moewir packages / modules that ``path`` (or ``source`` read as it) imports."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]  # ("moewir", "training")
    found = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = base + tuple((node.module or "").split(".")) if node.module else base
                if len(target) == 1:  # "from .. import x": x is the unit
                    found.update(alias.name for alias in node.names)
                    continue
            else:
                target = tuple((node.module or "").split("."))
        elif isinstance(node, ast.Import):
            target = ()
            for alias in node.names:
                parts = tuple(alias.name.split("."))
                if parts[0] == "moewir" and len(parts) > 1:
                    found.add(parts[1])
            continue
        else:
            continue
        if target and target[0] == "moewir" and len(target) > 1:
            found.add(target[1])
    return found


def test_the_import_reader_sees_relative_and_absolute_imports():
    source = ("from ..training.checkpoint import x\nfrom .. import models\nimport moewir.devices\n"
              "from moewir.ops.tiling import y\nfrom .files import z\nimport torch\n"
              "def f():\n    from ..yamlfiles import load_yaml\n")
    assert _imported_units(SRC / "inference" / "new.py", source) == {"training", "models", "devices", "ops",
                                                                     "inference", "yamlfiles"}
    assert _imported_units(SRC / "health.py", "from .synth.tasks import t\nfrom . import data\n") == {"synth", "data"}
    assert _imported_units(SRC / "training" / "checkpoint.py") >= {"data", "models"}
    assert "inference" in _imported_units(SRC / "cli" / "restore.py")


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_imports_point_down(unit):
    files = sorted((SRC / unit).rglob("*.py")) if (SRC / unit).is_dir() else [SRC / f"{unit}.py"]
    assert files
    allowed = ALLOWED[unit] | {unit} | (set() if unit in BOTTOM else BOTTOM)
    wrong = {f"{path.relative_to(SRC)} imports moewir.{other}"
             for path in files for other in _imported_units(path) - allowed}
    assert not wrong, sorted(wrong)


def test_every_unit_has_a_rule():
    units = {_unit(p) for p in SRC.rglob("*.py")} - {"__init__", "cli", "pretrained", "samples"}
    assert units == set(ALLOWED)
