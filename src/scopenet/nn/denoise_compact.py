"""The compact default denoising network: a small residual U-Net working at half resolution.

The input is folded 2x2 into 4 channels (pixel unshuffle), passed through a three-level U-Net whose
convolutions all run at 1/2, 1/4 and 1/8 of the input resolution, unfolded back (pixel shuffle) and
added to the input, so the network predicts the noise to remove. Working below full resolution keeps
a 512 x 512 image at about 3 GMAC, cheap enough for a laptop CPU.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from . import register_architecture


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class CompactDenoiser(nn.Module):
    """Residual U-Net on a 2x2 pixel-unshuffled image.

    Maps ``(N, 1, H, W)`` to ``(N, 1, H, W)`` for any ``H, W`` (inputs are reflect-padded to a
    multiple of ``2 * 2**(len(widths)-1)`` and cropped back).

    Parameters
    ----------
    widths : sequence of int
        Feature channels per level (level 0 at half the input resolution).
    residual : bool
        ``output = input + net(input)``.

    Attributes
    ----------
    arch_name : str
        ``"denoise-compact"``, the key in :func:`scopenet.nn.build_architecture`.
    config : dict
        Constructor arguments.
    """

    arch_name = "denoise-compact"

    def __init__(self, widths: Sequence[int] = (24, 48, 96), residual: bool = True):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 1 or min(widths) < 1:
            raise InputError(f"widths must be a non-empty list of positive integers, got {widths}")
        self.config = dict(widths=widths, residual=bool(residual))
        self.residual = bool(residual)
        self.levels = len(widths)
        self.head = _conv(4, widths[0])
        self.enc = nn.ModuleList()
        for k, w in enumerate(widths):
            cin = widths[0] if k == 0 else widths[k - 1]
            self.enc.append(nn.Sequential(_conv(cin, w), _conv(w, w)))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2)
                                for k in range(len(widths) - 1))
        self.dec = nn.ModuleList(_conv(2 * widths[k], widths[k]) for k in range(len(widths) - 1))
        self.tail = nn.Conv2d(widths[0], 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1:
            raise InputError(f"expected input of shape (N, 1, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = 2 ** self.levels
        ph, pw = (-h) % m, (-w) % m
        xp = x
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            xp = F.pad(x, (0, pw, 0, ph), mode=mode)
        y = self.head(F.pixel_unshuffle(xp, 2))
        feats = []
        for k, enc in enumerate(self.enc):
            if k:
                y = F.max_pool2d(y, 2)
            y = enc(y)
            feats.append(y)
        for k in reversed(range(self.levels - 1)):
            y = self.dec[k](torch.cat([self.up[k](y), feats[k]], dim=1))
        y = F.pixel_shuffle(self.tail(y), 2)[..., :h, :w]
        return x + y if self.residual else y


register_architecture("denoise-compact", CompactDenoiser, replace=True)

__all__ = ["CompactDenoiser"]
