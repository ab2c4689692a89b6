"""Array helpers of training data: non-finite pixels, per-image normalisation, the 8 dihedral transforms.

(The batch streams the engine trains on are in :mod:`scopenet.training.budget`; the flip/rotation
test-time averaging :func:`dihedral_tta` is moving to :mod:`scopenet.image`, as inference does not belong
here.)
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError


# ---------------------------------------------------------------------------------------------
# pure array helpers
# ---------------------------------------------------------------------------------------------
def replace_nonfinite(image: np.ndarray, value: float | None = None) -> np.ndarray:
    """Copy of ``image`` with NaN/inf replaced by ``value`` (default: the median of finite pixels).

    An image without a single finite pixel raises ``InputError``.
    """
    image = np.asarray(image, dtype=np.float32)
    finite = np.isfinite(image)
    if finite.all():
        return image.copy()
    if not finite.any():
        raise InputError("image has no finite pixels")
    fill = float(np.median(image[finite])) if value is None else float(value)
    return np.where(finite, image, np.float32(fill)).astype(np.float32)


def normalise_image(image: np.ndarray, mode: str = "zscore") -> np.ndarray:
    """Per-image normalisation: ``"zscore"`` (mean 0, sd 1), ``"minmax"`` ([0, 1]) or ``"none"``.

    Constant images map to zeros instead of dividing by zero.
    """
    image = np.asarray(image, dtype=np.float32)
    if mode == "none":
        return image
    if mode == "zscore":
        sd = float(image.std())
        return ((image - image.mean()) / sd if sd > 0 else image - image.mean()).astype(np.float32)
    if mode == "minmax":
        lo, hi = float(image.min()), float(image.max())
        return ((image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)).astype(np.float32)
    raise InputError(f"unknown normalisation {mode!r}; use zscore, minmax or none")


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th of the 8 flips/90-degree rotations (k = 0 is the identity) of the last two axes.

    ``k % 4`` quarter turns, followed by a left-right flip when ``k >= 4``.
    """
    if not 0 <= k < 8:
        raise InputError(f"dihedral index must be in 0..7, got {k}")
    out = np.rot90(image, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


def dihedral_inverse(image: np.ndarray, k: int) -> np.ndarray:
    """Undo :func:`dihedral` ``k`` on the last two axes: ``dihedral_inverse(dihedral(a, k), k) == a``."""
    if not 0 <= k < 8:
        raise InputError(f"dihedral index must be in 0..7, got {k}")
    out = image[..., ::-1] if k >= 4 else image
    return np.ascontiguousarray(np.rot90(out, -(k % 4), axes=(-2, -1)))


def dihedral_tta(fn, x: np.ndarray, ks=range(8)) -> np.ndarray:
    """Average ``fn`` over flips/90-degree rotations of the last two axes of ``x``, each mapped back.

    Parameters
    ----------
    fn : callable ``(..., H, W) -> (..., H, W)``
        Any leading axes (channels) are carried along; the output's last two axes are transformed back.
    x : ndarray
    ks : iterable of int
        Which of the 8 transforms of :func:`dihedral` to average (default all).
    """
    ks = list(ks)
    acc = None
    for k in ks:
        y = dihedral_inverse(np.asarray(fn(dihedral(x, k)), np.float64), k)
        acc = y if acc is None else acc + y
    return (acc / len(ks)).astype(np.float32)
