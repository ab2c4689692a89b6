"""Ede & Beanland's atrous convolutional encoder-decoder for electron-micrograph denoising.

J. M. Ede and R. Beanland, *Improving electron micrograph signal-to-noise with an atrous convolutional
encoder-decoder*, Ultramicroscopy 202, 18-25 (2019); thesis chapter 6. A DeepLabv3+-style network:

* **Encoder**: a modified Xception. Entry flow: two 3x3 convolutions (32 channels stride 2, then 64),
  then three residual blocks of depthwise-separable convolutions (128, 256, 728 channels), each
  ending in a stride-2 separable convolution with a strided 1x1 shortcut. A 512 x 512 input is thus
  reduced to 32 x 32 x 728 (output stride 16). Middle flow: ``middle_blocks`` (11) residual blocks
  of three 728-channel separable convolutions with identity shortcuts.
* **ASPP**: a 1x1 branch, three 3x3 atrous separable branches with rates 6, 12 and 18, and an
  image-level branch (global average pool, 1x1 convolution, upsampled), each 256 channels,
  concatenated and projected by a 1x1 convolution to 32 x 32 x 256.
* **Decoder**, multi-stage: upsample x4 and concatenate the entry-flow block-1 features
  (128 x 128, reduced to 48 channels), two separable convolutions; upsample x2 and concatenate the
  stem features (256 x 256, reduced to 24 channels), one separable convolution; upsample x2 to
  512 x 512, one separable convolution and a 1x1 convolution to the output image.

Every convolution is followed by batch normalisation and then ReLU6; weights are Xavier-uniform
initialised, biases zero (as in the paper). Training recipe (not run here): loss ``1000*MSE``
Huberised above 1 (:func:`scopenet.tasks.denoise.train.huber_mse_1000`), Adam with beta1 = 0.5,
L2 ``5e-5`` times the quadrature sum of the weights (:func:`l2_penalty`), batch normalisation frozen
late in training (:func:`freeze_batchnorm`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InputError
from . import register_architecture

__all__ = ["SeparableConv", "XceptionBlock", "ASPP", "AtrousXception", "l2_penalty", "freeze_batchnorm"]


class ConvBN(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm -> ReLU6."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, relu: bool = True):
        layers = [nn.Conv2d(cin, cout, k, stride, padding=dilation * (k // 2), dilation=dilation, bias=False),
                  nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (optionally strided / dilated) -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, relu: bool = True):
        layers = [nn.Conv2d(cin, cin, 3, stride, padding=dilation, dilation=dilation, groups=cin, bias=False),
                  nn.BatchNorm2d(cin), nn.ReLU6(inplace=True),
                  nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class XceptionBlock(nn.Module):
    """Three separable convolutions plus a shortcut (identity, or strided 1x1 conv + BN)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(SeparableConv(cin, cout), SeparableConv(cout, cout),
                                  SeparableConv(cout, cout, stride=stride, relu=False))
        self.skip = nn.Identity() if (cin == cout and stride == 1) else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, atrous rates ``rates`` and an image-level branch."""

    def __init__(self, cin: int = 728, cout: int = 256, rates: tuple[int, ...] = (6, 12, 18)):
        super().__init__()
        self.branches = nn.ModuleList([ConvBN(cin, cout, 1)] + [SeparableConv(cin, cout, dilation=r) for r in rates])
        self.image_pool = ConvBN(cin, cout, 1)
        self.project = ConvBN(cout * (len(rates) + 2), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        g = self.image_pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(g.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(outs, dim=1))


class AtrousXception(nn.Module):
    """Ede & Beanland's denoiser (see the module docstring). Maps ``(N, C, H, W)`` to ``(N, C, H, W)``;
    ``H`` and ``W`` must be multiples of 16 (512 in the paper).

    Parameters
    ----------
    in_channels, out_channels : int
    middle_blocks : int
        Middle-flow blocks (11).
    aspp_rates : tuple of int
        Atrous rates (6, 12, 18).
    aspp_channels : int
        ASPP and decoder width (256).

    Attributes
    ----------
    arch_name : str
        ``"atrous-xception"``.
    config : dict
    """

    arch_name = "atrous-xception"

    def __init__(self, in_channels: int = 1, out_channels: int = 1, middle_blocks: int = 11,
                 aspp_rates: tuple[int, ...] = (6, 12, 18), aspp_channels: int = 256):
        super().__init__()
        self.config = dict(in_channels=in_channels, out_channels=out_channels, middle_blocks=middle_blocks,
                           aspp_rates=list(aspp_rates), aspp_channels=aspp_channels)
        a = aspp_channels
        self.stem = nn.Sequential(ConvBN(in_channels, 32, 3, stride=2), ConvBN(32, 64))       # /2, 64
        self.block1 = XceptionBlock(64, 128, stride=2)                                         # /4, 128
        self.block2 = XceptionBlock(128, 256, stride=2)                                        # /8, 256
        self.block3 = XceptionBlock(256, 728, stride=2)                                        # /16, 728
        self.middle = nn.Sequential(*[XceptionBlock(728, 728) for _ in range(middle_blocks)])  # /16, 728
        self.aspp = ASPP(728, a, tuple(aspp_rates))                                            # /16, 256
        self.low1 = ConvBN(128, 48, 1)
        self.dec1 = nn.Sequential(SeparableConv(a + 48, a), SeparableConv(a, a))              # /4
        self.low2 = ConvBN(64, 24, 1)
        self.dec2 = SeparableConv(a + 24, a // 2)                                              # /2
        self.dec3 = SeparableConv(a // 2 + in_channels, a // 4)                                # /1
        self.head = nn.Conv2d(a // 4, out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @staticmethod
    def _up(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def stages(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, in order: ``stem, block1, block2, block3, middle, aspp, dec1, dec2, dec3, out``."""
        if x.ndim != 4 or x.shape[-1] % 16 or x.shape[-2] % 16:
            raise InputError(f"atrous-xception needs (N, C, H, W) with H, W multiples of 16, got {tuple(x.shape)}")
        s = {}
        s["stem"] = self.stem(x)
        s["block1"] = self.block1(s["stem"])
        s["block2"] = self.block2(s["block1"])
        s["block3"] = self.block3(s["block2"])
        s["middle"] = self.middle(s["block3"])
        s["aspp"] = self.aspp(s["middle"])
        d = torch.cat([self._up(s["aspp"], s["block1"]), self.low1(s["block1"])], dim=1)
        s["dec1"] = self.dec1(d)
        d = torch.cat([self._up(s["dec1"], s["stem"]), self.low2(s["stem"])], dim=1)
        s["dec2"] = self.dec2(d)
        s["dec3"] = self.dec3(torch.cat([self._up(s["dec2"], x), x], dim=1))
        s["out"] = self.head(s["dec3"])
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)["out"]


def l2_penalty(model: nn.Module, rate: float = 5e-5) -> torch.Tensor:
    """``rate`` times the quadrature sum (sqrt of the sum of squares) of all trainable parameters."""
    sq = sum((p ** 2).sum() for p in model.parameters() if p.requires_grad)
    return rate * torch.sqrt(sq)


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Put every BatchNorm layer in eval mode with frozen affine parameters (Ede's late-training freeze)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
    return model


register_architecture("atrous-xception", AtrousXception, replace=True)
