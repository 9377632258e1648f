"""The Python API for restoring images: ``model = moewir.load(...)``, ``model.restore(image)``.

:func:`load` takes a safetensors file written by the trainer (the model name and config are
read from its metadata, so nothing else is needed) or a registered model name, which loads the
weights shipped with the package for that name. :class:`Restorer` wraps the network with the
device, tiling and precision choices and restores numpy arrays, PIL images or tensors.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.io import pil_to_rgb
from ..devices import resolve_device
from ..models import create_model, list_models, recorded_config
from ..training.checkpoint import check_fit, load_weights, read_metadata, stored_shapes
from .tiling import check_tiling, tiled_forward

__all__ = ["Restorer", "load", "build_from_weights", "shipped_weights"]


def shipped_weights(name: str) -> Path | None:
    """The weights file shipped in the package for model ``name`` (``None`` when there is none)."""
    path = resources.files("moewir") / "pretrained" / f"{name}.safetensors"
    return Path(str(path)) if path.is_file() else None


def _recorded(path: Path, name: str, text: str | None) -> dict[str, Any]:
    """The config overrides that ``model_config`` metadata asks for, validated."""
    if name not in list_models():
        raise ValueError(f"{path}: holds an unknown model {name!r}; registered models: {', '.join(list_models())}")
    if not text:  # a bare file: today's defaults
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: model_config metadata is not valid JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: model_config metadata must be a JSON object, got {type(config).__name__}")
    # a recorded config means what it meant when it was written (fields added since: old values)
    return recorded_config(name, config)


def build_from_weights(path: str | Path, model: str | None = None) -> nn.Module:
    """The network stored in the safetensors file ``path``, weights loaded.

    The architecture comes from the file's ``model_name`` / ``model_config`` metadata; ``model``
    (a registered name, built with its default config) is needed only for files without it.
    The metadata is checked against the file's tensors (names and shapes, from its header) on a
    skeleton without memory before anything real is built.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such weights file")
    meta = read_metadata(path)
    name = meta.get("model_name") or model
    if not name:
        raise ValueError(f"{path}: the file does not say which network it holds; "
                         f"pass the model name (one of {', '.join(list_models())})")
    if model and meta.get("model_name") and model != meta["model_name"]:
        raise ValueError(f"{path}: holds {meta['model_name']!r} weights, not {model!r}")
    config = _recorded(path, name, meta.get("model_config"))
    try:
        with torch.device("meta"):
            skeleton = create_model(name, **config)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: its model_config does not build a {name!r} network ({exc})") from None
    check_fit(path, {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, stored_shapes(path))
    network = create_model(name, **config)
    load_weights(path, network)
    return network


class Restorer:
    """A restoration network ready for users' images.

    ``tile`` / ``tile_overlap`` bound memory on large images (``tile=None`` restores in one
    pass); ``half`` runs under autocast: float16 on CUDA and MPS, bfloat16 on the CPU.
    """

    def __init__(self, network: nn.Module, device: str | torch.device = "auto", tile: int | None = 512,
                 tile_overlap: int = 32, half: bool = False):
        check_tiling(tile, tile_overlap)
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.network = network.to(self.device).eval()
        self.tile, self.tile_overlap, self.half = tile, tile_overlap, half

    @property
    def name(self) -> str:
        return getattr(self.network, "model_name", type(self.network).__name__)

    @torch.no_grad()
    def restore_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` or ``(3, H, W)`` float in ``[0, 1]`` -> restored, same shape, clamped."""
        batched = image if image.ndim == 4 else image[None]
        if batched.ndim != 4 or batched.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) or (3, H, W) tensor, got shape {tuple(image.shape)}")
        if batched.is_floating_point() and not bool(torch.isfinite(batched).all()):
            bad = int((~torch.isfinite(batched)).sum())
            raise ValueError(f"the image has {bad} NaN or infinite value(s); a network restores only finite "
                             f"values (every output pixel would be NaN)")
        x = batched.to(self.device, torch.float32)
        dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.half):
            out = tiled_forward(self.network, x, tile=self.tile, overlap=self.tile_overlap)
        out = out.float().clamp_(0, 1).to(image.device)
        return out if image.ndim == 4 else out[0]

    def restore(self, image):
        """Restore one image given as a numpy array or a PIL image; returns the same kind.

        Arrays are ``H x W x 3`` (or ``x 4``: alpha is passed through), ``H x W`` grayscale is
        restored as RGB and returned as ``H x W x 3``. ``uint8`` / ``uint16`` arrays come back
        in their type, float arrays (values in ``[0, 1]``) as float32.
        """
        if isinstance(image, Image.Image):
            return self._restore_pil(image)
        if isinstance(image, torch.Tensor):
            return self.restore_tensor(image)
        array = np.asarray(image)
        rgb, alpha, scale = _split_array(array)
        out = self.restore_tensor(torch.from_numpy(rgb).permute(2, 0, 1)).permute(1, 2, 0).numpy()
        if scale:
            out = np.round(out * scale).astype(array.dtype)
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=2)
        return out

    def _restore_pil(self, image: Image.Image) -> Image.Image:
        alpha = image.getchannel("A") if "A" in image.getbands() else None
        out = Image.fromarray(np.round(self.restore(pil_to_rgb(image)) * 255.0).astype(np.uint8))
        if alpha is not None:
            out.putalpha(alpha)
        return out


def _split_array(array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Float32 RGB in [0, 1], the alpha plane (or None), and the integer scale (0 for floats)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise ValueError(f"expected an H x W, H x W x 3 or H x W x 4 image, got shape {array.shape}")
    if array.dtype == np.uint8:
        scale = 255
    elif array.dtype == np.uint16:
        scale = 65535
    elif np.issubdtype(array.dtype, np.floating):
        scale = 0
    else:
        raise ValueError(f"unsupported image dtype {array.dtype}; use uint8, uint16 or float in [0, 1]")
    alpha = array[..., 3:] if array.shape[2] == 4 else None
    rgb = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
    rgb = rgb.astype(np.float32) / scale if scale else rgb.astype(np.float32)
    return np.ascontiguousarray(rgb), alpha, scale


def load(source: str | Path, device: str = "auto", tile: int | None = 512, tile_overlap: int = 32,
         half: bool = False, model: str | None = None, pretrained: bool = True) -> Restorer:
    """A :class:`Restorer` from a weights file or a registered model name.

    ``source`` is a ``.safetensors`` file written by the trainer, or a model name: its shipped
    weights are loaded, or, with ``pretrained=False``, the network is left randomly initialised
    (for profiling, export and tests, not for restoring photos).
    """
    path = Path(source)
    if path.suffix == ".safetensors" or path.exists():
        network = build_from_weights(path, model)
    elif str(source) in list_models():
        weights = shipped_weights(str(source)) if pretrained else None
        if pretrained and weights is None:
            raise ValueError(f"no weights are shipped for {source!r}; pass a .safetensors file "
                             f"written by `moewir train` (or pretrained=False for random weights)")
        network = build_from_weights(weights, str(source)) if weights else create_model(str(source))
    else:
        raise ValueError(f"{source}: neither a weights file nor a registered model "
                         f"({', '.join(list_models())})")
    return Restorer(network, device=device, tile=tile, tile_overlap=tile_overlap, half=half)
