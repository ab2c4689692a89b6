"""From a micrograph of any size to the embedding network's ``size x size`` inputs in [0, 1].

``"resize"``: the central square (the largest that fits) is area-averaged down (or bilinearly
interpolated up) to ``size`` pixels, then min-max scaled to [0, 1]. ``"tiles"``: non-overlapping
``size x size`` tiles at the image's own pixel size (the last row and column of tiles aligned to the
far edges, so every pixel is covered), each min-max scaled; an image smaller than ``size`` is resized.
No torch here: the index and the map use these for thumbnails too.

Canonical orientation (:func:`canonical_view`): of the 8 flips/quarter turns of an input, the one that
maximises a fixed score of its quadrant sums, so an image and its rotated or flipped copy are encoded
in the same orientation with one pass of the network.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...errors import InputError
from ...image.scaling import fill_nonfinite

__all__ = ["canonical_view", "canonicalize", "minmax", "resize_square", "tiles", "to_inputs", "thumbnail"]


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


#: weight of the smooth tie-break template against the quadrant template (see :func:`_templates`)
_TIE = 1e-3


@lru_cache(maxsize=8)
def _templates(size: int) -> np.ndarray:
    """``(8, size * size)`` float64: row ``g`` is the template ``W`` seen through view ``g``, so that
    ``T[g] @ x.ravel() == (W * dihedral(x, g)).sum()``.

    ``W = cos(22.5 deg) sign(X) + sin(22.5 deg) sign(Y) + 0.6 sign(X) sign(Y)`` on pixel-centre
    coordinates ``X, Y`` in (-1, 1) (the centre row/column of an odd size counts 0): a weighted sum of
    the four quadrant sums whose 8 dihedral versions all differ, so the maximum picks one view unless
    the quadrant sums are themselves symmetric. A smooth polynomial (weight :data:`_TIE`) breaks such ties
    on finer structure: ``0.5 (cos X + sin Y) + (X^2 - Y^2) + 0.6 XY + 0.3 XY (X^2 - Y^2)``.
    Every term is odd under some flip, so ``W`` sums to 0 and the scores ignore an intensity offset.
    """
    from ...image.tta import dihedral_inverse

    c = (np.arange(size) + 0.5) / size * 2 - 1
    Y, X = np.meshgrid(c, c, indexing="ij")
    ca, sa = np.cos(np.pi / 8), np.sin(np.pi / 8)
    sx, sy = np.sign(np.round(X, 12)), np.sign(np.round(Y, 12))
    W = ca * sx + sa * sy + 0.6 * sx * sy
    W = W + _TIE * (0.5 * (ca * X + sa * Y) + (X * X - Y * Y) + 0.6 * X * Y + 0.3 * X * Y * (X * X - Y * Y))
    # <W, dihedral(x, g)> = <dihedral_inverse(W, g), x>
    return np.stack([dihedral_inverse(W, g).ravel() for g in range(8)])


def canonical_view(x: np.ndarray) -> np.ndarray:
    """The canonical view index (0..7, as :func:`scopenet.image.tta.dihedral`) of each square input.

    Parameters
    ----------
    x : ndarray (M, S, S) or (S, S)
        Inputs (any intensity scale; the network's are min-max scaled to [0, 1]).

    Returns
    -------
    ndarray int64 (M,) (a 0-d array for one 2-D input): ``k`` such that ``dihedral(x, k)`` maximises the
    score of :func:`_templates`. For ``y = dihedral(x, j)``, ``dihedral(y, canonical_view(y))`` equals
    ``dihedral(x, canonical_view(x))`` (up to float rounding when two scores nearly tie), which is what
    makes the codes invariant to quarter turns and flips.
    """
    a = np.asarray(x)
    one = a.ndim == 2
    a = a[None] if one else a
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise InputError(f"canonical_view needs square inputs (M, S, S), got shape {np.shape(x)}")
    T = _templates(a.shape[1])
    flat = a.reshape(len(a), -1)
    scores = flat.astype(np.float32, copy=False) @ T.astype(np.float32).T
    # float32 sums round differently for each view of the same image: near ties are decided in float64
    top2 = -np.partition(-scores, 1, axis=1)[:, :2]
    close = np.abs(top2[:, 0] - top2[:, 1]) <= 1e-4 * (np.abs(top2[:, 0]) + 1e-30)
    if close.any():
        scores = scores.astype(np.float64)
        scores[close] = flat[close].astype(np.float64) @ T.T
    k = np.argmax(scores, axis=1)
    return k[0] if one else k


def canonicalize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(views, k)``: each input of ``x`` ``(M, S, S)`` turned/flipped into its canonical view
    (:func:`canonical_view`), float32, and the view indices ``k`` ``(M,)``."""
    from ...image.tta import dihedral

    x = np.asarray(x, np.float32)
    k = canonical_view(x)
    out = np.empty_like(x)
    for g in np.unique(k):
        idx = np.flatnonzero(k == g)
        out[idx] = dihedral(x[idx], int(g))
    return out, k
