"""torch.hub entry points: one per registered moewir model (``-`` in its name written ``_``).

    import torch
    net = torch.hub.load("<owner>/moewir", "restormer_tiny_matched", pretrained=True)  # the default shipped weights
    net = torch.hub.load("<owner>/moewir", "moewirnet_tiny", pretrained=True)   # the other shipped weights
    net = torch.hub.load("<owner>/moewir", "moewirnet", window_size=16)          # random weights, a config override

Each entry returns the network (a ``torch.nn.Module``: ``(B, 3, H, W)`` float in ``[0, 1]`` in,
the same shape out), built by :func:`moewir.create_model`. ``pretrained=True`` loads the weights
shipped in the package for that model and returns the network in eval mode; a model without
shipped weights says so (``pretrained=False``, the default, gives random weights in train mode). Keyword
arguments replace config fields (``docs/architecture.md``). This file imports nothing heavy:
torch.hub lists the entries without building anything, and moewir is imported by the first call,
from this checkout's ``src/`` (a torch.hub download is not pip-installed).
"""
from __future__ import annotations

import sys
from pathlib import Path as _Path

#: Modules torch.hub checks for before it calls an entry: the runtime dependencies of pyproject.toml.
dependencies = ["torch", "numpy", "PIL", "yaml", "safetensors", "tqdm", "einops"]

_SRC = _Path(__file__).resolve().parent / "src"


def _create(name: str, pretrained: bool, overrides: dict):
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))  # this checkout's moewir, not another installed version
    from moewir.models import create_model, list_models, needs_weights, shipped_weights

    if pretrained and needs_weights(name) and shipped_weights(name) is None:
        shipped = [n for n in list_models() if shipped_weights(n) is not None]
        raise ValueError(f"torch.hub: no weights are shipped for {name!r} (models with shipped weights: "
                         f"{', '.join(n.replace('-', '_') for n in shipped) or 'none'}); use pretrained=False "
                         f"for random weights, or moewir.load('your.safetensors') for weights you trained")
    network = create_model(name, pretrained=pretrained, **overrides)
    return network.eval() if pretrained else network


def dcp(pretrained: bool = False, **overrides):
    """He et al.'s dark channel prior dehazing, guided-filter refined (classical, learns nothing:
    ready with or without ``pretrained=True``; options: docs/evaluation.md)."""
    return _create("dcp", pretrained, overrides)


def mgf(pretrained: bool = False, **overrides):
    """A median, then a guided filter: a classical rain and snow baseline (learns nothing: ready
    with or without ``pretrained=True``; options: docs/evaluation.md)."""
    return _create("mgf", pretrained, overrides)


def moewirnet(pretrained: bool = False, **overrides):
    """MOE-WIRNet at the paper's size (dim 48, blocks 4/6/6/8, 16.0M params). No shipped weights."""
    return _create("moewirnet", pretrained, overrides)


def moewirnet_small(pretrained: bool = False, **overrides):
    """MOE-WIRNet, dim 36, blocks 2/3/3/4 (5.6M params). No shipped weights."""
    return _create("moewirnet-small", pretrained, overrides)


def moewirnet_tiny(pretrained: bool = False, **overrides):
    """MOE-WIRNet, dim 24, blocks 1/1/1/2 (1.7M params). ``pretrained=True``: the shipped weights
    (docs/model_card.md)."""
    return _create("moewirnet-tiny", pretrained, overrides)


def promptir(pretrained: bool = False, **overrides):
    """The PromptIR all-in-one baseline at its release's size (35.4M params). No shipped weights
    (the official release loads with ``moewir.load("model.ckpt")``, docs/evaluation.md)."""
    return _create("promptir", pretrained, overrides)


def restormer(pretrained: bool = False, **overrides):
    """The Restormer baseline at its paper's size (26.1M params). No shipped weights."""
    return _create("restormer", pretrained, overrides)


def restormer_tiny(pretrained: bool = False, **overrides):
    """Restormer at moewirnet-tiny's widths and depths (2.2M params). No shipped weights."""
    return _create("restormer-tiny", pretrained, overrides)


def restormer_tiny_matched(pretrained: bool = False, **overrides):
    """Restormer at moewirnet-tiny's GMACs (dim 20, 1.6M params). ``pretrained=True``: the default
    shipped weights, trained with the same recipe as moewirnet-tiny's (docs/model_card.md)."""
    return _create("restormer-tiny-matched", pretrained, overrides)
