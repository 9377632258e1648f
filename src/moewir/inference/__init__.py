"""Inference on users' images: the ``load`` / ``restore`` API, files and folders, export."""
from .restorer import Restorer, load

__all__ = ["Restorer", "load"]
