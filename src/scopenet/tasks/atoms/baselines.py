"""Classical atom finders, the baselines :class:`~scopenet.tasks.atoms.AtomFinder` must beat.

- :func:`log_com`: Laplacian-of-Gaussian blobs (:func:`skimage.feature.blob_log`) refined by the centre
  of mass;
- :func:`maxima_gaussian`: local maxima of the lightly smoothed image at a minimum separation of half
  the spacing (:func:`skimage.feature.peak_local_max`), refined by a 2-D Gaussian fit (atomap's
  ``get_atom_positions`` + ``refine_atom_positions_using_2d_gaussian``).

Both size their filters from the image's own spacing (:func:`~.postprocess.estimate_spacing`) unless
``spacing_px`` is given, and both return ``(row, col)`` px positions, ``(k, 2)``.
"""
from __future__ import annotations

import numpy as np

from .postprocess import estimate_spacing, normalise, refine_com, refine_gaussian

__all__ = ["log_com", "maxima_gaussian", "BASELINES"]


def _spacing(img: np.ndarray, spacing_px: float | None) -> float:
    s = spacing_px if spacing_px is not None else estimate_spacing(img)
    return float(s) if np.isfinite(s) and s > 0 else 8.0


def log_com(img: np.ndarray, spacing_px: float | None = None, threshold: float = 0.05) -> np.ndarray:
    """Laplacian-of-Gaussian blobs with centre-of-mass refinement.

    Parameters
    ----------
    img : ndarray (H, W)
        Bright atoms.
    spacing_px : float, optional
        Atom spacing, px (default: estimated).
    threshold : float
        ``blob_log`` threshold on the normalised image.

    Returns
    -------
    ndarray, shape (k, 2)
        ``(row, col)`` px.
    """
    from skimage.feature import blob_log

    s = _spacing(img, spacing_px)
    u = normalise(img)
    blobs = blob_log(u, min_sigma=max(0.5, 0.1 * s), max_sigma=max(1.0, 0.35 * s), num_sigma=5,
                     threshold=threshold, overlap=0.5, exclude_border=False)
    if len(blobs) == 0:
        return np.zeros((0, 2))
    return refine_com(img, blobs[:, :2], max(1.5, 0.4 * s))


def maxima_gaussian(img: np.ndarray, spacing_px: float | None = None, threshold_rel: float = 0.2) -> np.ndarray:
    """Local maxima at a separation of half the spacing, refined by a 2-D Gaussian (atomap's approach).

    Parameters
    ----------
    img : ndarray (H, W)
    spacing_px : float, optional
        Atom spacing, px (default: estimated).
    threshold_rel : float
        Smallest peak, as a fraction of the brightest (after a Gaussian smoothing of 0.1 x spacing).

    Returns
    -------
    ndarray, shape (k, 2)
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    s = _spacing(img, spacing_px)
    u = ndi.gaussian_filter(normalise(img), max(0.5, 0.1 * s))
    u = u - ndi.gaussian_filter(u, 2 * s)  # flatten slow background as atomap users do
    pk = peak_local_max(u, min_distance=max(1, int(0.5 * s)), threshold_rel=threshold_rel, exclude_border=False)
    if len(pk) == 0:
        return np.zeros((0, 2))
    return refine_gaussian(img, pk.astype(float), max(1.5, 0.45 * s), passes=0)["positions"]  # one column at a time


#: name -> function(img) -> (k, 2) positions, for the benchmark
BASELINES = {"LoG + CoM": log_com, "maxima + Gaussian": maxima_gaussian}
