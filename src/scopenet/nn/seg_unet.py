"""A U-Net for per-pixel classification with a dilated bottleneck (``"seg-unet"``)."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import InputError
from .unet import _norm, _UNetLevels, pad_to_multiple


class SegUNet(_UNetLevels):
    """U-Net giving per-pixel class logits, with dilated convolutions at the coarsest level.

    The encoder halves the resolution ``depth`` times (channels double each time); the bottleneck is a
    stack of 3x3 convolutions with the given ``dilation`` rates (context without more down-sampling,
    as in AtomAI's dilated U-Net); the decoder upsamples with skip connections. Any height and width
    are accepted (reflect-padded to a multiple of ``2**depth``, the output cropped back).

    Parameters
    ----------
    in_channels : int
        Channels of the input image (1 for a micrograph).
    n_classes : int
        Output channels: one logit per class (softmax over them gives the class probabilities).
    depth : int
        Number of 2x down-samplings.
    base_channels : int
        Feature channels at full resolution; level ``k`` has ``base_channels * 2**k``.
    dilation : list of int
        Dilation rates of the bottleneck convolutions (``[1]``: a plain U-Net).
    norm : {"none", "batch", "group", "instance"}
        Normalisation after each convolution.
    dropout : float
        Dropout probability in the bottleneck (0 to disable).

    Shapes: ``(N, in_channels, H, W)`` -> ``(N, n_classes, H, W)`` logits.
    """

    arch_name = "seg-unet"

    def __init__(self, in_channels: int = 1, n_classes: int = 2, depth: int = 3, base_channels: int = 16,
                 dilation: list[int] | tuple[int, ...] = (1, 2, 4), norm: str = "group", dropout: float = 0.0):
        super().__init__()
        dil = [int(d) for d in dilation]
        if depth < 0 or base_channels < 1 or in_channels < 1 or n_classes < 2 or not dil or min(dil) < 1:
            raise InputError(f"invalid segmentation U-Net: depth={depth}, base_channels={base_channels}, "
                             f"in_channels={in_channels}, n_classes={n_classes} (at least 2), dilation={dil}")
        _norm(norm, 8)
        self.config = dict(in_channels=in_channels, n_classes=n_classes, depth=depth, base_channels=base_channels,
                           dilation=dil, norm=norm, dropout=float(dropout))
        self.depth = depth
        ch = [base_channels * 2 ** k for k in range(depth + 1)]
        self._encoder(in_channels, ch, norm)
        c = ch[-1]
        self.bottleneck = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 3, padding=d, dilation=d, bias=norm == "none"), _norm(norm, c),
                          nn.LeakyReLU(0.1)) for d in dil)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self._decoder(ch, norm)
        self.head = nn.Conv2d(ch[0], n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feats = self._encode(pad_to_multiple(x, 2 ** self.depth))
        y = feats[-1]
        for conv in self.bottleneck:
            y = y + conv(y)  # residual dilated context
        return self.head(self._decode(self.drop(y), feats))[..., :h, :w]


def _register() -> None:
    from . import register_architecture

    register_architecture("seg-unet", SegUNet, replace=True)


_register()
