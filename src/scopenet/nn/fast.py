"""Faster CPU inference for the small classification CNNs (TipNet, TipResNet and their ensembles).

At 64x64 these networks are bound by memory traffic between small layers, not by arithmetic. Two
standard inference transformations remove most of it without changing the function computed:

- each BatchNorm is folded into the convolution before it (``torch.fx`` graph rewrite), and
- the convolutional part runs on oneDNN ("mkldnn") tensors, so activations keep oneDNN's blocked
  layout from layer to layer instead of being reordered around every convolution.

The speed-up is measured by ``scopenet bench classify`` (``benchmarks/results/classify.md``). The outputs
agree with the eager network to float32 rounding. Both transformations use stable public APIs
(``torch.fx.experimental.optimization.fuse``, ``torch.utils.mkldnn.to_mkldnn``); where either is
unavailable, :func:`cpu_fast_forward` returns ``None`` and callers keep the eager network.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn as nn

Forward = Callable[[torch.Tensor], torch.Tensor]


class _Features(nn.Module):
    """The convolutional part of a network with the ``features(x)`` / ``head(f[, extras])`` protocol."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


def cpu_fast_forward(net: nn.Module) -> Forward | None:
    """An inference-only forward of ``net`` on CPU float32 inputs ``[B, C, H, W]``, or ``None``.

    ``net`` must be in eval mode and on the CPU, and expose ``features`` and ``head`` (and optionally
    ``extras``, evaluated on the ordinary input), or hold such networks as ``members`` whose outputs
    are averaged (:class:`~scopenet.nn.ensemble.LogitEnsemble`). The returned function works on a
    private copy of the weights: later changes to ``net`` do not reach it.
    """
    if hasattr(net, "members"):
        fns = [cpu_fast_forward(m) for m in net.members]
        if not fns or any(f is None for f in fns):
            return None
        return lambda x: torch.stack([f(x) for f in fns]).mean(0)
    if net.training or not (hasattr(net, "features") and hasattr(net, "head")):
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        from torch.fx.experimental.optimization import fuse
        from torch.utils import mkldnn

        own = copy.deepcopy(net).cpu().float().eval()
        feats = mkldnn.to_mkldnn(fuse(_Features(own)))
    except Exception:  # an op fx cannot trace, or a layer oneDNN lacks: stay eager
        return None
    has_extras = hasattr(own, "extras")

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.float().contiguous()
        f = feats(x.to_mkldnn()).to_dense()
        extra = own.extras(x) if has_extras else None
        return own.head(f) if extra is None else own.head(f, extra)

    return forward


def checked_fast_forward(net: nn.Module, example: torch.Tensor, rtol: float = 1e-3) -> Forward | None:
    """:func:`cpu_fast_forward`, kept only if it reproduces ``net(example)`` to ``rtol`` of the output scale."""
    fast = cpu_fast_forward(net)
    if fast is None:
        return None
    try:
        with torch.inference_mode():
            ref, got = net(example), fast(example)
    except Exception:
        return None
    scale = 1.0 + float(ref.abs().max())
    if got.shape != ref.shape or not torch.isfinite(got).all() or float((got - ref).abs().max()) > rtol * scale:
        return None
    return fast
