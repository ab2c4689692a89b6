"""Scars: short streaks along the fast-scan axis where the tip jumped; finding and repairing them."""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ._common import _out_dtype, _per_frame, _split, _wrap


def detect_scars(x, threshold: float = 4.0, min_length: int = 4, max_width: int = 2) -> np.ndarray:
    """Find scars: short streaks along the fast-scan axis where the tip jumped for a moment.

    A pixel belongs to a scar of width ``k <= max_width`` rows when it (and the rest of its ``k``-row
    block) stands above both the line above and the line below the block by more than ``threshold``
    times the robust scatter of line-to-line differences (or below both, for negative scars), and
    the streak runs along the line for at least ``min_length`` pixels.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
        Image (line-flattened or not: only differences between neighbouring lines matter).
    threshold : float
        Jump height in units of the robust standard deviation of vertical pixel differences.
    min_length : int
        Shortest streak, in pixels along the fast axis.
    max_width : int
        Thickest scar, in lines.

    Returns
    -------
    ndarray of bool, same shape as the image
        True on scar pixels.
    """
    from scipy import ndimage as ndi

    arr, _ = _split(x)
    if min_length < 1 or max_width < 1:
        raise InputError("min_length and max_width must be >= 1")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        h, w = z.shape
        mask = np.zeros((h, w), bool)
        if h < 3:
            return mask
        dv = np.diff(z, axis=0)
        dv = dv[np.isfinite(dv)]
        if dv.size == 0:
            return mask
        sigma = 1.4826 * np.median(np.abs(dv - np.median(dv)))
        if sigma <= 0:
            sigma = max(np.std(dv), np.finfo(float).tiny)
        t = threshold * sigma
        with np.errstate(invalid="ignore"):
            for k in range(1, max_width + 1):
                if h < k + 2:
                    break
                above = z[: h - k - 1]
                below = z[k + 1:]
                hi = np.maximum(above, below)
                lo = np.minimum(above, below)
                pos = np.ones_like(above, bool)
                neg = np.ones_like(above, bool)
                for j in range(k):
                    blk = z[1 + j: h - k + j]
                    pos &= (blk - hi) > t
                    neg &= (blk - lo) < -t
                hit = pos | neg
                for j in range(k):
                    mask[1 + j: h - k + j] |= hit
        if min_length > 1:
            mask = ndi.binary_opening(mask, structure=np.ones((1, min_length), bool))
        return mask

    return _per_frame(one, arr)


def repair_scars(x, mask=None, **detect_kw):
    """Replace scar pixels by interpolating between the nearest good lines above and below.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    mask : array_like of bool, same shape as the image, optional
        Pixels to repair; default :func:`detect_scars` ``(x, **detect_kw)``.

    Returns
    -------
    ndarray or Micrograph
        A one-line scar becomes the mean of the lines above and below it.
    """
    arr, img = _split(x)
    m = detect_scars(arr, **detect_kw) if mask is None else np.asarray(mask, bool)
    if m.shape != arr.shape and m.shape != arr.shape[-2:]:
        raise InputError(f"scar mask shape {m.shape} does not match the image shape {arr.shape}")
    if arr.ndim == 3 and m.ndim == 2:
        m = np.broadcast_to(m, arr.shape)
    n_fixed = int(m.sum())

    def one(z2: np.ndarray, m2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        h, w = z.shape
        good = ~m2
        rows = np.arange(h)[:, None] * np.ones((1, w), int)
        up = np.where(good, rows, -1)
        up = np.maximum.accumulate(up, axis=0)  # nearest good row at or above
        dn = np.where(good, rows, h)
        dn = np.minimum.accumulate(dn[::-1], axis=0)[::-1]  # nearest good row at or below
        cols = np.broadcast_to(np.arange(w), (h, w))
        has_up, has_dn = up >= 0, dn < h
        zu = z[np.clip(up, 0, h - 1), cols]
        zd = z[np.clip(dn, 0, h - 1), cols]
        span = np.maximum(dn - up, 1)
        f = (rows - up) / span
        interp = np.where(has_up & has_dn, zu + f * (zd - zu), np.where(has_up, zu, zd))
        fix = m2 & (has_up | has_dn)
        out = z.copy()
        out[fix] = interp[fix]
        return out

    if arr.ndim == 2:
        out = one(arr, m)
    else:
        out = np.stack([one(f, mf) for f, mf in zip(arr, m)])
    return _wrap(out.astype(_out_dtype(arr)), img, "repair_scars", pixels=n_fixed)
