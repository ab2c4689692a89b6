"""Noise2Void blind-spot masking, shared by the denoiser's training (:mod:`.train`) and its public API."""
from __future__ import annotations

import numpy as np

from ...errors import InputError

__all__ = ["n2v_mask"]


def n2v_mask(crop: np.ndarray, rng: np.random.Generator, fraction: float = 0.02, radius: int = 2
             ) -> tuple[np.ndarray, np.ndarray]:
    """Noise2Void blind-spot masking (Krull, Buchholz & Jug 2019, uniform pixel selection).

    A ``fraction`` of the pixels (at least one) is chosen uniformly without replacement; each takes
    the value of a different pixel drawn uniformly from its ``(2 radius + 1)^2`` neighbourhood
    (itself excluded, positions clipped to the image). The network sees the masked crop and is
    trained to predict the original values at the masked pixels only.

    Parameters
    ----------
    crop : ndarray, shape (H, W)
    rng : numpy.random.Generator
    fraction : float
        Fraction of pixels masked, ``0 < fraction < 0.5``.
    radius : int
        Neighbourhood radius, px (>= 1).

    Returns
    -------
    masked : ndarray, float32, shape (H, W)
        Copy of ``crop`` with the masked pixels replaced.
    mask : ndarray, bool, shape (H, W)
        True at the masked pixels.
    """
    c = np.asarray(crop, np.float32)
    if c.ndim != 2 or min(c.shape) < 2:
        raise InputError(f"n2v_mask needs a 2-D crop of at least 2x2 px, got shape {c.shape}")
    if not 0 < fraction < 0.5 or radius < 1:
        raise InputError(f"need 0 < fraction < 0.5 and radius >= 1, got {fraction}, {radius}")
    h, w = c.shape
    n = max(1, int(round(fraction * h * w)))
    idx = rng.choice(h * w, size=n, replace=False)
    ys, xs = np.divmod(idx, w)
    offs = np.array([(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
                     if (dy, dx) != (0, 0)])
    masked = c.copy()
    for i in range(n):
        while True:  # resample offsets whose clipped position falls back onto the pixel itself
            dy, dx = offs[rng.integers(len(offs))]
            sy, sx = min(max(ys[i] + dy, 0), h - 1), min(max(xs[i] + dx, 0), w - 1)
            if (sy, sx) != (ys[i], xs[i]):
                break
        masked[ys[i], xs[i]] = c[sy, sx]
    mask = np.zeros((h, w), bool)
    mask[ys, xs] = True
    return masked, mask
