"""Noise2Void blind-spot masking, shared by the denoiser's training (:mod:`.train`) and its public API.

- Plain N2V (Krull, Buchholz & Jug, CVPR 2019): each blind spot takes the value of a random neighbour.
- N2V2 sampling (Hoeck et al., ECCV BIC workshop 2022): the blind spot takes the *median* of its
  neighbourhood without itself, so the network cannot exploit the replacement and leaves no
  checkerboard artefacts.
- Structured N2V (Broaddus et al., ISBI 2020): the ``struct`` pixels on either side of a blind spot along
  the scan line are replaced by random values too, so noise correlated along lines (row-line noise,
  fast-scan lag) cannot be predicted from the neighbours and is removed instead of reproduced.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError

__all__ = ["n2v_mask"]


def n2v_mask(crop: np.ndarray, rng: np.random.Generator, fraction: float = 0.02, radius: int = 2, *,
             struct: int = 0, axis: str = "x", sampling: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
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
    struct : int
        Structured N2V: also replace the ``struct`` pixels on each side of a blind spot along ``axis`` by
        uniform random values in the crop's [min, max] (they are not in the returned mask; 0: plain N2V).
    axis : {"x", "y"}
        The structured mask's direction: ``"x"`` along rows (the fast-scan direction), ``"y"`` along columns.
    sampling : {"uniform", "n2v2"}
        The blind spot's value: a uniformly drawn other pixel of the neighbourhood, or (N2V2) the median
        of the neighbourhood without the pixel itself (and without the structured line).

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
    if axis not in ("x", "y") or sampling not in ("uniform", "n2v2") or struct < 0:
        raise InputError(f"need axis 'x'/'y', sampling 'uniform'/'n2v2', struct >= 0; got {axis!r}, "
                         f"{sampling!r}, {struct}")
    h, w = c.shape
    n = max(1, int(round(fraction * h * w)))
    idx = rng.choice(h * w, size=n, replace=False)
    ys, xs = np.divmod(idx, w)
    if struct > 0 or sampling != "uniform":
        return _n2v_vectorised(c, rng, ys, xs, radius, struct, axis, sampling)
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


def _n2v_vectorised(c, rng, ys, xs, radius, struct, axis, sampling):
    """Structured / N2V2 masking for the chosen pixels ``(ys, xs)`` (see :func:`n2v_mask`)."""
    h, w = c.shape
    offs = np.array([(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)])
    sy = np.clip(ys[:, None] + offs[None, :, 0], 0, h - 1)
    sx = np.clip(xs[:, None] + offs[None, :, 1], 0, w - 1)
    ok = (sy != ys[:, None]) | (sx != xs[:, None])  # not the pixel itself (also after clipping)
    if struct > 0:  # nor the structured line, whose noise is correlated with the blind spot's
        if axis == "x":
            ok &= ~((sy == ys[:, None]) & (np.abs(sx - xs[:, None]) <= struct))
        else:
            ok &= ~((sx == xs[:, None]) & (np.abs(sy - ys[:, None]) <= struct))
    ok[~ok.any(1)] = (sy != ys[:, None])[~ok.any(1)] | (sx != xs[:, None])[~ok.any(1)]  # tiny crops
    vals = c[sy, sx]
    if sampling == "n2v2":
        rep = np.nanmedian(np.where(ok, vals, np.nan), axis=1)
    else:
        pick = np.argmax(np.where(ok, rng.random(ok.shape), -1.0), axis=1)
        rep = vals[np.arange(len(ys)), pick]
    masked = c.copy()
    if struct > 0:
        lo, hi = float(c.min()), float(c.max())
        for k in [k for k in range(-struct, struct + 1) if k != 0]:
            ty, tx = (ys, xs + k) if axis == "x" else (ys + k, xs)
            inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
            masked[ty[inside], tx[inside]] = rng.uniform(lo, hi, int(inside.sum()))
    masked[ys, xs] = rep
    mask = np.zeros((h, w), bool)
    mask[ys, xs] = True
    return masked.astype(np.float32), mask
