"""Reading YAML: experiment files, distill settings and ``--set`` values, one way everywhere."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["load_yaml", "read_yaml_mapping"]


class _Loader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where ``5e-4`` and ``1e3`` are strings; read them as the numbers
    YAML 1.2 (and everyone writing a learning rate) means."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (``5e-4`` is a number)."""
    return yaml.load(text, Loader=_Loader)


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file's top-level mapping (empty file: ``{}``); one-line errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping of sections")
    return data
