"""Array/Micrograph in and out for the image operations of :mod:`scopenet.image.spm` and
:mod:`scopenet.image.em` (which stay independent of each other and share only this)."""
from __future__ import annotations

import numpy as np

from .micrograph import Micrograph, check_image_array


def _split(x) -> tuple[np.ndarray, Micrograph | None]:
    """The data of ``x`` as a float array (no copy when possible) and the Micrograph or None."""
    if isinstance(x, Micrograph):
        return x.data, x
    return check_image_array(x), None


def _out_dtype(arr: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if arr.dtype == np.float64 else np.dtype(np.float32)


def _wrap(out: np.ndarray, img: Micrograph | None, operation: str, axes=None, **params):
    if img is None:
        return out
    return img.with_data(out, axes=axes, operation=operation, **params)
