"""Classical denoisers with the settings of Ede & Beanland's Table 1 (thesis ch. 6), plus NL-means and BM3D.

Every function maps a 2-D float image (intended range [0, 1], as in the chapter) to a denoised
float32 image of the same shape:

=============  ==================================================================================
gaussian       3 x 3 kernel, sigma 0.8 px
bilateral      9 x 9 window, radiometric and spatial scales 75 (as OpenCV's ``bilateralFilter``
               on float data: the range weights are almost flat, so it behaves like a wide blur)
median         3 x 3 kernel
wiener         :func:`scipy.signal.wiener`, default 3 x 3 window, noise power estimated
wavelet        BayesShrink soft thresholding, noise from the finest detail band (Donoho & Johnstone)
tv_chambolle   Chambolle TV, weight 0.1, stop at fractional cost change 2e-4 or 200 iterations
tv_bregman     split-Bregman TV, weight 0.1, same stopping rule
nl_means       non-local means (5 x 5 patches, 13 x 13 search, h = 0.8 sigma, sigma estimated)
bm3d           BM3D with the noise sigma estimated (optional ``bm3d`` package, non-commercial
               licence: a benchmark extra only, imported lazily)
=============  ==================================================================================

>>> import numpy as np
>>> out = denoise_baseline(np.random.rand(64, 64), "median")
>>> out.shape, out.dtype
((64, 64), dtype('float32'))
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

from ...errors import InputError, require

__all__ = ["BASELINES", "TABLE1_BASELINES", "denoise_baseline", "gaussian", "bilateral", "median", "wiener",
           "wavelet", "tv_chambolle", "tv_bregman", "nl_means", "bm3d_denoise", "estimate_sigma",
           "available_baselines"]


def _img(image) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"a baseline denoiser needs a 2-D image, got shape {a.shape}")
    if a.size == 0 or not np.isfinite(a).all():
        raise InputError("image is empty or contains NaN/inf values")
    return a


def gaussian(image, sigma: float = 0.8, size: int = 3) -> np.ndarray:
    """Gaussian blur with a ``size`` x ``size`` kernel of standard deviation ``sigma`` px."""
    a = _img(image)
    radius = size // 2
    return ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=radius / sigma).astype(np.float32)


def bilateral(image, size: int = 9, sigma_color: float = 75.0, sigma_space: float = 75.0) -> np.ndarray:
    """Bilateral filter over a ``size`` x ``size`` window (Tomasi & Manduchi).

    ``sigma_color`` is in image units and ``sigma_space`` in px, as in OpenCV's ``bilateralFilter``
    (which the chapter used with both scales 75). Computed exactly as a sum over the window offsets.
    """
    a = _img(image)
    r = size // 2
    pad = np.pad(a, r, mode="reflect")
    num = np.zeros_like(a)
    den = np.zeros_like(a)
    h, w = a.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx > r * r:  # OpenCV uses a circular window
                continue
            nb = pad[r + dy:r + dy + h, r + dx:r + dx + w]
            wgt = np.exp(-(dy * dy + dx * dx) / (2 * sigma_space ** 2) - (nb - a) ** 2 / (2 * sigma_color ** 2))
            num += wgt * nb
            den += wgt
    return (num / den).astype(np.float32)


def median(image, size: int = 3) -> np.ndarray:
    """Median filter with a ``size`` x ``size`` window."""
    return ndimage.median_filter(_img(image), size=size, mode="reflect").astype(np.float32)


def wiener(image, size: int = 3) -> np.ndarray:
    """Adaptive Wiener filter (:func:`scipy.signal.wiener`, noise power = mean local variance)."""
    from scipy.signal import wiener as _w

    a = _img(image)
    out = _w(a, mysize=size)
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def estimate_sigma(image) -> float:
    """Gaussian noise standard deviation from the finest wavelet detail band (Donoho & Johnstone)."""
    from skimage.restoration import estimate_sigma as _es

    return float(_es(_img(image)))


def wavelet(image) -> np.ndarray:
    """BayesShrink adaptive wavelet soft thresholding (Chang, Yu & Vetterli), sigma estimated."""
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(_img(image), method="BayesShrink", mode="soft", rescale_sigma=True).astype(np.float32)


def tv_chambolle(image, weight: float = 0.1, eps: float = 2e-4, max_num_iter: int = 200) -> np.ndarray:
    """Chambolle total-variation denoising (weight 0.1, tolerance 2e-4, at most 200 iterations)."""
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(_img(image), weight=weight, eps=eps, max_num_iter=max_num_iter).astype(np.float32)


def tv_bregman(image, weight: float = 0.1, eps: float = 2e-4, max_num_iter: int = 200) -> np.ndarray:
    """Split-Bregman total-variation denoising (skimage's convention: weight 0.1, tolerance 2e-4, 200 iterations)."""
    from skimage.restoration import denoise_tv_bregman

    return denoise_tv_bregman(_img(image), weight=weight, eps=eps, max_num_iter=max_num_iter).astype(np.float32)


def nl_means(image, patch_size: int = 5, patch_distance: int = 6, h_factor: float = 0.8) -> np.ndarray:
    """Non-local means (Buades et al.) with ``h = h_factor * sigma`` and sigma estimated from the image."""
    from skimage.restoration import denoise_nl_means

    a = _img(image)
    s = estimate_sigma(a)
    return denoise_nl_means(a, patch_size=patch_size, patch_distance=patch_distance, h=h_factor * s,
                            sigma=s, fast_mode=True).astype(np.float32)


def bm3d_denoise(image, sigma: float | None = None) -> np.ndarray:
    """BM3D (Dabov et al.) via the optional ``bm3d`` package; ``sigma`` estimated when omitted.

    Raises
    ------
    MissingExtraError
        When ``bm3d`` is not installed (``pip install bm3d``; non-commercial licence).
    """
    mod = require("bm3d", "bm3d", "the BM3D baseline")
    a = _img(image)
    s = estimate_sigma(a) if sigma is None else float(sigma)
    return np.asarray(mod.bm3d(a, sigma_psd=max(s, 1e-4)), dtype=np.float32)


#: the eight methods of the chapter's Table 1, in its order
TABLE1_BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gaussian": gaussian, "bilateral": bilateral, "median": median, "wiener": wiener, "wavelet": wavelet,
    "tv_chambolle": tv_chambolle, "tv_bregman": tv_bregman,
}
#: every baseline, Table 1's first, then NL-means and BM3D
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {**TABLE1_BASELINES, "nl_means": nl_means,
                                                           "bm3d": bm3d_denoise}


def available_baselines() -> list[str]:
    """Names of the baselines usable here (``bm3d`` only when its package is installed)."""
    import importlib.util

    return [n for n in BASELINES if n != "bm3d" or importlib.util.find_spec("bm3d") is not None]


def denoise_baseline(image, method: str) -> np.ndarray:
    """Apply the baseline ``method`` (a key of :data:`BASELINES`) to a 2-D image."""
    if method not in BASELINES:
        raise InputError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")
    return BASELINES[method](image)
