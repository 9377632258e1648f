"""LPIPS, the Learned Perceptual Image Patch Similarity (Zhang, Isola, Efros, Shechtman & Wang, "The
Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018), from local files only.

``d(x, x0) = sum_l 1 / (H_l W_l) sum_{h,w} || w_l * (y_hat_l - y0_hat_l) ||^2`` (eq. 1 of the paper):
``y_hat_l`` are the backbone's activations at layer ``l`` unit-normalised along channels and ``w_l``
learned per-channel weights. As in the released code, the "lin" weights of LPIPS v0.1 multiply the
squared differences directly (they stand for ``w_l^2``), as 1x1 convolutions without bias.

Two files are needed and nothing is ever downloaded (see ``docs/metrics.md``):

* the backbone: torchvision's ImageNet AlexNet (``alexnet-owt-7be5be79.pth``) or VGG16
  (``vgg16-397923af.pth``) state dict; only its ``features.N.weight`` / ``features.N.bias`` are used;
* the linear heads: the official ``lpips`` package's ``weights/v0.1/alex.pth`` or ``vgg.pth``
  (keys ``lin0.model.1.weight`` ... ``lin4.model.1.weight``, each ``(1, C, 1, 1)``).

Files are read with ``torch.load(weights_only=True)``, or with safetensors for ``.safetensors``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..registry import Registry

__all__ = ["LPIPS", "lpips", "alexnet_features", "vgg16_features", "BACKBONES"]

# LPIPS' ScalingLayer: the [-1, 1] input is shifted and scaled to the ImageNet statistics.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10
_VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features`` (same layers and state-dict keys), untrained."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features`` (configuration "D", no batch norm), untrained."""
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


#: net -> (backbone builder, indices of the tapped ReLUs, their channels, smallest usable side)
BACKBONES: Registry[tuple] = Registry("LPIPS backbone")
BACKBONES.register("alex", (alexnet_features, (1, 4, 7, 9, 11), (64, 192, 384, 256, 256), 31))  # relu1 .. relu5
BACKBONES.register("vgg", (vgg16_features, (3, 8, 15, 22, 29), (64, 128, 256, 512, 512), 16))  # relu1_2 .. relu5_3


class _Linear(nn.Module):
    """One LPIPS "lin" layer: a 1x1 convolution to one channel, no bias.

    Kept inside ``model`` at index 1 so the state-dict key is the official ``linK.model.1.weight``;
    index 0 held a Dropout there, which does nothing at evaluation.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_normalise(x: torch.Tensor) -> torch.Tensor:
    """Divide each spatial position's feature vector by its Euclidean norm (``y_hat`` in eq. 1)."""
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + _EPS)


def _read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A dict of tensors from a ``.pth`` (``weights_only``) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any reader failure means "not a weights file"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a readable weights file ({reason})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def _load(module: nn.Module, state: dict[str, torch.Tensor], prefix: str, path: str | os.PathLike) -> None:
    """Copy ``state[prefix + key]`` into every parameter of ``module``; other keys are ignored."""
    expected = module.state_dict()
    missing = [prefix + k for k in expected if prefix + k not in state]
    if missing:
        raise ValueError(f"{path}: {len(missing)} of {len(expected)} expected keys missing, first: "
                         f"{', '.join(missing[:3])}")
    for k, v in expected.items():
        if state[prefix + k].shape != v.shape:
            raise ValueError(f"{path}: {prefix + k} has shape {tuple(state[prefix + k].shape)}, "
                             f"expected {tuple(v.shape)}")
    module.load_state_dict({k: state[prefix + k] for k in expected})


class LPIPS(nn.Module):
    """LPIPS distance with an AlexNet (``net="alex"``) or VGG16 (``net="vgg"``) backbone.

    The constructor builds untrained layers; use :meth:`from_files` for the real metric. The state
    dict is ``features.N.*`` (torchvision's layout) plus ``linK.model.1.weight`` (the lpips layout).
    ``forward(a, b)`` takes ``(B, 3, H, W)`` or ``(3, H, W)`` RGB in ``[0, 1]`` and returns ``(B,)``,
    differentiable (usable as a loss).
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        build, self.taps, channels, self.min_size = BACKBONES.get(net)
        self.net = net
        self.features = build()
        for k, c in enumerate(channels):
            self.add_module(f"lin{k}", _Linear(c))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_files(cls, backbone: str | os.PathLike, linear: str | os.PathLike, net: str = "alex") -> LPIPS:
        """Load the backbone (torchvision checkpoint, or the state dict of its ``features`` alone) and
        the LPIPS v0.1 linear weights; returns the model in eval mode with frozen parameters."""
        model = cls(net)
        state = _read_state_dict(backbone)
        if not any(k.startswith("features.") for k in state):
            state = {f"features.{k}": v for k, v in state.items()}
        _load(model.features, state, "features.", backbone)
        linear_state = _read_state_dict(linear)
        for k in range(len(model.taps)):
            _load(getattr(model, f"lin{k}"), linear_state, f"lin{k}.", linear)
        return model.eval().requires_grad_(False)

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """ReLU outputs at ``self.taps`` of the backbone for a ``[0, 1]`` input."""
        x = (2 * x - 1 - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features[:self.taps[-1] + 1]):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape:
            raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
        if a.dim() == 3:
            a, b = a[None], b[None]
        if a.dim() != 4 or a.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) or (3, H, W) images, got {tuple(a.shape)}")
        if min(a.shape[-2:]) < self.min_size:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {self.min_size}x{self.min_size} "
                             f"pixels, got {tuple(a.shape[-2:])}")
        total = a.new_zeros(a.shape[0])
        for k, (fa, fb) in enumerate(zip(self._activations(a), self._activations(b))):
            squared = (_unit_normalise(fa) - _unit_normalise(fb)) ** 2
            total = total + getattr(self, f"lin{k}")(squared).mean(dim=(1, 2, 3))
        return total


def lpips(a: torch.Tensor, b: torch.Tensor, model: LPIPS) -> torch.Tensor:
    """LPIPS per image pair as a metric: no gradients, inputs moved to the model's device and dtype,
    ``(B,)`` float64 result."""
    param = next(model.parameters())
    with torch.no_grad():
        return model(a.to(param), b.to(param)).double()
