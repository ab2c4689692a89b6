"""Classical baselines for particle segmentation: Otsu's global threshold and a local (adaptive) threshold.

Both smooth the image first (Gaussian, ``sigma`` px: shot noise would otherwise speckle the mask), pick
the particles' polarity (dark particles in bright-field TEM, bright ones in dark field, SEM and AFM) as
the side of the threshold holding less than half of the pixels unless told, and drop regions under
``min_area`` px.

>>> import numpy as np
>>> a = np.zeros((32, 32)); a[8:16, 8:16] = 1
>>> int(otsu(a, sigma=0).sum())
64
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import InputError

__all__ = ["otsu", "local_threshold", "BASELINES"]

Polarity = Literal["auto", "bright", "dark"]


def _prep(image, sigma: float) -> np.ndarray:
    from scipy import ndimage

    a = np.asarray(getattr(image, "data", image), np.float64)
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"thresholding takes one 2-D image, got shape {a.shape}")
    if not np.isfinite(a).all():
        a = np.where(np.isfinite(a), a, np.nanmedian(a))
    return ndimage.gaussian_filter(a, sigma) if sigma > 0 else a


def _finish(above: np.ndarray, polarity: Polarity, min_area: int) -> np.ndarray:
    from skimage.morphology import remove_small_objects

    if polarity == "auto":
        m = above if above.mean() <= 0.5 else ~above
    elif polarity == "bright":
        m = above
    elif polarity == "dark":
        m = ~above
    else:
        raise InputError(f"polarity must be auto, bright or dark, got {polarity!r}")
    return remove_small_objects(m, max_size=int(min_area) - 1) if min_area > 1 else m


def otsu(image, *, sigma: float = 1.0, polarity: Polarity = "auto", min_area: int = 4) -> np.ndarray:
    """Particle mask by Otsu's threshold of the smoothed image (bool, shape of ``image``)."""
    from skimage.filters import threshold_otsu

    a = _prep(image, sigma)
    if np.ptp(a) == 0:
        return np.zeros(a.shape, bool)
    return _finish(a > threshold_otsu(a), polarity, min_area)


def local_threshold(image, *, block_size: int = 51, sigma: float = 1.0, polarity: Polarity = "auto",
                    min_area: int = 4) -> np.ndarray:
    """Particle mask by a local threshold: the image minus its local Gaussian-weighted mean in ``block_size`` px
    windows (odd; scikit-image ``threshold_local``), then split by Otsu's threshold of that difference.
    Robust to uneven illumination and thickness gradients of the support."""
    from skimage.filters import threshold_local, threshold_otsu

    a = _prep(image, sigma)
    if np.ptp(a) == 0:
        return np.zeros(a.shape, bool)
    bs = int(block_size) | 1
    bs = max(3, min(bs, (min(a.shape) // 2) * 2 + 1))
    d = a - threshold_local(a, bs, method="gaussian")
    if polarity == "auto":  # the side with fewer pixels, judged on the local contrast
        polarity = "bright" if (d > threshold_otsu(d)).mean() <= 0.5 else "dark"
    if polarity == "dark":
        d = -d
    m = d > threshold_otsu(d)
    return _finish(m, "bright", min_area)


#: name -> ``f(image) -> bool mask`` (the rows of ``scopenet bench segment``)
BASELINES = {"otsu": otsu, "local": local_threshold}
