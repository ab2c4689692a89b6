"""Intensity operations: replacing non-finite pixels and normalising."""
from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import InputError
from .._arrays import _out_dtype, _split, _wrap


def replace_nonfinite(x, value: Literal["median", "mean"] | float = "median"):
    """Replace NaN and ±inf pixels by the median or mean of the finite ones, or by a number.

    Raises
    ------
    InputError
        If a statistic is asked for and no pixel is finite.
    """
    arr, img = _split(x)
    bad = ~np.isfinite(arr)
    out = arr.astype(_out_dtype(arr), copy=True)
    if bad.any():
        if isinstance(value, str):
            good = arr[~bad]
            if good.size == 0:
                raise InputError("every pixel is NaN or infinite; nothing to replace them with")
            if value == "median":
                fill = float(np.median(good))
            elif value == "mean":
                fill = float(np.mean(good, dtype=np.float64))
            else:
                raise InputError(f"value must be 'median', 'mean' or a number, got {value!r}")
        else:
            fill = float(value)
        out[bad] = fill
    return _wrap(out, img, "replace_nonfinite", value=value, pixels=int(bad.sum()))


def normalise(x, mode: Literal["minmax", "symmetric", "standard"] = "minmax",
              percentiles: tuple[float, float] | None = None):
    """Rescale intensities: ``"minmax"`` to [0, 1], ``"symmetric"`` to [-1, 1], ``"standard"`` to
    zero mean and unit variance.

    Statistics ignore NaN (which stays NaN). A constant image maps to 0.

    Parameters
    ----------
    x : array_like or Micrograph
    mode : {"minmax", "symmetric", "standard"}
    percentiles : (low, high), optional
        For ``"minmax"``/``"symmetric"``: use these percentiles (e.g. ``(0.5, 99.5)``) instead of
        the extremes, and clip to the range.

    Raises
    ------
    InputError
        For an unknown mode, or when no pixel is finite.
    """
    arr, img = _split(x)
    if mode not in ("minmax", "symmetric", "standard"):
        raise InputError(f"unknown normalisation mode {mode!r}; use minmax, symmetric or standard")
    z = arr.astype(np.float64)
    fin = np.isfinite(z)
    if not fin.any():
        raise InputError("cannot normalise: no finite pixel (all NaN/inf)")
    vals = z[fin]
    z = np.where(fin, z, np.nan)
    if mode == "standard":
        mu, sd = float(vals.mean()), float(vals.std())
        constant = sd <= 16 * np.finfo(np.float64).eps * abs(mu) or vals.min() == vals.max()
        out = np.where(fin, 0.0, np.nan) if constant else (z - mu) / sd
    else:
        lo, hi = (np.percentile(vals, percentiles) if percentiles else (vals.min(), vals.max()))
        if hi > lo:
            out = (z - lo) / (hi - lo)
            if percentiles:
                out = np.clip(out, 0.0, 1.0)
            if mode == "symmetric":
                out = 2.0 * out - 1.0
        else:
            out = np.where(fin, 0.0, np.nan)
    return _wrap(out.astype(_out_dtype(arr)), img, "normalise", mode=mode, percentiles=percentiles)


normalize = normalise
