"""Classical baselines for tip-state classification: models on raw pixels.

The Gordon & Landon report's pixel-based classical models (logistic regression / random forest on
32x32 pixels) are the baselines the CNN must beat on held-out sessions (``scopenet bench classify``; the
figures are in the model cards and ``benchmarks/results/classify.md``).
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError


def pixel_features(images: np.ndarray, size: int = 32) -> np.ndarray:
    """Resize each image to ``size`` x ``size`` (area averaging), standardise per image, flatten.

    Parameters
    ----------
    images : ndarray [N, H, W]
    size : int

    Returns
    -------
    ndarray [N, size*size] float32
    """
    from skimage.transform import resize

    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise InputError(f"expected images of shape [N, H, W], got {images.shape}")
    out = np.empty((len(images), size * size), np.float32)
    for i, im in enumerate(images):
        r = resize(np.nan_to_num(im), (size, size), anti_aliasing=True, preserve_range=True)
        r = (r - r.mean()) / (r.std() + 1e-6)
        out[i] = r.ravel()
    return out


class PixelBaseline:
    """One-vs-rest classical classifier on pixels, for multi-label targets.

    Parameters
    ----------
    kind : {"logreg", "forest"}
    size : int
        Side of the resized image fed to the model (32 in the study).
    """

    def __init__(self, kind: str = "logreg", size: int = 32, seed: int = 0, C: float = 0.01):
        if kind not in ("logreg", "forest"):
            raise InputError(f"unknown baseline kind {kind!r}: use 'logreg' or 'forest'")
        self.kind, self.size, self.seed, self.C = kind, size, seed, C
        self.models_: list = []

    def _make(self):
        if self.kind == "logreg":
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=self.C, max_iter=2000)
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=300, min_samples_leaf=2, n_jobs=-1, random_state=self.seed)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> "PixelBaseline":
        """Fit on images [N, H, W] and binary (or soft, thresholded at 0.5) labels [N, K]."""
        X = pixel_features(images, self.size)
        Y = (np.asarray(labels) >= 0.5).astype(int)
        self.models_ = []
        for k in range(Y.shape[1]):
            if Y[:, k].min() == Y[:, k].max():  # a category with one class only: constant prior
                self.models_.append(float(Y[0, k]))
                continue
            self.models_.append(self._make().fit(X, Y[:, k]))
        return self

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Probabilities [N, K] per category."""
        X = pixel_features(images, self.size)
        cols = [np.full(len(X), m) if isinstance(m, float) else m.predict_proba(X)[:, 1] for m in self.models_]
        return np.stack(cols, axis=1).astype(np.float32)
