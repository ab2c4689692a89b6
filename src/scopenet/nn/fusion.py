"""Learned fusion of candidate denoisings: per-pixel convex weights over the candidates plus a bounded residual.

The network sees ``K`` candidate images of one scene (by convention the noisy input first, then the
outputs of classical filters and of denoising networks, all on the same [0, 1] scale) and predicts, per
pixel, softmax weights over them and a small residual::

    out = sum_k w_k * c_k + alpha * tanh(r) * spread,    w = softmax(logits),  spread = max_k c_k - min_k c_k

so the output stays inside the candidates' per-pixel range widened by ``alpha`` times that range, and
identical candidates are returned unchanged. A global-context branch (the mean of the features over the
image, fed back to every pixel) lets the weights depend on the noise level of the whole frame.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..errors import InputError
from . import register_architecture

__all__ = ["FusionNet"]


class FusionNet(nn.Module):
    """Fuse ``K`` candidate images into one.

    Maps ``(N, K, H, W)`` candidates to ``(N, 1, H, W)`` for any ``H, W``.

    Parameters
    ----------
    n_candidates : int
        ``K``, the number of candidate channels (at least 1).
    width : int
        Feature channels of the convolutions.
    dilations : sequence of int
        One 3 x 3 convolution per entry with that dilation (receptive field ``1 + 2 * sum(dilations)`` px).
    alpha : float
        Largest residual as a fraction of the candidates' per-pixel spread (0: a pure convex combination).
    global_context : bool
        Add the image-mean of the features (through a linear layer) back to every pixel.

    Attributes
    ----------
    arch_name : str
        ``"denoise-fusion"``, the key in :func:`scopenet.nn.build_architecture`.
    config : dict
        The constructor arguments.
    """

    arch_name = "denoise-fusion"

    def __init__(self, n_candidates: int = 11, width: int = 32, dilations: Sequence[int] = (1, 2, 4, 8, 1),
                 alpha: float = 0.25, global_context: bool = True):
        super().__init__()
        if n_candidates < 1 or width < 1 or not dilations or any(int(d) < 1 for d in dilations) or alpha < 0:
            raise InputError(f"FusionNet: bad settings n_candidates={n_candidates}, width={width}, "
                             f"dilations={list(dilations)}, alpha={alpha}")
        self.config = {"n_candidates": int(n_candidates), "width": int(width),
                       "dilations": [int(d) for d in dilations], "alpha": float(alpha),
                       "global_context": bool(global_context)}
        k = int(n_candidates)
        # inputs: the candidates and their differences to the first one (the noisy input)
        layers: list[nn.Module] = []
        cin = 2 * k
        for d in self.config["dilations"]:
            layers.append(nn.Conv2d(cin, width, 3, padding=int(d), dilation=int(d), padding_mode="replicate"))
            cin = width
        self.convs = nn.ModuleList(layers)
        self.context = nn.Linear(width, width) if global_context else None
        self.head = nn.Conv2d(width, k + 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-pixel weights ``(N, K, H, W)`` (summing to one over ``K``) and the residual ``(N, 1, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.config["n_candidates"]:
            raise InputError(f"FusionNet expects (N, {self.config['n_candidates']}, H, W), got {tuple(x.shape)}")
        h = torch.cat([x, x - x[:, :1]], dim=1)
        for i, conv in enumerate(self.convs):
            h = torch.relu(conv(h))
            if i == 0 and self.context is not None:
                h = h + torch.relu(self.context(h.mean(dim=(2, 3))))[:, :, None, None]
        out = self.head(h)
        w = torch.softmax(out[:, :-1], dim=1)
        spread = x.amax(dim=1, keepdim=True) - x.amin(dim=1, keepdim=True)
        r = self.config["alpha"] * torch.tanh(out[:, -1:]) * spread
        return w, r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, r = self.forward_parts(x)
        return (w * x).sum(dim=1, keepdim=True) + r


register_architecture("denoise-fusion", FusionNet)
