"""Training and benchmark pairs ``(noisy, truth)`` in [0, 1] from clean crops, for both noise models.

- ``ede``: Ede's dose model (:func:`scopenet.simulate.em.noise.ede_noisy_pair`, thesis ch. 6).
- ``physical``: a random TEM/STEM/SEM acquisition (:mod:`scopenet.simulate.em.degrade`): Poisson-Gaussian
  detector with gain and offset, row-line noise, fast-scan lag, jitter, line shifts, flyback, drift, MTF,
  X-ray spikes, dead pixels and charging; the truth is the undistorted clean image in the same units.

With ``normalise="robust"`` both images go through the noisy image's robust map
(:func:`scopenet.image.scaling.robust_unit_scale`, percentiles (0.1, 99.9)) and are clipped to [0, 1],
exactly as :class:`~scopenet.tasks.denoise.model.Denoiser` scales an input with ``normalise="robust"``.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...image.scaling import ROBUST_PERCENTILES, robust_unit_scale

__all__ = ["physical_pair", "robust_pair", "make_pair"]


def robust_pair(noisy: np.ndarray, truth: np.ndarray, percentiles=ROBUST_PERCENTILES
                ) -> tuple[np.ndarray, np.ndarray]:
    """Both images mapped by the noisy image's robust percentiles and clipped to [0, 1]."""
    u, s = robust_unit_scale(noisy, percentiles)
    t = np.clip(s.apply(truth), 0.0, 1.0) if s.span > 0 else np.zeros_like(u)
    return u, t.astype(np.float32)


def physical_pair(clean: np.ndarray, rng: np.random.Generator, modality: str | None = None,
                  percentiles=ROBUST_PERCENTILES, strength: float = 1.0, return_params: bool = False):
    """A physically degraded pair from a clean crop (any range; min-max scaled to [0, 1] first).

    Returns ``(noisy, truth)`` float32 in [0, 1] (robust map of the noisy image), and the
    :class:`~scopenet.simulate.em.degrade.Degradation` with ``return_params``.
    """
    from ...simulate.em.degrade import degrade, random_degradation

    c = np.asarray(clean, np.float64)
    lo, hi = float(c.min()), float(c.max())
    c = (c - lo) / (hi - lo) if hi > lo else np.zeros_like(c)
    p = random_degradation(rng, modality, strength)
    noisy, truth, _ = degrade(c, p, rng)
    out = robust_pair(noisy, truth, percentiles)
    return (*out, p) if return_params else out


def make_pair(clean: np.ndarray, rng: np.random.Generator, degradation: str = "ede", *, high_fraction: float = 0.5,
              physical_fraction: float = 0.7, normalise: str = "minmax", percentiles=ROBUST_PERCENTILES
              ) -> tuple[np.ndarray, np.ndarray]:
    """One training pair by the run's ``degradation`` (``"ede"``, ``"physical"`` or ``"mixed"``)."""
    from ...simulate.em.noise import ede_noisy_pair

    if degradation not in ("ede", "physical", "mixed"):
        raise InputError(f"degradation must be 'ede', 'physical' or 'mixed', got {degradation!r}")
    if degradation == "physical" or (degradation == "mixed" and rng.random() < physical_fraction):
        return physical_pair(clean, rng, None, percentiles)
    noisy, truth = ede_noisy_pair(clean, rng, "high" if rng.random() < high_fraction else "low")
    if normalise == "robust":
        return robust_pair(noisy, truth, percentiles)
    return noisy, truth
