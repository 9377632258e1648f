"""The 4-level encoder-decoder shared by MOE-WIRNet and Restormer.

Both networks have the same skeleton (MOE-WIRNet Sec. 3.1, Restormer Fig. 2):

* overlap patch embedding ``F_0 = H_embed(I)`` (3x3 conv);
* three encoder levels, each followed by pixel-unshuffle downsampling, and a bottleneck;
* a symmetric decoder, ``F_dec^l = H_dec^l([H_up(F_dec^{l+1}), F_enc^l])`` (concatenation skips;
  a 1x1 conv halves the channels at levels 2 and 3, level 1 keeps ``2C``);
* a refinement stage and the global residual ``I_hat = I + H_refine(F_dec^1)``.

Optionally (``residual_gate``; in neither paper) the residual is scaled per image by a gate read
from the bottleneck, ``I_hat = I + g * H_refine(F_dec^1)`` with ``g = sigmoid(w . mean(F_bottleneck) + b)``:
a global switch a convolutional decoder lacks, so a network that cannot yet remove raindrops can
leave those images alone while it corrects hazy ones (docs/benchmarks.md, "Raindrop").

Optionally (``prior="dcp"``; in neither paper) the dark channel prior's dehazed image is computed
from the input and embedded beside it, ``F_0 = H_embed(I) + H_prior(DCP(I))`` (:class:`PriorInput`):
a global estimate of the airlight and transmission that a network trained on small patches
cannot compute itself. ``H_prior`` (``prior_embed``, a 3x3 conv like ``H_embed``) starts at zero,
so the network starts as the same network without the prior (and a file trained without it loads
with zeros there); its own module, so training can give it its own learning rate
(``optim.lr_scale``). ``prior="dcp_mix"`` adds a second use of the same prior at the output,
``I_hat = I + M (P - I) + H_refine(F)`` with ``P = DCP(I)`` and a per-pixel ``M`` read from the
refined features (:class:`PriorMix`, zero at the start): the network decides per pixel how much of
the prior's dehazing to take, instead of having to re-derive it from an embedding.

They differ only in their transformer block, which a network passes in as ``make_block``.
PromptIR (Potlapalli et al. 2023) is the same skeleton with a module between the decoder
levels, applied to the feature coming up from the level below before it is upsampled
(``make_bridge``; without it, nothing is there).
Any input size works: the image is reflect-padded to a multiple of 8 and cropped back.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from .dcp import DCPConfig, DarkChannelPrior
from .layers import Downsample, Upsample, pad_to_multiple

__all__ = ["EncoderDecoder", "ResidualGate", "PriorInput", "PriorMix", "BlockFactory", "BridgeFactory", "STAGES", "LEVELS",
           "PRIORS", "level_widths"]

#: Stage names passed to the block factory, in forward order.
STAGES = ("encoder", "bottleneck", "decoder", "refinement")

#: ``make_block(dim, heads, stage, index)`` -> one transformer block; ``index`` counts blocks
#: within one level (used e.g. to alternate shifted windows).
BlockFactory = Callable[[int, int, str, int], nn.Module]

#: ``make_bridge(level, width) -> (module, out_width)``: the module applied to the ``width``
#: channels entering decoder level ``level`` (3, 2, 1: from the bottleneck, from level 3, from
#: level 2) before they are upsampled, and the channels it gives back.
BridgeFactory = Callable[[int, int], tuple[nn.Module, int]]

LEVELS = 4
_MULTIPLE = 2 ** (LEVELS - 1)
#: ``prior`` options: ``none``, ``dcp`` (the dark channel prior's image embedded beside the photo) or
#: ``dcp_mix`` (also mixed into the output, :class:`PriorMix`).
PRIORS = ("none", "dcp", "dcp_mix")


def level_widths(dim: int) -> list[int]:
    """Channels of the encoder levels, top to bottleneck: ``C, 2C, 4C, 8C``."""
    return [dim * 2 ** lvl for lvl in range(LEVELS)]


class EncoderDecoder(nn.Module):
    def __init__(self, make_block: BlockFactory, dim: int, num_blocks: Sequence[int],
                 num_refinement_blocks: int, heads: Sequence[int], in_channels: int = 3,
                 out_channels: int = 3, zero_init_output: bool = False,
                 make_bridge: BridgeFactory | None = None, residual_gate: bool = False,
                 prior: str = "none"):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if len(num_blocks) != LEVELS or len(heads) != LEVELS:
            raise ValueError(f"num_blocks and heads need {LEVELS} entries (one per level), "
                             f"got {list(num_blocks)} and {list(heads)}")
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be even (each downsampling halves the channels before "
                             f"pixel-unshuffle), got {dim}")
        if in_channels != out_channels:
            raise ValueError("the global residual I + H(F) needs in_channels == out_channels")

        def level(width: int, n: int, head: int, stage: str) -> nn.Sequential:
            return nn.Sequential(*[make_block(width, head, stage, i) for i in range(n)])

        widths = level_widths(dim)
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)
        self.prior = PriorInput(in_channels) if prior != "none" else None
        if self.prior is not None:  # starts at zero: the network starts as it is without the prior
            self.prior_embed = nn.Conv2d(self.prior.channels, dim, 3, padding=1, bias=False)
            nn.init.zeros_(self.prior_embed.weight)
        self.prior_mix = PriorMix(2 * dim) if prior == "dcp_mix" else None
        self.encoders = nn.ModuleList(
            level(widths[lvl], num_blocks[lvl], heads[lvl], "encoder") for lvl in range(LEVELS - 1))
        self.downs = nn.ModuleList(Downsample(widths[lvl]) for lvl in range(LEVELS - 1))
        self.bottleneck = level(widths[-1], num_blocks[-1], heads[-1], "bottleneck")
        # Decoder, deepest level first: level 3, 2, 1. Each level's input (the bottleneck's or
        # the level below's output) passes a bridge, is upsampled (halving its channels) and is
        # concatenated with the encoder's skip.
        dec_levels = list(range(LEVELS - 2, -1, -1))
        bridges, up_widths = [], []
        for lvl in dec_levels:
            width_in = widths[lvl + 1]
            bridge, width = make_bridge(lvl + 1, width_in) if make_bridge else (nn.Identity(), width_in)
            if lvl == 0 and width != widths[1]:
                raise ValueError(f"the bridge into decoder level 1 must keep its {widths[1]} channels (level 1 "
                                 f"has no 1x1 reduction), got {width}")
            bridges.append(bridge)
            up_widths.append(width)
        self.bridges = nn.ModuleList(bridges)
        self.ups = nn.ModuleList(Upsample(width) for width in up_widths)
        self.reduces = nn.ModuleList(
            nn.Conv2d(width // 2 + widths[lvl], widths[lvl], 1, bias=False) if lvl > 0 else nn.Identity()
            for lvl, width in zip(dec_levels, up_widths))
        self.decoders = nn.ModuleList(
            level(widths[lvl] if lvl > 0 else 2 * dim, num_blocks[lvl], heads[lvl], "decoder")
            for lvl in dec_levels)
        self.refinement = level(2 * dim, num_refinement_blocks, heads[0], "refinement")
        self.output = nn.Conv2d(2 * dim, out_channels, 3, padding=1, bias=False)
        if zero_init_output:  # H_refine starts at 0: the untrained network returns its input
            nn.init.zeros_(self.output.weight)
        self.gate = ResidualGate(widths[-1]) if residual_gate else None

    def forward(self, image: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """``image`` ``(B, C, H, W)`` -> restored. ``prior``: the prior's channels for this image,
        computed elsewhere (the restorer computes them on the whole photo and passes each tile its
        crop); by default ``self.prior(image)``. Ignored by a network without a prior."""
        if image.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        x = pad_to_multiple(image, _MULTIPLE, mode="reflect")
        feat = self.embed(x)
        if self.prior is not None:  # F_0 = H_embed(I) + H_prior(DCP(I))
            prior = pad_to_multiple(self.prior(image) if prior is None else prior, _MULTIPLE, mode="reflect")
            feat = feat + self.prior_embed(prior)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            feat = encoder(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.bottleneck(feat)
        gate = self.gate(feat) if self.gate is not None else None
        for bridge, up, reduce, decoder, skip in zip(self.bridges, self.ups, self.reduces, self.decoders,
                                                     reversed(skips)):
            feat = decoder(reduce(torch.cat([up(bridge(feat)), skip], dim=1)))
        feat = self.refinement(feat)
        residual = self.output(feat)
        if gate is not None:
            residual = gate * residual
        if self.prior_mix is not None:  # I_hat = I + M (P - I) + H_refine
            residual = residual + self.prior_mix(feat) * (prior - x)
        return (x + residual)[..., :h, :w]


class PriorMix(nn.Module):
    """``M = Conv_3x3(F)``, one number per pixel, shaped (B, 1, H, W): how far the output moves
    from the input toward the prior's image, ``I_hat = I + M (P - I) + H_refine``.

    Starts at ``M = 0`` (weight and bias zero), so the network starts as it is without it; the
    gradient of ``M`` is ``(P - I) . dL/dI_hat``, which is large and consistent on hazy pixels.
    Linear, not a sigmoid: a saturated sigmoid passes no gradient (``ResidualGate``'s failure,
    docs/architecture.md, choice 12)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(width, 1, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


class ResidualGate(nn.Module):
    """``g = sigmoid(w . mean_xy(F) + b)``, one number in (0, 1) per image, shaped (B, 1, 1, 1).

    Starts at ``g = 0.5`` for every image (``w = 0``, ``b = 0``).
    """

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))  # (B, C)
        return torch.sigmoid(self.linear(pooled)).reshape(-1, 1, 1, 1)


class PriorInput(nn.Module):
    """``DCP(I)`` clamped to ``[0, 1]``, ``(B, 3, H, W)``: the dark channel prior's dehazed image
    (:mod:`moewir.models.dcp`, default parameters) of the network's input, for its own embedding
    (``prior_embed``). It learns nothing and passes no gradient to the image. The network computes it
    on what it is given; :class:`moewir.Restorer` computes it once on the whole photo and gives
    each tile its crop, so every tile sees the photo's one airlight."""

    channels = 3

    def __init__(self, in_channels: int):
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"prior='dcp' needs RGB input (in_channels=3), got in_channels={in_channels}")
        self.dcp = DarkChannelPrior(DCPConfig())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.dcp(image.float()).clamp(0, 1).to(image.dtype)
