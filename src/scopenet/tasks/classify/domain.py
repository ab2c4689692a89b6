"""Is an image inside the classifier's training domain? A feature-density check calibrated on training data.

A tip-state classifier answers for any image, also for surfaces it never saw (Si(111)-7x7, Au(111), an
AFM phase channel), and its answers there mean nothing. :class:`DomainCheck` scores each image by how
far its features lie from those of the training domain:

- the features are the network's last convolutional feature map, averaged over positions (and over the
  members of an ensemble), one vector of ``C`` numbers per image;
- the training domain's features are summarised by a probabilistic PCA (Tipping & Bishop 1999): their
  mean, the ``k`` leading principal directions with their variances, and one variance for the rest;
- the score is the Mahalanobis distance under that Gaussian (``sum(p_i^2 / var_i) + |r|^2 / var_rest``,
  ``p`` the projections, ``r`` the residual), and an image is out of the domain when the score exceeds
  a threshold chosen on held-out in-domain images (their 95th percentile: 5 % of in-domain images are
  flagged by construction).

The summary and the threshold live in the model card (``card_.predict["domain"]``) with the surfaces
the model covers and the rates measured by ``scripts/calibrate_domain.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import InputError

__all__ = ["DomainCheck", "pooled_features"]


def pooled_features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``[B, C]``: the last conv feature map averaged over positions (and over an ensemble's members)."""
    members = list(net.members) if hasattr(net, "members") else [net]
    if not all(hasattr(m, "features") for m in members):
        raise InputError(f"{type(net).__name__} has no features() to check the domain with")
    with torch.inference_mode():
        return torch.stack([m.features(x).float().mean((2, 3)) for m in members]).mean(0)


@dataclass
class DomainCheck:
    """A probabilistic-PCA Gaussian of in-domain features and a threshold on the Mahalanobis distance.

    Attributes
    ----------
    mean : ndarray [C]
    components : ndarray [k, C]
        Orthonormal leading principal directions.
    variances : ndarray [k]
        Variance along each direction.
    rest_variance : float
        Mean variance of the remaining ``C - k`` directions.
    threshold : float
        Scores above it are out of the domain.
    surfaces : str
        What the model was trained on, in words (shown with every refusal).
    rates : dict
        Fractions flagged on named reference sets (from the calibration script).
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    rest_variance: float
    threshold: float = float("inf")
    surfaces: str = ""
    rates: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, features: np.ndarray, k: int = 24, surfaces: str = "") -> "DomainCheck":
        """Summarise in-domain ``features`` ``[N, C]`` (``N`` well above ``k``)."""
        f = np.asarray(features, np.float64)
        if f.ndim != 2 or len(f) <= k + 1:
            raise InputError(f"need [N, C] features with N > {k + 1}, got shape {f.shape}")
        k = min(k, f.shape[1] - 1)
        mu = f.mean(0)
        _, s, vt = np.linalg.svd(f - mu, full_matrices=False)
        var = s ** 2 / (len(f) - 1)
        rest = float(var[k:].mean()) if len(var) > k else float(var[-1])
        floor = 1e-6 * float(var[0]) + 1e-12
        return cls(mu, vt[:k], np.maximum(var[:k], floor), max(rest, floor), surfaces=surfaces)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance ``[N]`` of each feature vector from the domain (larger: farther)."""
        d = np.asarray(features, np.float64) - self.mean
        p = d @ self.components.T
        r2 = np.maximum((d * d).sum(1) - (p * p).sum(1), 0.0)
        return (p * p / self.variances).sum(1) + r2 / self.rest_variance

    def calibrate(self, held_out: np.ndarray, quantile: float = 0.95) -> "DomainCheck":
        """Set the threshold to the ``quantile`` of the scores of held-out in-domain features."""
        self.threshold = float(np.quantile(self.score(held_out), quantile))
        return self

    # ---------------------------------------------------------------- the card's JSON
    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        def r(a):
            return np.round(np.asarray(a, np.float64), digits).tolist() if np.ndim(a) else round(float(a), digits)

        return {"method": "ppca-mahalanobis on pooled last-conv features", "mean": r(self.mean),
                "components": r(self.components), "variances": r(self.variances),
                "rest_variance": float(f"{self.rest_variance:.{digits}g}"),
                "threshold": float(f"{self.threshold:.{digits}g}"), "surfaces": self.surfaces, "rates": self.rates}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DomainCheck":
        try:
            return cls(np.asarray(d["mean"], np.float64), np.asarray(d["components"], np.float64),
                       np.asarray(d["variances"], np.float64), float(d["rest_variance"]),
                       float(d.get("threshold", float("inf"))), str(d.get("surfaces", "")), dict(d.get("rates", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"the model card's domain check is malformed ({exc})") from exc
