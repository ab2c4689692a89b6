"""A small configurable U-Net for image-to-image tasks (denoising, inpainting, segmentation)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError

Norm = Literal["none", "batch", "group", "instance"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise InputError(f"unknown normalisation {kind!r}; use none, batch, group or instance")


def _block(cin: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none"), _norm(norm, cout), nn.LeakyReLU(0.1),
        nn.Conv2d(cout, cout, 3, padding=1, bias=norm == "none"), _norm(norm, cout), nn.LeakyReLU(0.1),
    )


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """``x`` (..., H, W) padded at the bottom and right to a multiple of ``m`` (reflect; replicate where the
    image is too small to reflect)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")


class _UNetLevels(nn.Module):
    """The levels every U-Net here shares: ``stem`` and ``down`` blocks (each halving the resolution and
    doubling the channels), then ``up`` (transposed convolutions) and ``merge`` blocks over the skip
    connections. Subclasses call :meth:`_encoder` then :meth:`_decoder` in ``__init__`` (whatever they
    register in between, e.g. a bottleneck, keeps its place in the state dict)."""

    depth: int

    def _encoder(self, in_channels: int, ch: list[int], norm: str) -> None:
        self.stem = _block(in_channels, ch[0], norm)
        self.down = nn.ModuleList(_block(ch[k], ch[k + 1], norm) for k in range(self.depth))

    def _decoder(self, ch: list[int], norm: str) -> None:
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[k + 1], ch[k], 2, stride=2) for k in range(self.depth))
        self.merge = nn.ModuleList(_block(2 * ch[k], ch[k], norm) for k in range(self.depth))

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The features of every level, full resolution first (``x`` padded to a multiple of ``2**depth``)."""
        feats = [self.stem(x)]
        for down in self.down:
            feats.append(down(F.max_pool2d(feats[-1], 2)))
        return feats

    def _decode(self, y: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        """Up from the coarsest features ``y`` through the skip connections ``feats`` to full resolution."""
        for k in reversed(range(self.depth)):
            y = self.merge[k](torch.cat([self.up[k](y), feats[k]], dim=1))
        return y


class UNet(_UNetLevels):
    """U-Net: ``depth`` down/up levels with skip connections; channels double at each level.

    Inputs of any height and width are accepted: they are padded (reflect) to a multiple of
    ``2**depth`` and the output is cropped back, so ``forward`` maps ``(N, in_channels, H, W)``
    to ``(N, out_channels, H, W)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and output images.
    depth : int
        Number of 2x down-samplings (0 gives a plain convolutional network).
    base_channels : int
        Feature channels at full resolution; level ``k`` has ``base_channels * 2**k``.
    residual : bool
        Predict a correction: ``output = input + net(input)`` (needs ``in_channels == out_channels``).
    norm : {"none", "batch", "group", "instance"}
        Normalisation after each convolution. ``"group"`` does not depend on batch size.

    Attributes
    ----------
    arch_name : str
        ``"unet"``, the key in :func:`scopenet.nn.build_architecture`.
    config : dict
        The constructor arguments, enough to rebuild the network.
    """

    arch_name = "unet"

    def __init__(self, in_channels: int = 1, out_channels: int = 1, depth: int = 3, base_channels: int = 32,
                 residual: bool = False, norm: Norm = "group"):
        super().__init__()
        if depth < 0 or base_channels < 1 or in_channels < 1 or out_channels < 1:
            raise InputError(f"invalid U-Net size: depth={depth}, base_channels={base_channels}, "
                             f"in_channels={in_channels}, out_channels={out_channels}")
        if residual and in_channels != out_channels:
            raise InputError("a residual U-Net needs in_channels == out_channels")
        _norm(norm, 8)  # validate early
        self.config = dict(in_channels=in_channels, out_channels=out_channels, depth=depth,
                           base_channels=base_channels, residual=residual, norm=norm)
        self.depth = depth
        self.residual = residual
        ch = [base_channels * 2 ** k for k in range(depth + 1)]
        self._encoder(in_channels, ch, norm)
        self._decoder(ch, norm)
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feats = self._encode(pad_to_multiple(x, 2 ** self.depth))
        y = self.head(self._decode(feats[-1], feats))[..., :h, :w]
        return x + y if self.residual else y
