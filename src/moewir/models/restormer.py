"""Restormer baseline (Zamir et al., "Restormer: Efficient Transformer for High-Resolution
Image Restoration", CVPR 2022), for comparisons under the same settings as MOE-WIRNet.

Block: ``X = X + MDTA(LN(X))``; ``X = X + GDFN(LN(X))``. MDTA is the same transposed attention
as MOE-WIRNet's channel expert, applied to all channels. ``layer_norm`` picks the official code's
two norms (``with_bias``, its ``WithBias``; ``bias_free``, its ``BiasFree``); with it the network
is the official architecture exactly, so the official releases load (:mod:`moewir.models.official`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from .experts import ChannelExpert
from .layers import GatedFeedForward, LayerNorm2d
from .registry import config_from_dict, register_model
from .unet import EncoderDecoder

__all__ = ["RestormerConfig", "RestormerBlock", "Restormer", "LAYER_NORMS", "check_layer_norm"]

#: ``layer_norm`` options: Restormer's ``WithBias`` and ``BiasFree`` norms (see ``LayerNorm2d``).
LAYER_NORMS = ("with_bias", "bias_free")


@dataclass(frozen=True)
class RestormerConfig:
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion: float = 2.66
    bias: bool = False
    in_channels: int = 3
    out_channels: int = 3
    zero_init_output: bool = False  # start as the identity (see MoEWIRNetConfig)
    residual_gate: bool = False  # a per-image gate on the residual (see MoEWIRNetConfig)
    layer_norm: str = "with_bias"  # one of LAYER_NORMS
    prior: str = "none"  # a classical method's image as a second input (see MoEWIRNetConfig)

    def __post_init__(self):
        check_layer_norm(self.layer_norm)


def check_layer_norm(value: str) -> None:
    if value not in LAYER_NORMS:
        raise ValueError(f"layer_norm must be one of {', '.join(LAYER_NORMS)}, got {value!r}")


class RestormerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_expansion: float, bias: bool, layer_norm: str = "with_bias"):
        super().__init__()
        with_bias = layer_norm == "with_bias"
        self.norm1 = LayerNorm2d(dim, bias=with_bias)
        self.attn = ChannelExpert(dim, heads, bias)
        self.norm2 = LayerNorm2d(dim, bias=with_bias)
        self.ffn = GatedFeedForward(dim, ffn_expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Restormer(EncoderDecoder):
    def __init__(self, config: RestormerConfig):
        def make_block(dim: int, heads: int, stage: str, index: int) -> RestormerBlock:
            return RestormerBlock(dim, heads, config.ffn_expansion, config.bias, config.layer_norm)

        super().__init__(make_block, config.dim, config.num_blocks, config.num_refinement_blocks,
                         config.heads, config.in_channels, config.out_channels, config.zero_init_output,
                         residual_gate=config.residual_gate, prior=config.prior)
        self.config = config


def _build(**config) -> Restormer:
    return Restormer(config_from_dict(RestormerConfig, config))


register_model("restormer", _build, asdict(RestormerConfig()))  # the paper's size
# at moewirnet-tiny's widths and depths
register_model("restormer-tiny", _build,
               asdict(RestormerConfig(dim=24, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1)))
# at moewirnet-tiny's GMACs (dim 20): same-compute comparisons
register_model("restormer-tiny-matched", _build,
               asdict(RestormerConfig(dim=20, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1)))
