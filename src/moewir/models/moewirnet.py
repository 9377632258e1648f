"""MOE-WIRNet: the asymmetric mixture-of-experts restoration network.

Chen & Zhang, "All-in-One Weather Image Restoration with Asymmetric Mixture-of-Experts Model
and Multi-Task Collaboration", Symmetry 2026 (``shared/papers/moe-wirnet.txt``), Sec. 3.1-3.2.

Every block is ``X = X + F_fusion(LN(X))`` then ``X = X + GDFN(LN(X))`` (``block_form``, below);
the MoE module splits its input into channel shares, runs one self-attention expert on each
(channel, spatial, frequency), weights them with a router (soft in the encoder, hard in the
decoder) and fuses them. Choices where the paper is open are documented in
``docs/architecture.md``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .experts import ChannelExpert, FrequencyExpert, SpatialExpert
from .layers import GatedFeedForward, LayerNorm2d
from .registry import config_from_dict, register_model
from .routing import HARD_MODES, ROUTING_MODES, Router
from .unet import STAGES, EncoderDecoder, level_widths

__all__ = ["MoEWIRNetConfig", "MoEAttention", "MoEBlock", "MoEWIRNet", "EXPERTS", "BLOCK_FORMS", "CONFIGS",
           "LEGACY_CONFIG"]

EXPERTS = ("channel", "spatial", "frequency")
#: How the MoE module's ``X_out = LN(X + F_fusion)`` sits in the block (docs/architecture.md):
#:
#: * ``prenorm``: ``X = X + F_fusion(LN(X))``, the MoE module returns ``F_fusion`` only;
#: * ``postnorm``: ``X = LN(X + F_fusion(X))``, the paper's equation as the block's own norm;
#: * ``layerscale``: ``X = X + gamma * LN(LN(X) + F_fusion(LN(X)))``, gamma per channel from 0.1;
#: * ``literal``: ``X = X + LN(LN(X) + F_fusion(LN(X)))``, the paper's module inside a pre-norm
#:   residual read word for word (every block adds a unit-variance copy of ``LN(X)``).
BLOCK_FORMS = ("prenorm", "postnorm", "layerscale", "literal")
#: Fields whose default changed: a config recorded without them (weights files written before
#: the field existed) means this value.
LEGACY_CONFIG = {"block_form": "literal"}
#: LayerScale's starting gamma (CaiT's value for networks up to 18 blocks deep).
LAYERSCALE_INIT = 0.1


@dataclass(frozen=True)
class MoEWIRNetConfig:
    """Every architectural option, including all that the paper ablates."""

    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion: float = 0.8
    bias: bool = False
    #: One of ``BLOCK_FORMS``; ``prenorm`` is the measured best (docs/architecture.md).
    block_form: str = "prenorm"
    in_channels: int = 3
    out_channels: int = 3
    #: Zero-initialise the output conv so the untrained network is the identity ``I_hat = I``
    #: (not in the paper; helps small training budgets, see docs/architecture.md).
    zero_init_output: bool = False
    #: Scale the residual per image by a gate read from the bottleneck, ``I + g * H_refine``
    #: (not in the paper; ``models/unet.py``, measured in docs/benchmarks.md "Raindrop").
    residual_gate: bool = False
    #: A classical method's image as a second input: ``none``, ``dcp`` (the dark channel prior's
    #: dehazed image, embedded beside the photo) or ``dcp_mix`` (also mixed into the output per
    #: pixel); not in the paper; ``models/unet.py``, docs/architecture.md, choice 13.
    prior: str = "none"
    #: Apply the paper's per-pixel ``Linear`` before the split conv. Two stacked linear maps
    #: equal one, so ``False`` drops it (an ablation; saves ``C^2`` MACs per pixel per block).
    input_linear: bool = True
    #: Non-empty subset of ``EXPERTS`` (Table 6); the channels are split evenly among them.
    experts: tuple[str, ...] = EXPERTS
    #: Router per stage (Table 5): ``soft``, ``hard`` or ``none``.
    encoder_routing: str = "soft"
    bottleneck_routing: str = "soft"
    decoder_routing: str = "hard"
    refinement_routing: str = "hard"
    #: How ``hard`` routers mix: ``uniform`` (1/n), ``top1`` (argmax g) or ``topk``.
    hard_mode: str = "uniform"
    hard_top_k: int = 2
    #: Spatial expert: fraction of keys kept per query (Fig. 6), window side, shifted windows.
    topk_ratio: float = 0.7
    window_size: int = 8
    shift_windows: bool = True
    #: Frequency expert: side of the square FFT patches.
    freq_patch: int = 8

    def __post_init__(self):
        problems = []
        if not self.experts or len(set(self.experts)) != len(self.experts) or set(self.experts) - set(EXPERTS):
            problems.append(f"experts must be a non-empty subset of {EXPERTS} without repeats, got {self.experts}")
        for stage in STAGES:
            if self.routing(stage) not in ROUTING_MODES:
                problems.append(f"{stage}_routing must be one of {ROUTING_MODES}, got {self.routing(stage)!r}")
        if self.block_form not in BLOCK_FORMS:
            problems.append(f"block_form must be one of {BLOCK_FORMS}, got {self.block_form!r}")
        if self.hard_mode not in HARD_MODES:
            problems.append(f"hard_mode must be one of {HARD_MODES}, got {self.hard_mode!r}")
        if not 0 < self.topk_ratio <= 1:
            problems.append(f"topk_ratio must be in (0, 1], got {self.topk_ratio}")
        if self.window_size < 1 or self.freq_patch < 1:
            problems.append("window_size and freq_patch must be positive")
        n = max(len(self.experts), 1)
        widths = level_widths(self.dim) + [2 * self.dim]
        for width, head in zip(widths, list(self.heads) + [self.heads[0]]):
            if width % n or (width // n) % head:
                problems.append(f"a {width}-channel level does not split into {n} experts x {head} heads")
        if problems:
            raise ValueError("invalid MoEWIRNet config: " + "; ".join(problems))

    def routing(self, stage: str) -> str:
        return getattr(self, f"{stage}_routing")


class MoEAttention(nn.Module):
    """The MoE feature-extraction module.

    ``[X_c, X_s, X_f] = Split(Conv_1x1(Linear(X)))``;
    ``F_fusion = Conv_1x1(Concat[w_c F_c, w_s F_s, w_f F_f])``;
    ``X_out = LN(X + F_fusion)`` with ``out_norm``, else ``X_out = F_fusion``.
    ``Linear`` is applied per pixel (a 1x1 conv). Experts a hard router did not choose are not
    computed in eval mode; their slot in the concatenation is zero.

    The fusion skips the unchosen slots instead of convolving zeros (:meth:`fuse`).
    """

    def __init__(self, dim: int, heads: int, cfg: MoEWIRNetConfig, stage: str, shift: int,
                 out_norm: bool = True):
        super().__init__()
        n = len(cfg.experts)
        self.share = dim // n
        self.linear = nn.Conv2d(dim, dim, 1, bias=cfg.bias) if cfg.input_linear else nn.Identity()
        self.split = nn.Conv2d(dim, dim, 1, bias=cfg.bias)
        build = {
            "channel": lambda: ChannelExpert(self.share, heads, cfg.bias),
            "spatial": lambda: SpatialExpert(self.share, heads, cfg.window_size, shift, cfg.topk_ratio, cfg.bias),
            "frequency": lambda: FrequencyExpert(self.share, cfg.freq_patch, cfg.bias),
        }
        self.expert_names = tuple(cfg.experts)
        self.experts = nn.ModuleList(build[name]() for name in cfg.experts)
        self.router = Router(n, cfg.routing(stage), cfg.hard_mode, cfg.hard_top_k)
        self.fusion = nn.Conv2d(self.share * n, dim, 1, bias=cfg.bias)
        self.norm = LayerNorm2d(dim) if out_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shares = self.split(self.linear(x)).split(self.share, dim=1)  # X_c, X_s, X_f
        weights, active = self.router(), self.router.active()
        features = [self.experts[i](shares[i]) for i in active]  # F_c, F_s, F_f
        fused = self.fuse(features, weights, active)  # Conv_1x1(Concat[w_i F_i])
        return fused if self.norm is None else self.norm(x + fused)

    def fuse(self, features: list[torch.Tensor], weights: torch.Tensor, active: list[int]) -> torch.Tensor:
        """``Conv_1x1(Concat[w_c F_c, w_s F_s, w_f F_f])`` from the ``active`` experts' outputs.

        The slot of an expert that was not computed is zero, so the conv's input channels for it
        are dropped (the weight is sliced) instead of multiplying zeros; the mixing weights
        ``w_i`` scale the conv's input channels rather than the feature maps (the same map).
        """
        out_channels, n = self.fusion.weight.shape[0], len(self.experts)
        weight = self.fusion.weight.reshape(out_channels, n, -1) * weights[:, None]
        if len(active) < n:
            weight = weight[:, active]
        return F.conv2d(torch.cat(features, dim=1), weight.reshape(out_channels, -1, 1, 1), self.fusion.bias)


class LayerScale(nn.Module):
    """``gamma * X`` with a learnable per-channel ``gamma`` (Touvron et al., CaiT, ICCV 2021)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * x


class MoEBlock(nn.Module):
    """The MoE half (``block_form``), then ``X = X + GDFN(LN(X))``.

    ``prenorm``: ``X = X + F_fusion(LN(X))``; ``postnorm``: ``X = LN(X + F_fusion(X))``;
    ``layerscale``: ``X = X + gamma * LN(LN(X) + F_fusion(LN(X)))``;
    ``literal``: ``X = X + LN(LN(X) + F_fusion(LN(X)))``.
    """

    def __init__(self, dim: int, heads: int, cfg: MoEWIRNetConfig, stage: str, shift: int):
        super().__init__()
        self.post_norm = cfg.block_form == "postnorm"
        self.norm1 = None if self.post_norm else LayerNorm2d(dim)
        self.moe = MoEAttention(dim, heads, cfg, stage, shift, out_norm=cfg.block_form != "prenorm")
        self.scale = LayerScale(dim, LAYERSCALE_INIT) if cfg.block_form == "layerscale" else nn.Identity()
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedFeedForward(dim, cfg.ffn_expansion, cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            x = self.moe(x)
        else:
            x = x + self.scale(self.moe(self.norm1(x)))
        return x + self.ffn(self.norm2(x))


class MoEWIRNet(EncoderDecoder):
    """MOE-WIRNet on the shared 4-level encoder-decoder (see :mod:`moewir.models.unet`)."""

    def __init__(self, config: MoEWIRNetConfig):
        def make_block(dim: int, heads: int, stage: str, index: int) -> MoEBlock:
            shift = config.window_size // 2 if config.shift_windows and index % 2 else 0
            return MoEBlock(dim, heads, config, stage, shift)

        super().__init__(make_block, config.dim, config.num_blocks, config.num_refinement_blocks,
                         config.heads, config.in_channels, config.out_channels, config.zero_init_output,
                         residual_gate=config.residual_gate, prior=config.prior)
        self.config = config


def _build(**config) -> MoEWIRNet:
    return MoEWIRNet(config_from_dict(MoEWIRNetConfig, config))


#: Named sizes: overrides of :class:`MoEWIRNetConfig`'s defaults (the paper size).
CONFIGS = {
    "moewirnet": {},
    "moewirnet-small": dict(dim=36, num_blocks=(2, 3, 3, 4), num_refinement_blocks=2),
    "moewirnet-tiny": dict(dim=24, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1),
}
for _name, _overrides in CONFIGS.items():
    register_model(_name, _build, asdict(MoEWIRNetConfig(**_overrides)), LEGACY_CONFIG)
