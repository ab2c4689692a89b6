"""From a micrograph of any size to the embedding network's ``size x size`` inputs in [0, 1].

``"resize"``: the central square (the largest that fits) is area-averaged down (or bilinearly
interpolated up) to ``size`` pixels, then min-max scaled to [0, 1]. ``"tiles"``: non-overlapping
``size x size`` tiles at the image's own pixel size (the last row and column of tiles aligned to the
far edges, so every pixel is covered), each min-max scaled; an image smaller than ``size`` is resized.
No torch here: the index and the map use these for thumbnails too.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...errors import InputError
from ...image.scaling import fill_nonfinite

__all__ = ["minmax", "resize_square", "tiles", "to_inputs", "thumbnail"]


def minmax(a: np.ndarray) -> np.ndarray:
    """``a`` linearly mapped to [0, 1] (a constant image gives zeros), float32."""
    a = np.asarray(a, np.float32)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(a)


@lru_cache(maxsize=64)
def _matrix(n: int, size: int) -> np.ndarray:
    """The ``(size, n)`` resampling matrix: exact area averaging down, bilinear (half-pixel centres) up."""
    # separable resampling matrix: row i averages input pixels overlapping [i * n / size, (i + 1) * n / size)
    if n > size:
        edges = np.arange(size + 1) * (n / size)
        M = np.zeros((size, n), np.float64)
        for i in range(size):
            lo, hi = edges[i], edges[i + 1]
            j0, j1 = int(np.floor(lo)), int(np.ceil(hi))
            for j in range(j0, min(j1, n)):
                M[i, j] = min(hi, j + 1) - max(lo, j)
        M /= M.sum(1, keepdims=True)
    else:
        x = (np.arange(size) + 0.5) * (n / size) - 0.5
        x = np.clip(x, 0, n - 1)
        j0 = np.floor(x).astype(int)
        j1 = np.minimum(j0 + 1, n - 1)
        w = x - j0
        M = np.zeros((size, n), np.float64)
        M[np.arange(size), j0] += 1 - w
        M[np.arange(size), j1] += w
    return M


def _area_resize(a: np.ndarray, size: int) -> np.ndarray:
    """Square ``a`` (n x n) to ``size x size``."""
    n = a.shape[0]
    if n == size:
        return a.astype(np.float32)
    M = _matrix(n, size)
    return (M @ a.astype(np.float64) @ M.T).astype(np.float32)


def _frame(a) -> np.ndarray:
    a = np.asarray(getattr(a, "data", a))
    if a.ndim != 2 or min(a.shape) < 2:
        raise InputError(f"an image to embed must be 2-D and at least 2x2 pixels, got shape {a.shape}")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise InputError(f"an image to embed must be real and numeric, got dtype {a.dtype}")
    return fill_nonfinite(a)


def resize_square(a, size: int = 96) -> np.ndarray:
    """The central square of 2-D ``a`` resampled to ``(size, size)`` (not scaled), float32."""
    a = _frame(a)
    h, w = a.shape
    n = min(h, w)
    y0, x0 = (h - n) // 2, (w - n) // 2
    return _area_resize(a[y0:y0 + n, x0:x0 + n], size)


def tiles(a, size: int = 96) -> np.ndarray:
    """Non-overlapping ``size x size`` tiles of 2-D ``a`` -> ``(n_tiles, size, size)`` (not scaled)."""
    a = _frame(a)
    h, w = a.shape
    if min(h, w) < size:
        return resize_square(a, size)[None]
    ys = sorted({*range(0, h - size + 1, size), h - size})
    xs = sorted({*range(0, w - size + 1, size), w - size})
    return np.stack([a[y:y + size, x:x + size] for y in ys for x in xs]).astype(np.float32)


def to_inputs(a, size: int = 96, fit: str = "resize") -> np.ndarray:
    """The network inputs of one 2-D image: ``(1, size, size)`` ("resize") or ``(n_tiles, size, size)``
    ("tiles"), each min-max scaled to [0, 1]."""
    if fit == "resize":
        x = resize_square(a, size)[None]
    elif fit == "tiles":
        x = tiles(a, size)
    else:
        raise InputError(f"fit must be 'resize' or 'tiles', got {fit!r}")
    return np.stack([minmax(t) for t in x])


def thumbnail(a, size: int = 64) -> np.ndarray:
    """A ``size x size`` uint8 thumbnail of the central square of ``a`` (1/99 percentile stretch)."""
    t = resize_square(a, size)
    lo, hi = np.percentile(t, [1, 99])
    if hi <= lo:
        lo, hi = float(t.min()), float(t.max()) if t.max() > t.min() else float(t.min()) + 1
    return (np.clip((t - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
