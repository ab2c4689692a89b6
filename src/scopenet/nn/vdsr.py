"""VDSR-style residual CNN for super-resolution (Kim et al., CVPR 2016), registered as ``superres-vdsr``."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from . import architecture_names, register_architecture

ARCH_NAME = "superres-vdsr"


class VDSR(nn.Module):
    """VDSR-style residual CNN: ``y = x + body(x)`` on an already upsampled image.

    Parameters
    ----------
    n_layers : int
        Number of 3x3 convolutions (>= 2), ReLU between them.
    channels : int
        Feature channels of the hidden layers.

    Input and output are ``(B, 1, H, W)`` float tensors of any ``H, W``.
    """

    arch_name = ARCH_NAME

    def __init__(self, n_layers: int = 8, channels: int = 32):
        super().__init__()
        if n_layers < 2 or channels < 1:
            raise InputError(f"VDSR needs n_layers >= 2 and channels >= 1, got {n_layers}, {channels}")
        self.config = {"n_layers": int(n_layers), "channels": int(channels)}
        layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1, padding_mode="replicate"), nn.ReLU()]
        for _ in range(n_layers - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate"), nn.ReLU()]
        last = nn.Conv2d(channels, 1, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(last.weight)  # start as the identity: an untrained model returns bicubic
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


if ARCH_NAME not in architecture_names():
    register_architecture(ARCH_NAME, VDSR)
