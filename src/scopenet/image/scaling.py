"""Unit scaling: map an image's intensities to [0, 1] for a network, and the network's output back.

>>> import numpy as np
>>> u, s = unit_scale(np.array([[2.0, 4.0], [6.0, 10.0]]))
>>> u.tolist(), s.inverse(u).tolist()
([[0.0, 0.25], [0.5, 1.0]], [[2.0, 4.0], [6.0, 10.0]])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import InputError

__all__ = ["UnitScale", "fill_nonfinite", "unit_scale", "robust_unit_scale", "ROBUST_PERCENTILES"]

#: default ``(low, high)`` percentiles of :func:`robust_unit_scale`
ROBUST_PERCENTILES = (0.1, 99.9)


@dataclass(frozen=True)
class UnitScale:
    """The affine map ``u = (x - lo) / span``; ``span = 0`` (a constant image) maps everything to 0 and
    back to ``lo``."""

    lo: float
    span: float

    def apply(self, x) -> np.ndarray:
        """``(x - lo) / span`` as float32 (zeros when ``span`` is 0)."""
        a = np.asarray(x, np.float64)
        if self.span <= 0:
            return np.zeros(a.shape, np.float32)
        return ((a - self.lo) / self.span).astype(np.float32)

    def inverse(self, u) -> np.ndarray:
        """``u * span + lo`` (float64; callers cast)."""
        return np.asarray(u, np.float64) * self.span + self.lo


def fill_nonfinite(x: np.ndarray, value: float | None = None) -> np.ndarray:
    """A float64 copy of ``x`` with NaN/inf replaced by ``value`` (default the median of the finite pixels)."""
    f = np.array(x, dtype=np.float64)
    bad = ~np.isfinite(f)
    if bad.any():
        if bad.all():
            raise InputError("every pixel is NaN or infinite")
        f[bad] = np.median(f[~bad]) if value is None else value
    return f


def unit_scale(x, *, mask=None, percentiles: Sequence[float] | None = None
               ) -> tuple[np.ndarray, UnitScale]:
    """Scale ``x`` to [0, 1] by its range (or robust percentiles), and the map to undo it.

    Parameters
    ----------
    x : array_like
        Any shape; NaN/inf pixels are set to the median of the finite ones first.
    mask : array_like of bool, optional
        Take the range from these pixels only (e.g. the scanned pixels of a sparse scan).
    percentiles : (float, float), optional
        ``(low, high)`` percentiles instead of min and max (values outside then fall outside [0, 1]).

    Returns
    -------
    u : ndarray, float32
        The scaled image.
    scale : UnitScale
        ``scale.inverse(u)`` gives ``x`` back (to float32 rounding).
    """
    f = fill_nonfinite(x)
    v = f[np.asarray(mask, bool)] if mask is not None else f
    if v.size == 0:
        raise InputError("cannot scale an image by an empty set of pixels")
    if percentiles is not None:
        lo, hi = (float(t) for t in np.percentile(v, list(percentiles)))
    else:
        lo, hi = float(v.min()), float(v.max())
    scale = UnitScale(lo, hi - lo if hi > lo else 0.0)
    return scale.apply(f), scale


def robust_unit_scale(x, percentiles: Sequence[float] = ROBUST_PERCENTILES, *, clip: bool = True, mask=None
                      ) -> tuple[np.ndarray, UnitScale]:
    """Scale ``x`` to [0, 1] by robust percentiles of its finite pixels: hot pixels, X-ray spikes and
    dead pixels do not squash the range; any input scale (counts, [0, 1], negative offsets) maps alike.

    Parameters
    ----------
    x : array_like
        Any shape and dtype; NaN/inf pixels are ignored for the percentiles and set to the median.
    percentiles : (float, float)
        ``(low, high)`` percentiles mapped to 0 and 1. When they coincide (a mostly constant image) the
        full finite range is used instead.
    clip : bool
        Clip the result to [0, 1] (the outliers beyond the percentiles are cut).
    mask : array_like of bool, optional
        Take the percentiles from these pixels only.

    Returns
    -------
    u : ndarray, float32
    scale : UnitScale
        ``scale.inverse(u)`` maps back (exactly for the pixels within the percentile range).

    Examples
    --------
    >>> x = np.linspace(0, 1, 10000).reshape(100, 100); x[0, 0] = 1e6; x[1, 1] = np.nan
    >>> u, s = robust_unit_scale(x)
    >>> round(float(np.median(u)), 2), round(s.span, 2)
    (0.5, 1.0)
    """
    f = fill_nonfinite(x)
    lo_p, hi_p = (float(t) for t in percentiles)
    if not 0 <= lo_p < hi_p <= 100:
        raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    v = f[np.asarray(mask, bool)] if mask is not None else f
    if v.size == 0:
        raise InputError("cannot scale an image by an empty set of pixels")
    lo, hi = (float(t) for t in np.percentile(v, [lo_p, hi_p]))
    if not hi > lo:
        lo, hi = float(v.min()), float(v.max())
    scale = UnitScale(lo, hi - lo if hi > lo else 0.0)
    u = scale.apply(f)
    return (np.clip(u, 0.0, 1.0) if clip else u), scale
