"""The baselines' official releases: their checkpoint files, read safely, and their parameter
names mapped onto moewir's networks.

* **Restormer** (github swz30/Restormer): a ``.pth`` holding ``{"params": state_dict}``. The
  deraining, motion- and single-image defocus-deblurring releases use ``WithBias`` LayerNorms,
  the denoising ones ``BiasFree``; which one a file holds is read from it (``WithBias`` norms
  have ``.bias`` tensors).
* **PromptIR** (github va1shn9v/PromptIR): a PyTorch Lightning checkpoint, the network's
  tensors under ``state_dict`` with a ``net.`` prefix (the Lightning module's attribute).

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so
no code in a file runs. Lightning's extra entries (loop, callback, optimiser and scheduler
states) are plain data and need nothing added to that allow-list.

A :class:`Layout` is one family's naming: a table of module prefixes (official -> moewir) and
of renames inside a block, both read in either direction. :func:`moewir.models.build_from_weights`
uses it to fit and load a file (``models/builder.py``).
"""
from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .promptir import PromptIR
from .restormer import Restormer

__all__ = ["Layout", "LAYOUTS", "is_pytorch_file", "read_checkpoint", "layout_of", "release_config"]


@dataclass(frozen=True)
class Layout:
    """How one family's official code names its tensors."""

    family: str  #: the registered model of the release's size, used when no model is named
    title: str
    network: type[nn.Module]
    #: (official, moewir) module prefixes
    modules: tuple[tuple[str, str], ...]
    #: (official, moewir) dotted name pieces inside the modules
    pieces: tuple[tuple[str, str], ...] = ()
    #: moewir parameter names (last piece) that the official code stores with a leading 1 dim
    leading_one: tuple[str, ...] = ()
    #: official module prefixes that its forward never uses: their tensors are dropped
    unused: tuple[str, ...] = ()

    def to_moewir(self, name: str) -> str | None:
        """The moewir name of an official tensor name (``None``: not in this layout)."""
        return self._rename(name, self.modules, self.pieces)

    def to_official(self, name: str) -> str:
        """The official name of a moewir tensor name."""
        swap = lambda pairs: tuple((b, a) for a, b in pairs)  # noqa: E731
        renamed = self._rename(name, swap(self.modules), swap(self.pieces))
        if renamed is None:
            raise ValueError(f"{name!r} has no name in the official {self.title} layout")
        return renamed

    def is_unused(self, official_name: str) -> bool:
        return any(official_name.startswith(prefix + ".") for prefix in self.unused)

    def official_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The official shape of the moewir tensor ``name`` of ``shape``."""
        return (1, *shape) if name.rsplit(".", 1)[-1] in self.leading_one else shape

    def to_moewir_tensor(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """An official tensor in moewir's layout (``name``: its moewir name)."""
        return tensor[0] if name.rsplit(".", 1)[-1] in self.leading_one else tensor

    @staticmethod
    def _rename(name: str, modules, pieces) -> str | None:
        for source, target in modules:
            if name == source or name.startswith(source + "."):
                rest = "." + name[len(source):].lstrip(".") + "."
                for a, b in pieces:
                    rest = rest.replace(f".{a}.", f".{b}.")
                return (target + rest).rstrip(".")
        return None


#: Names inside a Restormer block (MDTA's two projections are one module in moewir).
_BLOCK_PIECES = (("norm1.body", "norm1"), ("norm2.body", "norm2"),
                 ("attn.qkv", "attn.qkv.pointwise"), ("attn.qkv_dwconv", "attn.qkv.depthwise"))

_RESTORMER_MODULES = (
    ("patch_embed.proj", "embed"),
    ("encoder_level1", "encoders.0"), ("encoder_level2", "encoders.1"), ("encoder_level3", "encoders.2"),
    ("down1_2", "downs.0"), ("down2_3", "downs.1"), ("down3_4", "downs.2"),
    ("latent", "bottleneck"),
    ("up4_3", "ups.0"), ("up3_2", "ups.1"), ("up2_1", "ups.2"),
    ("reduce_chan_level3", "reduces.0"), ("reduce_chan_level2", "reduces.1"),
    ("decoder_level3", "decoders.0"), ("decoder_level2", "decoders.1"), ("decoder_level1", "decoders.2"),
    ("refinement", "refinement"), ("output", "output"),
)

#: PromptIR's prompt block before decoder level N is ``promptN`` (generation), ``noise_levelN``
#: (the interaction block) and ``reduce_noise_levelN``; moewir's bridges run from level 3 down.
_PROMPT_MODULES = tuple(
    pair for level, bridge in ((3, 0), (2, 1), (1, 2))
    for pair in ((f"prompt{level}", f"bridges.{bridge}.generate"),
                 (f"noise_level{level}", f"bridges.{bridge}.interact"),
                 (f"reduce_noise_level{level}", f"bridges.{bridge}.reduce")))

LAYOUTS = {
    "restormer": Layout("restormer", "Restormer", Restormer, _RESTORMER_MODULES, _BLOCK_PIECES),
    "promptir": Layout(
        "promptir", "PromptIR", PromptIR, _RESTORMER_MODULES + _PROMPT_MODULES,
        _BLOCK_PIECES + (("prompt_param", "components"), ("linear_layer", "weights"), ("conv3x3", "conv")),
        leading_one=("components",),
        # six 1x1 convs the official __init__ builds and its forward never calls
        unused=("chnl_reduce1", "chnl_reduce2", "chnl_reduce3",
                "reduce_noise_channel_1", "reduce_noise_channel_2", "reduce_noise_channel_3")),
}


def is_pytorch_file(path: str | Path) -> bool:
    """True for a file written by ``torch.save`` (a zip archive or a legacy pickle); a
    safetensors file (its JSON header starts at byte 8) is not one."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":
        return False
    return head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")


def _refusal(exc: pickle.UnpicklingError) -> str:
    """What a ``weights_only`` refusal says the file asked for, in one line."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)  # "Unsupported global: GLOBAL os.system ..." and its rewordings
    if found:
        return f"it asks for {found.group(1)}, which is neither a tensor nor plain data"
    boilerplate = ("Weights only load failed", "Check the documentation", "(1)", "(2)")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(boilerplate)]
    return lines[0].removeprefix("WeightsUnpickler error: ") if lines else "it holds more than tensors and plain data"


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The network tensors of an official release: ``params`` (Restormer), ``state_dict``
    (Lightning, ``net.`` prefix removed) or a bare state dict; one-line errors naming ``path``."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: refused to load: {_refusal(exc)} (PyTorch files are read with "
                         f"weights_only=True: tensors and plain data, no code runs)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict")
    for key in ("params", "state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    bad = next((k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ValueError(f"{path}: not a state dict: entry {bad!r} is not a named tensor (expected "
                         f"{{'params': state_dict}}, a Lightning checkpoint or a state dict)")
    return {k.removeprefix("net."): v for k, v in obj.items()}


def layout_of(path: str | Path, tensors: dict[str, torch.Tensor]) -> Layout:
    """The family whose official layout ``tensors`` are in (one-line error otherwise)."""
    if any(k.startswith("prompt1.") for k in tensors):
        return LAYOUTS["promptir"]
    if "skip_conv.weight" in tensors:
        raise ValueError(f"{path}: a dual-pixel defocus-deblurring Restormer release (skip_conv, 6 input "
                         f"channels), which moewir does not support")
    if "patch_embed.proj.weight" in tensors:
        return LAYOUTS["restormer"]
    raise ValueError(f"{path}: not an official Restormer or PromptIR checkpoint (no patch_embed.proj.weight; "
                     f"its {len(tensors)} tensors start with {list(tensors)[:3]})")


def release_config(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """The config options read from the tensors themselves: the LayerNorm type."""
    biased = any(re.search(r"(^|\.)norm[12]\.body\.bias$", k) for k in tensors)
    return {"layer_norm": "with_bias" if biased else "bias_free"}
