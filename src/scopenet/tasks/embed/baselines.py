"""Classical embeddings the VAE must beat (same 96 px inputs, same 64-number codes, Euclidean search):

- :class:`PixelCodes`: the image area-averaged to 8x8 pixels (64 numbers), min-max scaled;
- :class:`PCACodes`: the first 64 principal components of the 96x96 inputs (scikit-learn PCA, fitted
  on a training pool; Ede's figure 2(d) uses 50 components of probabilistic PCA).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import InputError
from .model import frames_of
from .preprocess import _area_resize, minmax, to_inputs

__all__ = ["PCACodes", "PixelCodes", "inputs_of"]


def inputs_of(x: Any, size: int = 96) -> np.ndarray:
    """``(N, size, size)`` network inputs (central square resized, min-max scaled), one per 2-D image."""
    return np.stack([to_inputs(f, size, "resize")[0] for f in frames_of(x)])


class PixelCodes:
    """Codes = the 96 px input area-averaged to ``side x side`` (64 numbers for side 8), scaled to [0, 1]."""

    name = "pixels 8x8"

    def __init__(self, side: int = 8, size: int = 96):
        if size % side:
            raise InputError(f"side {side} must divide the input size {size}")
        self.side, self.size = int(side), int(size)

    def fit(self, images: Any = None) -> "PixelCodes":
        return self

    def predict_inputs(self, x: np.ndarray) -> np.ndarray:
        """Codes ``(N, side**2)`` of prepared inputs ``(N, size, size)``."""
        return np.stack([minmax(_area_resize(a, self.side)).ravel() for a in np.asarray(x, np.float32)])

    def predict(self, x: Any) -> np.ndarray:
        return self.predict_inputs(inputs_of(x, self.size))


class PCACodes:
    """Codes = the first ``n`` principal components of the 96 px inputs (fit first)."""

    name = "PCA 64"

    def __init__(self, n: int = 64, size: int = 96, seed: int = 0):
        self.n, self.size, self.seed = int(n), int(size), int(seed)
        self.pca_ = None

    def fit_inputs(self, x: np.ndarray) -> "PCACodes":
        from sklearn.decomposition import PCA

        x = np.asarray(x, np.float32).reshape(len(x), -1)
        if len(x) < self.n:
            raise InputError(f"PCA with {self.n} components needs at least {self.n} images, got {len(x)}")
        self.pca_ = PCA(self.n, svd_solver="randomized", random_state=self.seed).fit(x)
        return self

    def fit(self, images: Any) -> "PCACodes":
        return self.fit_inputs(inputs_of(images, self.size))

    def predict_inputs(self, x: np.ndarray) -> np.ndarray:
        if self.pca_ is None:
            raise InputError("PCACodes is not fitted: call fit() first")
        return self.pca_.transform(np.asarray(x, np.float32).reshape(len(x), -1)).astype(np.float32)

    def predict(self, x: Any) -> np.ndarray:
        return self.predict_inputs(inputs_of(x, self.size))
