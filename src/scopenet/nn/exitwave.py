"""Networks for exit-wave phase recovery from the amplitude (Ede's chapter 7).

- :class:`ExitWaveNet`: amplitude ``(B, 1, H, W)`` in, phase components ``(B, 2, H, W)`` out,
  ``(cos theta, sin theta)`` L2-normalised per pixel so that ``|exp(i theta)| = 1``. Convolutions are
  followed by batch normalisation and an activation (ReLU in residual blocks, leaky ReLU of slope
  0.1 elsewhere), none after the last layer, as in the chapter (fig. 3), but at a size that trains
  on CPU cores: a small encoder-decoder with residual blocks at the coarsest level and a
  global-context branch (the mean of the coarsest features, mapped and added back everywhere) so
  that image-wide properties such as thickness reach every pixel.
  :meth:`ExitWaveNet.forward_raw` also returns the unnormalised output; trained with an MSE it
  estimates the conditional mean of ``(cos theta, sin theta)``, whose length (the mean resultant
  length) is the per-pixel phase confidence.
- :class:`PhaseDiscriminator`: the least-squares GAN critic on ``{A cos theta, A sin theta}``, every
  convolution spectrally normalised and without biases (chapter eqs. 22-23).

Any input size works: inputs are reflect-padded to a multiple of 4 and the output cropped back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import register_architecture

__all__ = ["ExitWaveNet", "PhaseDiscriminator", "unit_components"]


def unit_components(raw: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Channelwise L2 normalisation of ``(B, 2, H, W)`` phase components (zero vectors map to (1, 0))."""
    norm = torch.sqrt((raw ** 2).sum(1, keepdim=True) + eps ** 2)
    return raw / norm


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True))


class _Res(nn.Module):
    def __init__(self, c: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.body(x))


class ExitWaveNet(nn.Module):
    """Amplitude -> unit phase components ``(cos theta, sin theta)``.

    The input is folded 2x2 into channels (pixel unshuffle), processed at 1/2 and 1/4 resolution
    (residual blocks with dilations 1, 2, 4 and the global-context branch at 1/4) and unfolded back
    by a pixel shuffle, which keeps full-resolution output at a fraction of the cost.

    Parameters
    ----------
    channels : int
        Feature channels at 1/2 resolution (doubled at 1/4).
    blocks : int
        Residual blocks at 1/4 resolution (dilations cycle 1, 2, 4 to widen the receptive field).
    context : bool
        Add the global-context branch at 1/4 resolution.

    Notes
    -----
    Input: the amplitude divided by its mean (so mean 1); the network subtracts 1 itself.
    """

    arch_name = "exitwave-net"

    def __init__(self, channels: int = 32, blocks: int = 4, context: bool = True):
        super().__init__()
        self.config = {"channels": int(channels), "blocks": int(blocks), "context": bool(context)}
        c = int(channels)
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), _cbr(4, c), _cbr(c, c))
        self.down = _cbr(c, 2 * c, stride=2)
        self.body = nn.Sequential(*[_Res(2 * c, dilation=(1, 2, 4)[i % 3]) for i in range(int(blocks))])
        self.context = nn.Sequential(nn.Linear(2 * c, 2 * c), nn.LeakyReLU(0.1), nn.Linear(2 * c, 2 * c)) \
            if context else None
        self.up = _cbr(2 * c + c, c)
        self.head = nn.Sequential(_cbr(c, c), nn.Conv2d(c, 8, 3, padding=1), nn.PixelShuffle(2))

    def forward_raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(unit, raw)``: the normalised components and the raw output, each ``(B, 2, H, W)``."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        z = x - 1.0
        if ph or pw:
            mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
            z = F.pad(z, (0, pw, 0, ph), mode=mode)
        s1 = self.stem(z)
        s2 = self.body(self.down(s1))
        if self.context is not None:
            s2 = s2 + self.context(s2.mean((2, 3)))[:, :, None, None]
        u = F.interpolate(s2, size=s1.shape[-2:], mode="bilinear", align_corners=False)
        u = self.up(torch.cat([u, s1], 1))
        raw = self.head(u)[..., :h, :w]
        return unit_components(raw), raw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` amplitude (mean 1) -> ``(B, 2, H, W)`` unit ``(cos theta, sin theta)``."""
        return self.forward_raw(x)[0]


class PhaseDiscriminator(nn.Module):
    """Least-squares GAN discriminator on ``{A cos theta, A sin theta}`` (``(B, 2, H, W)``).

    Strided 3x3 convolutions with leaky ReLU, every convolution spectrally normalised and without
    biases; the output is one score per image (the mean of a patch map).
    """

    arch_name = "exitwave-discriminator"

    def __init__(self, channels: int = 16, depth: int = 4):
        super().__init__()
        self.config = {"channels": int(channels), "depth": int(depth)}
        sn = nn.utils.parametrizations.spectral_norm
        layers, cin = [], 2
        for i in range(int(depth)):
            cout = int(channels) * 2 ** i
            layers += [sn(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)), nn.LeakyReLU(0.2)]
            cin = cout
        layers.append(sn(nn.Conv2d(cin, 1, 3, padding=1, bias=False)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean((1, 2, 3))


register_architecture("exitwave-net", ExitWaveNet)
register_architecture("exitwave-discriminator", PhaseDiscriminator)
