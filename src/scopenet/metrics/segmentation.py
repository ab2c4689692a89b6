"""Segmentation metrics: IoU and Dice for masks, Rand error and variation of information for labels.

Examples
--------
>>> import numpy as np
>>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[1, 0, 0, 0]], bool)
>>> iou(a, b), dice(a, b)
(0.5, 0.6666666666666666)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scopenet.errors import InputError

__all__ = ["iou", "dice", "iou_per_class", "dice_per_class", "adapted_rand_error", "RandError",
           "split_merge_vi", "SplitMerge", "ObjectMatch", "match_objects"]


def _masks(a, b) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a)
    y = np.asarray(b)
    if x.shape != y.shape:
        raise InputError(f"segmentations differ in shape: {x.shape} vs {y.shape}")
    if x.size == 0:
        raise InputError("empty segmentation")
    return x, y


def iou(true_mask, pred_mask) -> float:
    """Intersection over union (Jaccard index) of two boolean masks; 1.0 when both are empty."""
    t, p = _masks(true_mask, pred_mask)
    t, p = t.astype(bool), p.astype(bool)
    union = np.logical_or(t, p).sum()
    return 1.0 if union == 0 else float(np.logical_and(t, p).sum() / union)


def dice(true_mask, pred_mask) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two boolean masks; 1.0 when both are empty."""
    t, p = _masks(true_mask, pred_mask)
    t, p = t.astype(bool), p.astype(bool)
    total = t.sum() + p.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(t, p).sum() / total)


def _per_class(fn, true_labels, pred_labels, n_classes: int | None) -> np.ndarray:
    t, p = _masks(true_labels, pred_labels)
    if n_classes is None:
        n_classes = int(max(t.max(), p.max())) + 1
    return np.array([fn(t == k, p == k) for k in range(n_classes)])


def iou_per_class(true_labels, pred_labels, n_classes: int | None = None) -> np.ndarray:
    """IoU of each class ``0 .. n_classes - 1`` of integer label maps, shape (K,).

    A class absent from both maps scores 1.0. The mean IoU is ``iou_per_class(...).mean()``.
    """
    return _per_class(iou, true_labels, pred_labels, n_classes)


def dice_per_class(true_labels, pred_labels, n_classes: int | None = None) -> np.ndarray:
    """Dice coefficient of each class of integer label maps, shape (K,)."""
    return _per_class(dice, true_labels, pred_labels, n_classes)


class RandError(NamedTuple):
    """Adapted Rand error (1 - F-score of pair counting) with its precision and recall."""

    error: float
    precision: float
    recall: float


def adapted_rand_error(true_labels, pred_labels, ignore_labels=(0,)) -> RandError:
    """Adapted Rand error of an instance segmentation (SNEMI3D definition), via scikit-image.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int, same shape
        Label images (0 = background, ignored by default in the ground truth).
    ignore_labels : sequence of int
        Ground-truth labels left out of the score.

    Returns
    -------
    RandError
        ``error`` is 0 for identical segmentations (up to relabelling). ``precision`` falls with
        merges and ``recall`` with splits.
    """
    from skimage.metrics import adapted_rand_error as _are

    t, p = _masks(true_labels, pred_labels)
    err, prec, rec = _are(t.astype(np.int64), p.astype(np.int64), ignore_labels=ignore_labels)
    return RandError(float(err), float(prec), float(rec))


class SplitMerge(NamedTuple):
    """Variation of information split into over-segmentation (split) and under-segmentation (merge)."""

    split: float
    merge: float

    @property
    def total(self) -> float:
        """The variation of information ``split + merge`` (bits)."""
        return self.split + self.merge


def split_merge_vi(true_labels, pred_labels, ignore_labels=()) -> SplitMerge:
    """Information-theoretic split/merge scores, via :func:`skimage.metrics.variation_of_information`.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int, same shape
    ignore_labels : sequence of int
        Ground-truth labels left out.

    Returns
    -------
    SplitMerge
        ``split = H(pred | true)`` (over-segmentation, bits) and ``merge = H(true | pred)``
        (under-segmentation); both 0 for identical segmentations up to relabelling.
    """
    from skimage.metrics import variation_of_information

    t, p = _masks(true_labels, pred_labels)
    h_pred_given_true, h_true_given_pred = variation_of_information(
        t.astype(np.int64), p.astype(np.int64), ignore_labels=ignore_labels)
    return SplitMerge(float(h_pred_given_true), float(h_true_given_pred))


class ObjectMatch(NamedTuple):
    """One-to-one matching of predicted to true objects (instances) at an IoU threshold."""

    tp: int
    fp: int
    fn: int
    mean_iou: float  # mean IoU of the matched pairs (NaN when none)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 1.0


def match_objects(true_labels, pred_labels, iou_threshold: float = 0.5) -> ObjectMatch:
    """Match the objects of two instance label images (0 = background) one to one.

    Pairs are the overlapping objects whose IoU exceeds ``iou_threshold``; with a threshold of at least
    0.5 each object can have at most one such partner, so the matching is unique (the usual object-level
    F1 of instance segmentation, e.g. the 2018 Data Science Bowl).

    Parameters
    ----------
    true_labels, pred_labels : array_like of int, same shape
    iou_threshold : float in [0.5, 1)

    Returns
    -------
    ObjectMatch
        Counts of true positives, false positives (unmatched predictions), false negatives (missed true
        objects) and the mean IoU of the matches; ``precision``, ``recall`` and ``f1`` as properties.

    Examples
    --------
    >>> t = np.array([[1, 1, 0, 2, 2]]); p = np.array([[3, 3, 0, 0, 4]])
    >>> m = match_objects(t, p)
    >>> m.tp, m.fp, m.fn
    (1, 1, 1)
    """
    if not 0.5 <= iou_threshold < 1:
        raise InputError(f"iou_threshold must be in [0.5, 1), got {iou_threshold}")
    t, p = _masks(true_labels, pred_labels)
    t, p = t.astype(np.int64).ravel(), p.astype(np.int64).ravel()
    tl, t_inv = np.unique(t, return_inverse=True)
    pl, p_inv = np.unique(p, return_inverse=True)
    nt, np_ = len(tl), len(pl)
    inter = np.bincount(t_inv * np_ + p_inv, minlength=nt * np_).reshape(nt, np_).astype(np.float64)
    at, ap = inter.sum(1), inter.sum(0)
    union = at[:, None] + ap[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.where(union > 0, inter / union, 0.0)
    j[tl == 0, :] = 0
    j[:, pl == 0] = 0
    hit = j > iou_threshold
    n_true, n_pred = int((tl != 0).sum()), int((pl != 0).sum())
    tp = int(hit.sum())
    return ObjectMatch(tp, n_pred - tp, n_true - tp, float(j[hit].mean()) if tp else float("nan"))
