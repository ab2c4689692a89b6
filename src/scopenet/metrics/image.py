"""Image-quality metrics: MSE, RMS, PSNR, SSIM, error maps and error profiles.

NumPy functions take ``(reference, test)`` in that order, like :mod:`skimage.metrics`. The
``*_torch`` functions work on batches ``(N, C, H, W)`` or ``(N, H, W)`` and are differentiable.

Examples
--------
>>> import numpy as np
>>> ref = np.zeros((4, 4)); test = ref + 0.1
>>> round(mse(ref, test), 6), round(rms(ref, test), 6), round(psnr(ref, test, data_range=1.0), 3)
(0.01, 0.1, 20.0)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from scopenet.errors import InputError

__all__ = ["mse", "rms", "psnr", "ssim", "mae_map", "error_vs_position", "error_vs_edge_distance",
           "error_vs_distance_to_path", "ErrorProfile", "psnr_torch", "ssim_torch"]


def _pair(reference, test) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    tst = np.asarray(test, dtype=np.float64)
    if ref.shape != tst.shape:
        raise InputError(f"reference and test images differ in shape: {ref.shape} vs {tst.shape}")
    if ref.size == 0:
        raise InputError("empty images given to an image metric")
    return ref, tst


def _range(ref: np.ndarray, data_range: float | None) -> float:
    if data_range is None:
        data_range = float(np.nanmax(ref) - np.nanmin(ref))
    if not (np.isfinite(data_range) and data_range > 0):
        raise InputError(f"data_range must be finite and > 0, got {data_range!r} (a constant reference "
                         "image needs an explicit data_range)")
    return float(data_range)


def mse(reference, test) -> float:
    """Mean squared error ``mean((test - reference)^2)`` over all elements (arrays of one shape)."""
    ref, tst = _pair(reference, test)
    return float(np.mean((tst - ref) ** 2))


def rms(reference, test) -> float:
    """Root-mean-square error ``sqrt(mse)``, in the images' units."""
    return float(np.sqrt(mse(reference, test)))


def psnr(reference, test, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / mse)`` in dB.

    Parameters
    ----------
    reference, test : array_like, same shape
    data_range : float, optional
        Peak-to-peak range of the signal; default ``reference.max() - reference.min()``.

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images. Agrees with
        :func:`skimage.metrics.peak_signal_noise_ratio` given the same ``data_range``.
    """
    ref, tst = _pair(reference, test)
    r = _range(ref, data_range)
    err = float(np.mean((tst - ref) ** 2))
    if err == 0:
        return float("inf")
    return float(10 * np.log10(r ** 2 / err))


def ssim(reference, test, data_range: float | None = None, *, win_size: int | None = None,
         gaussian_weights: bool = False, channel_axis: int | None = None, full: bool = False, **kwargs):
    """Structural similarity index (Wang et al. 2004), via :func:`skimage.metrics.structural_similarity`.

    Parameters
    ----------
    reference, test : array_like, same shape, 2-D (or N-D / multichannel with ``channel_axis``)
    data_range : float, optional
        Default ``reference.max() - reference.min()`` (skimage needs it explicitly for floats).
    win_size, gaussian_weights, channel_axis, **kwargs
        Passed to skimage (7x7 uniform window, K1 = 0.01, K2 = 0.03 by default).
    full : bool
        Also return the SSIM map.

    Returns
    -------
    float, or (float, ndarray) when ``full``
    """
    from skimage.metrics import structural_similarity

    ref, tst = _pair(reference, test)
    r = _range(ref, data_range)
    res = structural_similarity(ref, tst, data_range=r, win_size=win_size,
                                gaussian_weights=gaussian_weights, channel_axis=channel_axis,
                                full=full, **kwargs)
    if full:
        return float(res[0]), res[1]
    return float(res)


def mae_map(reference, test) -> np.ndarray:
    """Mean absolute error at each pixel over a stack.

    Parameters
    ----------
    reference, test : array_like, shape (H, W) or (N, H, W)

    Returns
    -------
    ndarray, shape (H, W)
        ``mean_n |test - reference|``.
    """
    ref, tst = _pair(reference, test)
    err = np.abs(tst - ref)
    if err.ndim == 2:
        return err
    if err.ndim == 3:
        return err.mean(axis=0)
    raise InputError(f"mae_map expects (H, W) or (N, H, W) images, got shape {err.shape}")


def error_vs_position(error_map, tile_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Mean error at each position, optionally folded onto the position within tiles.

    Parameters
    ----------
    error_map : array_like, shape (H, W) or (N, H, W)
        Per-pixel errors (e.g. ``|test - reference|``); a stack is averaged over N.
    tile_shape : (th, tw), optional
        Tile size used by tiled inference. Pixels are grouped by ``(y mod th, x mod tw)`` (partial
        tiles at the bottom/right edges included) and averaged, showing errors at tile edges.

    Returns
    -------
    ndarray, shape (H, W), or (th, tw) with ``tile_shape``
        NaN where a position received no pixel.
    """
    e = np.asarray(error_map, dtype=np.float64)
    if e.ndim == 3:
        e = e.mean(axis=0)
    if e.ndim != 2:
        raise InputError(f"error_vs_position expects (H, W) or (N, H, W) errors, got shape {e.shape}")
    if tile_shape is None:
        return e
    th, tw = (int(t) for t in tile_shape)
    if th < 1 or tw < 1:
        raise InputError(f"tile_shape must be positive, got {tile_shape!r}")
    yy, xx = np.indices(e.shape)
    idx = (yy % th) * tw + (xx % tw)
    total = np.bincount(idx.ravel(), weights=e.ravel(), minlength=th * tw)
    count = np.bincount(idx.ravel(), minlength=th * tw)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return out.reshape(th, tw)


class ErrorProfile(NamedTuple):
    """Mean error binned by a distance: bin centres, means (NaN for empty bins) and counts."""

    distance: np.ndarray
    mean: np.ndarray
    count: np.ndarray


def _binned(dist: np.ndarray, err: np.ndarray, bins) -> ErrorProfile:
    if bins is None:
        edges = np.arange(0.0, np.floor(dist.max()) + 2.0) - 0.5
        edges[0] = min(edges[0], dist.min())
    elif np.ndim(bins) == 0:
        edges = np.linspace(dist.min(), dist.max() + 1e-9, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    idx = np.digitize(dist.ravel(), edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    n = len(edges) - 1
    total = np.bincount(idx[ok], weights=err.ravel()[ok], minlength=n)
    count = np.bincount(idx[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    centres = 0.5 * (edges[:-1] + edges[1:])
    if bins is None:
        centres = np.arange(n, dtype=np.float64)
    return ErrorProfile(centres, mean, count)


def error_vs_edge_distance(error_map, bins=None) -> ErrorProfile:
    """Mean error as a function of distance (px) to the nearest image edge.

    Parameters
    ----------
    error_map : array_like, shape (H, W) or (N, H, W)
        Per-pixel errors; a stack is averaged over N first.
    bins : int or sequence of edges, optional
        Default: integer distances 0, 1, 2, ... (edge pixels have distance 0).

    Returns
    -------
    ErrorProfile
    """
    e = error_vs_position(error_map)
    h, w = e.shape
    yy, xx = np.indices(e.shape)
    dist = np.minimum.reduce([yy, xx, h - 1 - yy, w - 1 - xx]).astype(np.float64)
    return _binned(dist, e, bins)


def error_vs_distance_to_path(error_map, mask, bins=None, sampling=None) -> ErrorProfile:
    """Mean error of a completed sparse scan as a function of distance to the nearest scanned pixel.

    Parameters
    ----------
    error_map : array_like, shape (H, W)
        Per-pixel errors of the completion.
    mask : array_like of bool, shape (H, W)
        True where the probe scanned (the path). Must contain at least one True.
    bins : int or sequence of edges, optional
        Default: integer distances (px) 0, 1, 2, ... (rounded to the nearest integer bin).
    sampling : float or (float, float), optional
        Pixel size(s) for :func:`scipy.ndimage.distance_transform_edt`; distances are then in those
        units.

    Returns
    -------
    ErrorProfile
        Distances from the Euclidean distance transform of the unscanned region.
    """
    e = np.asarray(error_map, dtype=np.float64)
    m = np.asarray(mask).astype(bool)
    if e.shape != m.shape or e.ndim != 2:
        raise InputError(f"error map and mask must be 2-D of one shape, got {e.shape} and {m.shape}")
    if not m.any():
        raise InputError("the scan-path mask has no scanned pixel")
    dist = ndimage.distance_transform_edt(~m, sampling=sampling)
    return _binned(dist, e, bins)


# --------------------------------------------------------------------------------------------
# torch batch versions
# --------------------------------------------------------------------------------------------


def _as_nchw(x):
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    raise InputError(f"expected a batch (N, H, W) or (N, C, H, W), got shape {tuple(x.shape)}")


def psnr_torch(pred, target, data_range: float | None = None):
    """PSNR (dB) of each example of a batch, shape (N,); differentiable.

    ``data_range`` defaults to each target's own ``max - min``.
    """
    import torch

    if pred.shape != target.shape:
        raise InputError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    dims = tuple(range(1, pred.ndim))
    err = ((pred - target) ** 2).mean(dim=dims)
    if data_range is None:
        rng = target.amax(dim=dims) - target.amin(dim=dims)
    else:
        rng = torch.full_like(err, float(data_range))
    return 10 * torch.log10(rng ** 2 / err)


def ssim_torch(pred, target, data_range: float | None = None, win_size: int = 7,
               k1: float = 0.01, k2: float = 0.03):
    """SSIM of each example of a batch, shape (N,); differentiable.

    Same definition as :func:`skimage.metrics.structural_similarity` with its defaults (uniform
    ``win_size`` window, sample covariance, border of ``(win_size - 1) // 2`` excluded from the
    mean); channels are averaged like skimage's ``channel_axis``. ``data_range`` defaults to
    each target's ``max - min``.

    Parameters
    ----------
    pred, target : torch.Tensor, shape (N, H, W) or (N, C, H, W)
    """
    import torch
    import torch.nn.functional as F

    if pred.shape != target.shape:
        raise InputError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    x, y = _as_nchw(pred), _as_nchw(target)
    if win_size % 2 != 1 or win_size > min(x.shape[-2:]):
        raise InputError(f"win_size must be odd and <= the image size, got {win_size}")
    n, c = x.shape[:2]
    if data_range is None:
        r = (y.reshape(n, -1).amax(1) - y.reshape(n, -1).amin(1)).reshape(n, 1, 1, 1)
    else:
        r = torch.full((n, 1, 1, 1), float(data_range), dtype=x.dtype, device=x.device)

    def filt(t):
        return F.avg_pool2d(t, win_size, stride=1)

    ux, uy = filt(x), filt(y)
    uxx, uyy, uxy = filt(x * x), filt(y * y), filt(x * y)
    cov_norm = win_size ** 2 / (win_size ** 2 - 1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * r) ** 2
    c2 = (k2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.reshape(n, c, -1).mean(dim=2).mean(dim=1)
