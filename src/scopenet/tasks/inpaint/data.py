"""Training samples for sparse-scan completion: image pool, mask bank, and batches."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...simulate import scans


def blur_target(image: np.ndarray, size: int = 5, sigma: float = 2.5) -> np.ndarray:
    """Gaussian blur with a ``size x size`` kernel of ``sigma`` px over the last two axes (Ede's target)."""
    radius = size // 2
    sig = (0,) * (image.ndim - 2) + (sigma, sigma)
    return ndimage.gaussian_filter(image.astype(np.float32), sig, truncate=radius / sigma + 1e-6, mode="reflect")


def mask_bank(kinds, cmin: float, cmax: float, n_levels: int, per_level: int, size: int = 512,
              seed: int = 0) -> list[np.ndarray]:
    """Masks of each ``kind`` at ``n_levels`` log-spaced coverages in ``[cmin, cmax]`` (``size x size``)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.geomspace(cmin, cmax, n_levels):
        for k in kinds:
            for _ in range(1 if k == "spiral" else per_level):
                out.append(scans.make_mask(k, size, float(c), rng))
    return out


def make_batch(pool: list[np.ndarray], masks: list[np.ndarray], n: int, crop: int, rng: np.random.Generator,
               blur_size: int = 5, blur_sigma: float = 2.5):
    """``n`` samples: inputs ``(n, 2, crop, crop)`` [NN infill, mask], blurred and raw truths ``(n, 1, crop, crop)``."""
    x = np.zeros((n, 2, crop, crop), np.float32)
    y = np.zeros((n, 1, crop, crop), np.float32)
    t = np.zeros((n, 1, crop, crop), np.float32)
    for i in range(n):
        img = pool[rng.integers(len(pool))]
        r0, c0 = rng.integers(0, img.shape[0] - crop + 1), rng.integers(0, img.shape[1] - crop + 1)
        im = img[r0:r0 + crop, c0:c0 + crop]
        im = np.rot90(im, rng.integers(4))
        im = im[:, ::-1] if rng.integers(2) else im
        lo, hi = float(im.min()), float(im.max())
        if hi - lo > 1e-6 and rng.random() < 0.5:  # contrast jitter: use the full [0, 1] range half the time
            im = (im - lo) / (hi - lo)
        while True:
            m = masks[rng.integers(len(masks))]
            a, b = rng.integers(0, m.shape[0] - crop + 1), rng.integers(0, m.shape[1] - crop + 1)
            mk = np.rot90(m[a:a + crop, b:b + crop], rng.integers(4))
            if mk.any():
                break
        im = np.ascontiguousarray(im, np.float32)
        mk = np.ascontiguousarray(mk)
        x[i, 0] = scans.nn_infill(im * mk, mk)
        x[i, 1] = mk
        y[i, 0] = blur_target(im, blur_size, blur_sigma)
        t[i, 0] = im
    return x, y, t
