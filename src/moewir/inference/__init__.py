"""Inference on users' images: the ``load`` / ``restore`` API and tiled restoration of any size."""
from .restorer import Restorer, build_from_weights, load, shipped_weights
from .tiling import tiled_forward

__all__ = ["Restorer", "load", "build_from_weights", "shipped_weights", "tiled_forward"]
