"""Learned fusion of candidate denoisings: convex weights over the candidates, per image and per pixel.

The network sees ``K`` candidate images of one scene (by convention the noisy input first, then the
outputs of classical filters and of denoising networks, all on the same [0, 1] scale) and returns::

    out = sum_k w_k * c_k + alpha * tanh(r) * spread,    w = softmax(g + l),  spread = max_k c_k - min_k c_k

- ``g`` (one logit per candidate and image) comes from a small MLP over image-wide features: the log mean
  squared difference of every candidate to the input, and the log noise variance of the input (Haar
  finest-scale MAD). They tell the noise level and how much each filter removes, i.e. which candidate suits
  this frame (a clean frame: the input; a noisy one: a smoother).
- ``l`` and ``r`` (optional, ``width > 0``) come from a small dilated CNN over the candidates and their
  differences to the input: a per-pixel refinement of the weights and a residual bounded by ``alpha`` times
  the candidates' per-pixel spread. Both start at zero.

So the output stays inside the candidates' per-pixel range (widened by ``alpha`` times it), and identical
candidates come back unchanged.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..errors import InputError
from . import register_architecture

__all__ = ["FusionNet", "global_features"]


def global_features(x: torch.Tensor) -> torch.Tensor:
    """Image-wide features of a candidate bank ``(N, K, H, W)`` -> ``(N, K)``.

    ``K - 1`` values ``log(mean((c_k - c_0)^2) + 1e-8)`` for ``k >= 1`` and ``log(sigma^2 + 1e-8)``, where
    ``sigma`` is the Haar finest-scale MAD noise estimate of the input ``c_0`` (Donoho & Johnstone).
    """
    n, k, h, w = x.shape
    d = x[:, 1:] - x[:, :1]
    f = torch.log(d.pow(2).mean(dim=(2, 3)) + 1e-8)
    u = x[:, 0, : (h // 2) * 2, : (w // 2) * 2]
    if u.shape[-1] < 2 or u.shape[-2] < 2:
        sig2 = torch.zeros(n, 1, dtype=x.dtype, device=x.device)
    else:
        hh = (u[:, ::2, ::2] - u[:, 1::2, ::2] - u[:, ::2, 1::2] + u[:, 1::2, 1::2]) / 2
        sig2 = (hh.abs().flatten(1).median(dim=1).values / 0.6745).pow(2)[:, None]
    return torch.cat([f, torch.log(sig2 + 1e-8)], dim=1)


class FusionNet(nn.Module):
    """Fuse ``K`` candidate images into one.

    Maps ``(N, K, H, W)`` candidates to ``(N, 1, H, W)`` for any ``H, W``.

    Parameters
    ----------
    n_candidates : int
        ``K``, the number of candidate channels (at least 1).
    hidden : int
        Hidden units of the image-wide MLP (0: a linear map from the features to the logits).
    width : int
        Feature channels of the per-pixel CNN (0: no per-pixel refinement, no residual).
    dilations : sequence of int
        One 3 x 3 convolution per entry with that dilation (receptive field ``1 + 2 * sum(dilations)`` px).
    alpha : float
        Largest residual as a fraction of the candidates' per-pixel spread (0: a pure convex combination).

    Attributes
    ----------
    arch_name : str
        ``"denoise-fusion"``, the key in :func:`scopenet.nn.build_architecture`.
    config : dict
        The constructor arguments.
    feature_mean, feature_std : Tensor (K,)
        Standardisation of :func:`global_features` (buffers, set from the training data by
        :meth:`set_feature_norm`).
    """

    arch_name = "denoise-fusion"

    def __init__(self, n_candidates: int = 11, hidden: int = 16, width: int = 0, dilations: Sequence[int] = (1, 2),
                 alpha: float = 0.25):
        super().__init__()
        if n_candidates < 1 or hidden < 0 or width < 0 or any(int(d) < 1 for d in dilations) or alpha < 0 \
                or (width > 0 and not dilations):
            raise InputError(f"FusionNet: bad settings n_candidates={n_candidates}, hidden={hidden}, width={width}, "
                             f"dilations={list(dilations)}, alpha={alpha}")
        k = int(n_candidates)
        self.config = {"n_candidates": k, "hidden": int(hidden), "width": int(width),
                       "dilations": [int(d) for d in dilations], "alpha": float(alpha)}
        self.register_buffer("feature_mean", torch.zeros(k))
        self.register_buffer("feature_std", torch.ones(k))
        if hidden > 0:
            self.mlp = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, k))
        else:
            self.mlp = nn.Sequential(nn.Linear(k, k))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.convs = nn.ModuleList()
        self.head = None
        if width > 0:
            cin = 2 * k
            for d in self.config["dilations"]:
                self.convs.append(nn.Conv2d(cin, width, 3, padding=int(d), dilation=int(d), padding_mode="replicate"))
                cin = width
            self.head = nn.Conv2d(width, k + 1, 1)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def set_feature_norm(self, mean, std) -> None:
        """Set the standardisation of the image-wide features (mean and standard deviation, length ``K``)."""
        m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        s = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if m.numel() != self.config["n_candidates"] or s.numel() != m.numel() or not torch.all(s > 0):
            raise InputError("feature mean/std must have one positive entry per candidate")
        self.feature_mean.copy_(m)
        self.feature_std.copy_(s)

    def global_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The image-wide logits ``(N, K)``."""
        f = (global_features(x) - self.feature_mean) / self.feature_std
        return self.mlp(f)

    def forward_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-pixel weights ``(N, K, H, W)`` (summing to one over ``K``) and the residual ``(N, 1, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.config["n_candidates"]:
            raise InputError(f"FusionNet expects (N, {self.config['n_candidates']}, H, W), got {tuple(x.shape)}")
        logits = self.global_logits(x)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        r = torch.zeros_like(x[:, :1])
        if self.head is not None:
            h = torch.cat([x, x - x[:, :1]], dim=1)
            for conv in self.convs:
                h = torch.relu(conv(h))
            out = self.head(h)
            logits = logits + out[:, :-1]
            spread = x.amax(dim=1, keepdim=True) - x.amin(dim=1, keepdim=True)
            r = self.config["alpha"] * torch.tanh(out[:, -1:]) * spread
        return torch.softmax(logits, dim=1), r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, r = self.forward_parts(x)
        return (w * x).sum(dim=1, keepdim=True) + r


register_architecture("denoise-fusion", FusionNet)
