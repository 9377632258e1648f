"""Weather tasks as recipes of generator steps, and :func:`synthesize` for one sample.

A recipe has *scene* steps, which change what the clean scene is (night: the target of a
night-rain pair is the rainless night scene, not the daylight photo), and *weather* steps,
applied to the input only.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..registry import Registry
from . import weather

__all__ = ["Recipe", "TASKS", "synthesize", "task_seed"]

Step = Callable[..., tuple[np.ndarray, dict]]


@dataclass(frozen=True)
class Recipe:
    scene: tuple[Step, ...]
    weather: tuple[Step, ...]


#: Task name -> its recipe; the names ``moewir synth --tasks`` takes.
TASKS: Registry[Recipe] = Registry("synthesis task")
TASKS.register("haze", Recipe((), (weather.haze,)))
TASKS.register("rain", Recipe((), (weather.rain,)))
TASKS.register("snow", Recipe((), (weather.snow,)))
TASKS.register("raindrop", Recipe((), (weather.raindrop,)))
TASKS.register("nightrain", Recipe((weather.night,), (weather.rain, weather.sensor_noise)))
TASKS.register("nightraindrop", Recipe((weather.night,), (weather.raindrop, weather.sensor_noise)))
TASKS.register("rain+haze", Recipe((), (weather.haze, weather.rain)))
TASKS.register("snow+haze", Recipe((), (weather.haze, weather.snow)))


def task_seed(seed: int, image_index: int, task: str, sample: int) -> np.random.SeedSequence:
    """Independent, order-free seed for one sample (stable across task lists and workers)."""
    return np.random.SeedSequence([seed, image_index, zlib.crc32(task.encode()), sample])


def synthesize(clean: np.ndarray, task: str, rng: np.random.Generator | int, severity: float,
               depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One ``(input, target, params)`` sample of ``task`` from a clean float RGB image.

    ``depth`` (``H x W``, larger = farther) replaces the haze generator's depth proxy.
    """
    recipe = TASKS.get(task)
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    rng = np.random.default_rng(rng)
    scene: dict = {}
    params: dict = {"task": task, "severity": float(severity)}
    target = clean.astype(np.float32)
    for step in recipe.scene:
        target, params[step.__name__] = step(target, rng, severity, scene)
    degraded = target
    for step in recipe.weather:
        extra = {"depth": depth} if step is weather.haze and depth is not None else {}
        degraded, params[step.__name__] = step(degraded, rng, severity, scene, **extra)
    return np.clip(degraded, 0.0, 1.0).astype(np.float32), np.clip(target, 0.0, 1.0).astype(np.float32), params
