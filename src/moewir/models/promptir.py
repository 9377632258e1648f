"""PromptIR (Potlapalli et al., "PromptIR: Prompting for All-in-One Blind Image Restoration",
NeurIPS 2023), the all-in-one baseline MOE-WIRNet compares against.

PromptIR is Restormer (the same blocks, encoder and decoder) with a *prompt block* in front of
each decoder level's upsampling. A prompt block generates a prompt from the features and mixes
it into them:

* prompt generation: ``w = Softmax(Linear(GAP(F)))``, ``P = Conv3x3(Resize(sum_i w_i P_i))``,
  the ``P_i`` learned prompt components (``prompt_len`` of them, ``prompt_size`` square,
  bilinearly resized to the feature map);
* prompt interaction: ``F' = Conv1x1(TB([F, P]))``, a Restormer block on the concatenation,
  then a 1x1 conv to the decoder's width.

Sizes follow the code release (``net/model.py``): prompts of 320, 128 and 64 channels at decoder
levels 3, 2 and 1, the interaction blocks with 4 heads, and the block after the bottleneck
halving its channels (8C -> 4C), so the level-3 upsampling starts from 4C.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import config_from_dict, register_model
from .restormer import RestormerBlock, check_layer_norm
from .unet import LEVELS, EncoderDecoder, level_widths

__all__ = ["PromptIRConfig", "PromptGeneration", "PromptBlock", "PromptIR"]


@dataclass(frozen=True)
class PromptIRConfig:
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion: float = 2.66
    bias: bool = False
    layer_norm: str = "with_bias"  # one of restormer.LAYER_NORMS
    #: Prompt channels, components' side and heads of the interaction block, decoder levels 1, 2, 3.
    prompt_dims: tuple[int, ...] = (64, 128, 320)
    prompt_sizes: tuple[int, ...] = (64, 32, 16)
    prompt_len: int = 5
    prompt_heads: int = 4
    in_channels: int = 3
    out_channels: int = 3

    def __post_init__(self):
        check_layer_norm(self.layer_norm)
        levels = LEVELS - 1
        if len(self.prompt_dims) != levels or len(self.prompt_sizes) != levels:
            raise ValueError(f"prompt_dims and prompt_sizes need {levels} entries (decoder levels 1-3), "
                             f"got {list(self.prompt_dims)} and {list(self.prompt_sizes)}")
        if self.prompt_len < 1 or min(self.prompt_sizes) < 1 or min(self.prompt_dims) < 1:
            raise ValueError("prompt_len, prompt_sizes and prompt_dims must be positive")
        for width, prompt in zip(level_widths(self.dim)[1:], self.prompt_dims):
            if (width + prompt) % self.prompt_heads:
                raise ValueError(f"a {width}-channel level with a {prompt}-channel prompt does not split "
                                 f"into {self.prompt_heads} prompt_heads")


class PromptGeneration(nn.Module):
    """``P = Conv3x3(Resize(sum_i w_i P_i))`` with ``w = Softmax(Linear(GAP(F)))``."""

    def __init__(self, width: int, prompt_dim: int, prompt_len: int, prompt_size: int):
        super().__init__()
        self.components = nn.Parameter(torch.rand(prompt_len, prompt_dim, prompt_size, prompt_size))
        self.weights = nn.Linear(width, prompt_len)
        self.conv = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights(x.mean(dim=(-2, -1))).softmax(dim=1)  # (B, prompt_len)
        prompt = torch.einsum("bn,nchw->bchw", w, self.components)
        return self.conv(F.interpolate(prompt, x.shape[-2:], mode="bilinear", align_corners=False))


class PromptBlock(nn.Module):
    """``F' = Conv1x1(TB([F, P]))`` with ``P`` from :class:`PromptGeneration`."""

    def __init__(self, width: int, out_width: int, prompt_dim: int, prompt_size: int, config: PromptIRConfig):
        super().__init__()
        self.generate = PromptGeneration(width, prompt_dim, config.prompt_len, prompt_size)
        self.interact = RestormerBlock(width + prompt_dim, config.prompt_heads, config.ffn_expansion, config.bias,
                                       config.layer_norm)
        self.reduce = nn.Conv2d(width + prompt_dim, out_width, 1, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.interact(torch.cat([x, self.generate(x)], dim=1)))


class PromptIR(EncoderDecoder):
    def __init__(self, config: PromptIRConfig):
        def make_block(dim: int, heads: int, stage: str, index: int) -> RestormerBlock:
            return RestormerBlock(dim, heads, config.ffn_expansion, config.bias, config.layer_norm)

        def make_bridge(level: int, width: int) -> tuple[PromptBlock, int]:
            out = width // 2 if level == LEVELS - 1 else width  # after the bottleneck: 8C -> 4C
            i = level - 1
            return PromptBlock(width, out, config.prompt_dims[i], config.prompt_sizes[i], config), out

        super().__init__(make_block, config.dim, config.num_blocks, config.num_refinement_blocks,
                         config.heads, config.in_channels, config.out_channels, make_bridge=make_bridge)
        self.config = config


def _build(**config) -> PromptIR:
    return PromptIR(config_from_dict(PromptIRConfig, config))


register_model("promptir", _build, asdict(PromptIRConfig()))  # the code release's size
