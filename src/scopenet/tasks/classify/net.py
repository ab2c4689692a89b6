"""The tip classifier's network and losses, shared by the estimator (:mod:`.model`) and its training
(:mod:`.train`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import InputError
from ...nn.cnn import TipNet, TipResNet
from .config import ClassifierConfig

__all__ = ["NETWORK_KEYS", "build_net", "soft_bce", "soft_cross_entropy"]

#: settings that fix a classifier's network; fine-tuning (``fit(init=...)``) needs them equal
NETWORK_KEYS = ("arch", "channels", "dense", "stem_stride", "line_k")


def soft_bce(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None,
             pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy on soft multi-label targets in [0, 1], mean over categories then samples.

    Parameters
    ----------
    logits, targets : Tensor [B, K]
    weights : Tensor [B], optional — per-sample weights
    pos_weight : Tensor [K], optional — weight of the positive term per category
    """
    per = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none").mean(1)
    if weights is None:
        return per.mean()
    return (per * weights).sum() / weights.sum().clamp_min(1e-12)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Cross-entropy against soft class distributions ``targets`` [B, K] (rows sum to 1)."""
    t = targets / targets.sum(1, keepdim=True).clamp_min(1e-12)
    per = -(t * F.log_softmax(logits, 1)).sum(1)
    if weights is None:
        return per.mean()
    return (per * weights).sum() / weights.sum().clamp_min(1e-12)


def build_net(cfg: ClassifierConfig) -> torch.nn.Module:
    """The (untrained) network of a classifier configuration."""
    k = len(cfg.categories)
    if cfg.arch == "tipnet":
        return TipNet(k, channels=cfg.channels, dense=cfg.dense, dropout=cfg.dropout, stem_stride=cfg.stem_stride,
                      line_k=cfg.line_k)
    if cfg.line_k:
        raise InputError("line_k (the scan-line branch) exists only for arch='tipnet'")
    return TipResNet(k, widths=cfg.channels, dropout=cfg.dropout)
