"""Inference on users' images: tiled restoration of any size."""
from .tiling import tiled_forward

__all__ = ["tiled_forward"]
