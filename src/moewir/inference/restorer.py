"""The Python API for restoring images: ``model = moewir.load(...)``, ``model.restore(image)``.

:func:`load` takes a safetensors file written by the trainer (the model name and config are
read from its metadata, so nothing else is needed) or a registered model name, which loads the
weights shipped with the package for that name. :class:`Restorer` wraps the network with the
device, tiling and precision choices and restores numpy arrays, PIL images or tensors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.io import pil_to_rgb
from ..devices import resolve_device
from ..models import build_from_weights, create_model, list_models, model_spec
from ..ops.tiling import check_tiling, tiled_forward
from .memory import auto_tile

__all__ = ["Restorer", "load", "dihedral"]


class Restorer:
    """A restoration network ready for users' images.

    ``tile`` / ``tile_overlap`` bound memory on large images (``tile=None`` restores in one
    pass; ``tile="auto"`` restores in one pass when the image fits ``memory_budget`` bytes,
    by default a share of the free memory, and otherwise in the largest tiles up to 512 px that
    fit: :mod:`moewir.inference.memory`); ``half`` runs under autocast: float16 on CUDA and
    MPS, bfloat16 on the CPU. ``self_ensemble`` restores the eight flips and quarter turns of the
    image and averages them, turned back (:func:`dihedral`): 8x the time, for a little more
    fidelity (``docs/inference.md``).
    """

    def __init__(self, network: nn.Module, device: str | torch.device = "auto", tile: int | str | None = 512,
                 tile_overlap: int = 32, half: bool = False, memory_budget: int | None = None,
                 self_ensemble: bool = False):
        tile = check_tile(tile)
        check_tiling(512 if tile == "auto" else tile, tile_overlap)
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.network = network.to(self.device).eval()
        self.tile, self.tile_overlap, self.half = tile, tile_overlap, half
        self.memory_budget = memory_budget
        self.self_ensemble = self_ensemble

    def tile_for(self, shape: tuple[int, ...]) -> int | None:
        """The tile a ``(B, C, H, W)`` batch is restored with (``None``: one pass; always for a
        network that must see the whole image, such as ``dcp``'s global airlight)."""
        if self.whole_image:
            return None
        if self.tile != "auto":
            return self.tile
        return auto_tile(self.network, shape, self.device, self.tile_overlap, budget=self.memory_budget)

    @property
    def whole_image(self) -> bool:
        """Whether the network restores only whole images (it ignores ``tile``)."""
        return bool(getattr(self.network, "whole_image", False))

    @property
    def name(self) -> str:
        return model_spec(self.network)[0]

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
            if self.self_ensemble:
                out = sum(dihedral(self._forward(dihedral(x, turns, flip).contiguous()).float(), turns, flip,
                                   inverse=True) for turns in range(4) for flip in (False, True)) / 8
            else:
                out = self._forward(x)
        out = out.float().clamp_(0, 1).to(image.device)
        return out if image.ndim == 4 else out[0]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        tile = self.tile_for(tuple(x.shape))
        prior = getattr(self.network, "prior", None)
        if prior is None or tile is None:
            return tiled_forward(self.network, x, tile=tile, overlap=self.tile_overlap)
        # a prior that looks at the whole photo (dcp's airlight): computed once, cropped with each tile
        c = x.shape[1]
        return tiled_forward(lambda both: self.network(both[:, :c], prior=both[:, c:]),
                             torch.cat([x, prior(x)], dim=1), tile=tile, overlap=self.tile_overlap)

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


def dihedral(x: torch.Tensor, turns: int, flip: bool, inverse: bool = False) -> torch.Tensor:
    """One of the eight symmetries of the square on the last two dims of ``x``: a left-right flip
    (if ``flip``), then ``turns`` quarter turns anticlockwise; ``inverse=True`` undoes it."""
    if inverse:
        x = torch.rot90(x, -turns, dims=(-2, -1))
        return x.flip(-1) if flip else x
    return torch.rot90(x.flip(-1) if flip else x, turns, dims=(-2, -1))


def check_tile(tile: int | str | None) -> int | str | None:
    """A tile size: a whole number of pixels (>= 16), ``None`` (no tiles) or ``"auto"``."""
    if tile is None or tile == "auto":
        return tile
    if isinstance(tile, bool) or not isinstance(tile, int):
        raise ValueError(f"tile must be a whole number of pixels, 'auto' or None, got {tile!r}")
    return tile


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


def load(source: str | Path, device: str = "auto", tile: int | str | None = 512, tile_overlap: int = 32,
         half: bool = False, model: str | None = None, pretrained: bool = True,
         memory_budget: int | None = None, self_ensemble: bool = False) -> Restorer:
    """A :class:`Restorer` from a weights file or a registered model name.

    ``source`` is a ``.safetensors`` file written by the trainer, or a model name: its shipped
    weights are loaded, or, with ``pretrained=False``, the network is left randomly initialised
    (for profiling, export and tests, not for restoring photos). The other arguments are
    :class:`Restorer`'s.
    """
    path = Path(source)
    if path.suffix == ".safetensors" or path.exists():
        network = build_from_weights(path, model)
    elif str(source) in list_models():
        network = create_model(str(source), pretrained=pretrained)
    else:
        raise ValueError(f"{source}: neither a weights file nor a registered model "
                         f"({', '.join(list_models())})")
    return Restorer(network, device=device, tile=tile, tile_overlap=tile_overlap, half=half,
                    memory_budget=memory_budget, self_ensemble=self_ensemble)
