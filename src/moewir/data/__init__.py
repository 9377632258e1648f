"""Paired datasets: image I/O, on-disk layouts, training and validation datasets."""
from .datasets import MultiTaskLoader, PairedImages, PairedPatches, augment, clean_pairs, random_crop, zoomed_crop
from .io import ImageReadError, read_image, write_image
from .layouts import DatasetLayoutError, Pair, canonical_task, detect_layout, discover, match_pairs, select_tasks

__all__ = ["ImageReadError", "read_image", "write_image", "DatasetLayoutError", "Pair", "canonical_task",
           "detect_layout", "discover", "match_pairs", "MultiTaskLoader", "PairedImages", "PairedPatches",
           "augment", "clean_pairs", "random_crop", "select_tasks", "zoomed_crop"]
