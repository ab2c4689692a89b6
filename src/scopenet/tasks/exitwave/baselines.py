"""The metric and the baselines of exit-wave phase recovery (Ede's chapter 7, eq. 25).

The metric is the mean absolute error of the phase components::

    MAE = mean over pixels and the two channels of |pred - (cos theta, sin theta)|

Baselines, each giving the two components:

- :func:`random_components`: ``x ~ U(-1, 1)`` for each component independently (the chapter's
  "uniform random phase generator", eq. 25). Its expected MAE is exactly 0.75 for *any*
  distribution of true phases, because ``E|x - g| = (1 + g^2) / 2`` for ``x ~ U(-1, 1)`` and
  ``cos^2 + sin^2 = 1``; the standard deviation of the per-pixel error is 0.520 for uniform phases.
- :func:`random_phase`: unit phasors of uniformly random phase ``phi``. Against uniform true phases
  its expected MAE is ``E|cos a - cos b| = 8 / pi^2 = 0.811`` (not 0.75).
- :func:`zero_phase`: ``theta = 0`` everywhere, i.e. ``(1, 0)`` (the phase of vacuum; what an
  amplitude-only image implies).
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError

__all__ = ["components", "phase_mae", "per_pixel_error", "random_components", "random_phase", "zero_phase",
           "BASELINES", "RANDOM_MAE", "RANDOM_SD", "RANDOM_PHASE_MAE"]

RANDOM_MAE = 0.75
RANDOM_SD = float(np.sqrt(5.0 / 6.0 - 0.75 ** 2))  # 0.5204: E[(x - g)^2] = 1/3 + E[g^2] = 5/6
RANDOM_PHASE_MAE = 8.0 / np.pi ** 2


def components(wave_or_phase: np.ndarray) -> np.ndarray:
    """``(2, ...)`` phase components ``(cos theta, sin theta)`` of a complex wave or a real phase (rad)."""
    a = np.asarray(wave_or_phase)
    theta = np.angle(a) if np.iscomplexobj(a) else a.astype(np.float64)
    return np.stack([np.cos(theta), np.sin(theta)]).astype(np.float32)


def per_pixel_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``|pred - truth|`` of ``(2, ...)`` components, averaged over the two channels -> ``(...)``."""
    p, t = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if p.shape != t.shape or p.shape[0] != 2:
        raise InputError(f"phase components must both be (2, ...) of one shape, got {p.shape} and {t.shape}")
    return np.abs(p - t).mean(0)


def phase_mae(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute error of phase components ``(2, ...)`` (the chapter's metric)."""
    return float(per_pixel_error(pred, truth).mean())


def random_components(shape: tuple[int, ...], rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``(2, *shape)`` components drawn from ``U(-1, 1)`` (the chapter's uniform random baseline)."""
    rng = np.random.default_rng(rng)
    return rng.uniform(-1.0, 1.0, (2, *shape)).astype(np.float32)


def random_phase(shape: tuple[int, ...], rng: np.random.Generator | int | None = None) -> np.ndarray:
    """``(2, *shape)`` components of uniformly random phases in ``[-pi, pi)`` (unit phasors)."""
    rng = np.random.default_rng(rng)
    return components(rng.uniform(-np.pi, np.pi, shape))


def zero_phase(shape: tuple[int, ...]) -> np.ndarray:
    """``(2, *shape)`` components of zero phase: ``(1, 0)`` everywhere."""
    out = np.zeros((2, *shape), np.float32)
    out[0] = 1.0
    return out


#: name -> ``fn(shape, rng) -> (2, *shape)`` components
BASELINES = {
    "random components U(-1,1)": random_components,
    "random phase": random_phase,
    "zero phase": lambda shape, rng=None: zero_phase(shape),
}
