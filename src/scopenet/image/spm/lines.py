"""Line-by-line corrections: per-line flattening ("X flatten") and row alignment."""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

from ...errors import InputError
from ._common import _out_dtype, _per_frame, _split, _unit_coords, _valid, _wrap


def flatten_lines(x, method: Literal["offset", "linear", "median", "poly"] = "offset", order: int = 1,
                  mask=None):
    """Line-by-line flattening ("X flatten"), as capture software does in real time.

    From every scan line (row) subtract its mean (``"offset"``), its median (``"median"``), its
    least-squares straight line (``"linear"``) or polynomial of degree ``order`` (``"poly"``).

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
        Image; rows are scan lines.
    method : {"offset", "linear", "median", "poly"}
        Per-line model to remove.
    order : int
        Polynomial degree for ``method="poly"`` (``"linear"`` is ``order=1``).
    mask : array_like of bool, shape (y, x), optional
        True where pixels must not take part in the fits (adsorbates, steps); they are still
        corrected. A line with too few usable pixels is left unchanged.

    Returns
    -------
    ndarray or Micrograph
        The flattened image, NaNs where the input had them.

    Examples
    --------
    >>> z = np.add.outer(np.arange(4.0), np.zeros(5))      # every line at a different height
    >>> float(np.abs(flatten_lines(z)).max())
    0.0
    """
    arr, img = _split(x)
    if method not in ("offset", "linear", "median", "poly"):
        raise InputError(f"unknown line-flattening method {method!r}; use offset, linear, median or poly")
    deg = {"offset": 0, "median": 0, "linear": 1, "poly": int(order)}[method]
    if deg < 0:
        raise InputError(f"polynomial order must be >= 0, got {order}")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        ok = _valid(z, mask)
        if method in ("offset", "median"):
            zm = np.where(ok, z, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                base = np.nanmedian(zm, axis=1) if method == "median" else np.nanmean(zm, axis=1)
            base = np.where(np.isfinite(base), base, 0.0)
            return z - base[:, None]
        return z - _row_poly_fit(z, ok, deg)

    out = _per_frame(one, arr).astype(_out_dtype(arr))
    return _wrap(out, img, "flatten_lines", method=method, order=deg, masked=mask is not None)


def _row_poly_fit(z: np.ndarray, ok: np.ndarray, deg: int) -> np.ndarray:
    """Per-row weighted least-squares polynomial of degree ``deg``; returns the fitted surface."""
    h, w = z.shape
    t = _unit_coords(w)
    V = np.vander(t, deg + 1, increasing=True)  # (w, k)
    wts = ok.astype(np.float64)
    zz = np.where(ok, z, 0.0)
    A = np.einsum("hw,wk,wl->hkl", wts, V, V)  # (h, k, k)
    b = zz @ V  # (h, k)
    counts = wts.sum(axis=1)
    use = np.minimum(deg, counts.astype(int) - 1)  # rows with few points fall back to a lower degree
    fit = np.zeros_like(z)
    for d in range(deg, -1, -1):
        rows = use == d
        if not rows.any():
            continue
        k = d + 1
        coef = np.linalg.solve(A[rows][:, :k, :k], b[rows][:, :k, None])[..., 0]
        fit[rows] = coef @ V[:, :k].T
    return fit


def align_rows(x, method: Literal["median_diff", "median", "mean"] = "median_diff", mask=None):
    """Align scan lines to each other by shifting each one vertically.

    ``"median_diff"`` shifts every line by the median of its pixel-wise difference to the previous
    (valid) line — robust to steps and adsorbates, and it keeps the slow-scan slope out. ``"median"``
    and ``"mean"`` subtract each line's median or mean (see :func:`flatten_lines`).

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    method : {"median_diff", "median", "mean"}
    mask : array_like of bool, shape (y, x), optional
        True where pixels must be ignored when measuring the shifts.

    Returns
    -------
    ndarray or Micrograph
        Aligned image; the first valid line keeps its height.
    """
    arr, img = _split(x)
    if method in ("median", "mean"):
        out = flatten_lines(arr, method="median" if method == "median" else "offset", mask=mask)
        return _wrap(out, img, "align_rows", method=method)
    if method != "median_diff":
        raise InputError(f"unknown row-alignment method {method!r}; use median_diff, median or mean")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        zm = np.where(_valid(z, mask), z, np.nan)
        shifts = np.zeros(z.shape[0])
        prev = None
        acc = 0.0
        for i in range(z.shape[0]):
            row = zm[i]
            if not np.isfinite(row).any():
                continue
            if prev is not None:
                d = row - zm[prev]
                d = d[np.isfinite(d)]
                if d.size:
                    acc += float(np.median(d))
                else:  # no common pixels: match the medians instead
                    acc += float(np.nanmedian(row) - np.nanmedian(zm[prev]))
            shifts[i] = acc
            prev = i
        return z - shifts[:, None]

    out = _per_frame(one, arr).astype(_out_dtype(arr))
    return _wrap(out, img, "align_rows", method=method, masked=mask is not None)
