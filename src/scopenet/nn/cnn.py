"""Small image classifiers for SPM tip-state judgement.

``TipNet`` is the configurable convolutional family of the SPM review's Table 1 (five conv blocks,
8-16-16-32-64 channels, one dense layer of 256); ``TipResNet`` is a ResNet-style option. Both end
in raw logits (apply sigmoid for multi-label, softmax for single-label) and expose the last
convolutional feature map for class activation maps (:meth:`features` / :meth:`head`).

``TipNet(line_k=16)`` adds a scan-line branch (:class:`LineStats`): per-pixel features from a full-resolution
3x3 and a 1x1 convolution, their maximum along every row and every column, and the ``line_k``
largest of those per channel. The dense layer sees a sorted list of the most anomalous lines, so it
can count scarred or jumped lines, which global average pooling averages away.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, pool: bool, dropout: float = 0.0, stride: int = 1):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        if pool:
            layers.append(nn.MaxPool2d(2))
        if dropout:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class LineStats(nn.Module):
    """Scan-line statistics: the ``k`` strongest rows and columns of learnt per-pixel features.

    Input [B, C_in, H, W] -> output [B, 2 * channels * k] (rows first, then columns; each
    descending). Rows and columns are both summarised because training rotates images by 90 degrees.
    """

    def __init__(self, in_channels: int = 1, channels: int = 8, k: int = 16):
        super().__init__()
        self.k = int(k)
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True))
        self.out_features = 2 * channels * self.k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if min(x.shape[-2:]) < k:
            raise ValueError(f"LineStats(k={k}) needs images of at least {k} lines, got {tuple(x.shape[-2:])}")
        h = self.conv(x)
        r = torch.topk(h.amax(3), k, dim=-1).values  # strongest rows [B, C, k]
        c = torch.topk(h.amax(2), k, dim=-1).values  # strongest columns
        return torch.cat([r.flatten(1), c.flatten(1)], 1)


class TipNet(nn.Module):
    """Conv blocks + global average pooling + one dense layer.

    Parameters
    ----------
    n_classes : int
        Number of outputs (6 categories, or 2 for good/bad).
    channels : sequence of int
        Channels of the conv blocks (default 8-16-16-32-64 as in the review's Table 1).
    dense : int
        Width of the dense layer.
    in_channels : int
    dropout : float
        Dropout before the output layer.
    stem_stride : int
        Stride of the first convolution (1 = the review's network; 2 = the ``fast`` preset, which
        quarters the cost of every later layer at 64x64 for a small loss of fine detail).
    line_k : int
        0 (default): no scan-line branch; otherwise the number of strongest rows/columns that
        :class:`LineStats` hands to the dense layer.

    Shapes: input [B, in_channels, H, W] (H, W divisible by ``stem_stride * 2**(len(channels)-1)`` is
    best), output [B, n_classes].
    """

    arch_name = "tipnet"

    def __init__(self, n_classes: int = 6, channels: Sequence[int] = (8, 16, 16, 32, 64), dense: int = 256,
                 in_channels: int = 1, dropout: float = 0.3, stem_stride: int = 1, line_k: int = 0):
        super().__init__()
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {stem_stride}")
        if line_k < 0:
            raise ValueError(f"line_k must be >= 0, got {line_k}")
        self.config = {"n_classes": n_classes, "channels": list(channels), "dense": dense,
                       "in_channels": in_channels, "dropout": dropout, "stem_stride": stem_stride}
        if line_k:
            self.config["line_k"] = int(line_k)
        blocks, c = [], in_channels
        for i, co in enumerate(channels):
            blocks.append(_ConvBlock(c, co, pool=i < len(channels) - 1, stride=stem_stride if i == 0 else 1))
            c = co
        self.body = nn.Sequential(*blocks)
        self.lines = LineStats(in_channels, k=line_k) if line_k else None
        self.fc1 = nn.Linear(c + (self.lines.out_features if self.lines is not None else 0), dense)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(dense, n_classes)
        self.feature_channels = c

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last conv feature map [B, C, h, w] (used for class activation maps)."""
        return self.body(x)

    def extras(self, x: torch.Tensor) -> torch.Tensor | None:
        """Inputs of the head besides the feature map: the scan-line statistics, or ``None``."""
        return None if self.lines is None else self.lines(x)

    def head(self, f: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        g = f.mean(dim=(2, 3))
        if self.lines is not None:
            if extra is None:
                raise ValueError("this TipNet has a scan-line branch: pass head(f, extras(x))")
            g = torch.cat([g, extra], 1)
        return self.out(self.drop(torch.relu(self.fc1(g))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), self.extras(x))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return torch.relu(y + self.skip(x))


class TipResNet(nn.Module):
    """A small ResNet: stem conv, residual stages (stride 2 between), global pooling, linear head."""

    arch_name = "tipresnet"

    def __init__(self, n_classes: int = 6, widths: Sequence[int] = (16, 32, 64, 128), in_channels: int = 1,
                 dropout: float = 0.2):
        super().__init__()
        self.config = {"n_classes": n_classes, "widths": list(widths), "in_channels": in_channels,
                       "dropout": dropout}
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(_ResBlock(c, w, stride=1 if i == 0 else 2))
            c = w
        self.body = nn.Sequential(*stages)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(c, n_classes)
        self.feature_channels = c

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(x))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(f.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def class_activation_map(model: nn.Module, x: torch.Tensor, class_index: int) -> torch.Tensor:
    """Grad-CAM map [B, H, W] in [0, 1] for one output class, upsampled to the input size.

    Works for any model exposing ``features(x)`` and ``head(features)`` (or ``head(features, extras(x))``
    where the model has :meth:`TipNet.extras`; the map then explains the convolutional evidence only).
    For an ensemble (a model with ``members``) the members' maps are averaged and re-normalised.
    """
    if hasattr(model, "members"):
        cam = torch.stack([class_activation_map(m, x, class_index) for m in model.members]).mean(0)
        return cam / cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    model.eval()
    with torch.enable_grad():
        f = model.features(x).detach().requires_grad_(True)
        extra = model.extras(x) if hasattr(model, "extras") else None
        logits = model.head(f) if extra is None else model.head(f, extra.detach())
        grad = torch.autograd.grad(logits[:, class_index].sum(), f)[0]
    w = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((w * f).sum(1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    mx = cam.flatten(1).max(1).values.clamp_min(1e-12)
    return (cam / mx[:, None, None]).detach()


def _register() -> None:
    from . import register_architecture

    register_architecture("tipnet", TipNet, replace=True)
    register_architecture("tipresnet", TipResNet, replace=True)


_register()
