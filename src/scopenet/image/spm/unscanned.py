"""Unfinished scans: cropping away the unscanned (all-NaN) lines of a scan stopped early."""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ..micrograph import Micrograph


def crop_unscanned(img: Micrograph) -> Micrograph:
    """Crop away the all-NaN rows (unscanned lines of a scan stopped early).

    Parameters
    ----------
    img : Micrograph
        A 2-D image, e.g. from the MATRIX reader (:func:`scopenet.io.matrix.read_matrix`).

    Returns
    -------
    Micrograph
        The rows from the first to the last one holding any finite value; the pixel size is kept,
        the y offset follows, and a ``crop_unscanned`` provenance entry is appended. An image with
        no NaN row is returned as a copy with the same provenance entry.

    Raises
    ------
    InputError
        If the image is not 2-D or no row holds a finite value.
    """
    if img.ndim != 2:
        raise InputError(f"crop_unscanned needs a 2-D image, got shape {img.shape}")
    good = np.flatnonzero(np.isfinite(img.data).any(axis=1))
    if good.size == 0:
        raise InputError("crop_unscanned: every row of the image is NaN (nothing was scanned)")
    y0, y1 = int(good[0]), int(good[-1]) + 1
    out = img.crop(y0, y1, 0, img.shape[1])
    out.provenance[-1] = {**out.provenance[-1], "operation": "crop_unscanned"}
    return out
