"""Physically grounded weather synthesis: generators, task recipes and the dataset builder."""
from .build import build_dataset, default_photos
from .tasks import TASKS, synthesize

__all__ = ["TASKS", "synthesize", "build_dataset", "default_photos"]
