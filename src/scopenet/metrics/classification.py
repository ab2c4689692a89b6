"""Classification metrics: confusion matrices, per-class scores, ROC AUC, multi-label and calibration.

Thin, typed wrappers around scikit-learn where it has the metric, plus reliability curves and the
expected calibration error for soft (probabilistic) labels, e.g. crowd-vote fractions for STM tip
states.

Examples
--------
>>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], n_classes=3)
array([[1, 0, 0],
       [0, 1, 1],
       [0, 0, 1]])
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scopenet.errors import InputError

__all__ = ["confusion_matrix", "precision_recall_f1", "ClassScores", "roc_auc",
           "multilabel_confusion_matrix", "multilabel_precision_recall_f1", "f1_optimal_thresholds",
           "reliability_curve",
           "ReliabilityCurve", "expected_calibration_error"]


def _labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape:
        raise InputError(f"true and predicted labels differ in shape: {t.shape} vs {p.shape}")
    if t.size == 0:
        raise InputError("no labels given")
    return t, p


def confusion_matrix(y_true, y_pred, n_classes: int | None = None, labels=None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = number of samples of true class i predicted as class j.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N,)
        Class labels.
    n_classes : int, optional
        Integer classes ``0 .. n_classes - 1`` (rows/columns for absent classes are kept).
    labels : sequence, optional
        Explicit class order (instead of ``n_classes``); default the sorted union of labels.

    Returns
    -------
    ndarray of int, shape (K, K)
    """
    from sklearn.metrics import confusion_matrix as _cm

    t, p = _labels(y_true, y_pred)
    if n_classes is not None:
        labels = np.arange(int(n_classes))
    return _cm(t, p, labels=labels)


class ClassScores(NamedTuple):
    """Per-class precision, recall, F1 and support (arrays of shape (K,)) and the class labels."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    labels: np.ndarray


def precision_recall_f1(y_true, y_pred, n_classes: int | None = None, labels=None) -> ClassScores:
    """Per-class precision, recall and F1 (0 where undefined, e.g. a class never predicted).

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N,)
    n_classes, labels
        As for :func:`confusion_matrix`.

    Returns
    -------
    ClassScores
        Macro averages are ``scores.f1.mean()`` etc.
    """
    from sklearn.metrics import precision_recall_fscore_support

    t, p = _labels(y_true, y_pred)
    if n_classes is not None:
        labels = np.arange(int(n_classes))
    if labels is None:
        labels = np.unique(np.concatenate([t.ravel(), p.ravel()]))
    prec, rec, f1, sup = precision_recall_fscore_support(t, p, labels=labels, zero_division=0)
    return ClassScores(prec, rec, f1, sup, np.asarray(labels))


def roc_auc(y_true, y_score, average: str | None = "macro"):
    """Area under the ROC curve, binary or multi-label.

    Parameters
    ----------
    y_true : array_like, shape (N,) of {0, 1} or (N, K) indicator matrix
    y_score : array_like, same shape
        Scores or probabilities of the positive class (of each label).
    average : {"macro", "micro", "weighted", None}
        Multi-label averaging; None returns the per-label AUCs (shape (K,)).

    Returns
    -------
    float, or ndarray of shape (K,) for ``average=None``

    Raises
    ------
    InputError
        A label column has only one class (AUC undefined).
    """
    from sklearn.metrics import roc_auc_score

    t = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if t.shape != s.shape:
        raise InputError(f"labels and scores differ in shape: {t.shape} vs {s.shape}")
    cols = t.reshape(len(t), -1)
    for k in range(cols.shape[1]):
        if len(np.unique(cols[:, k])) < 2:
            raise InputError(f"ROC AUC is undefined: label column {k} has only one class")
    res = roc_auc_score(t, s, average=average)
    return float(res) if np.ndim(res) == 0 else np.asarray(res)


def _binarise(y_pred, threshold) -> np.ndarray:
    p = np.asarray(y_pred)
    if p.dtype.kind == "f":
        return (p >= threshold).astype(int)
    return p.astype(int)


def multilabel_confusion_matrix(y_true, y_pred, threshold=0.5) -> np.ndarray:
    """One 2x2 confusion matrix per label, ``[[TN, FP], [FN, TP]]``, shape (K, 2, 2).

    ``y_pred`` may be scores/probabilities (floats, binarised at ``threshold``: one value or one per
    label) or 0/1 labels.
    """
    from sklearn.metrics import multilabel_confusion_matrix as _mcm

    t, p = _labels(y_true, y_pred)
    if t.ndim != 2:
        raise InputError(f"multi-label metrics need (N, K) indicator arrays, got shape {t.shape}")
    return _mcm(t.astype(int), _binarise(p, threshold))


def multilabel_precision_recall_f1(y_true, y_pred, threshold=0.5) -> ClassScores:
    """Per-label precision, recall, F1 and support for (N, K) indicator arrays.

    ``y_pred`` may be probabilities (binarised at ``threshold``: one value or one per label) or 0/1 labels.
    """
    from sklearn.metrics import precision_recall_fscore_support

    t, p = _labels(y_true, y_pred)
    if t.ndim != 2:
        raise InputError(f"multi-label metrics need (N, K) indicator arrays, got shape {t.shape}")
    b, t = _binarise(p, threshold), t.astype(int)
    # one binary problem per label (a single-column indicator would otherwise be read as two classes)
    per = [precision_recall_fscore_support(t[:, k], b[:, k], average="binary", zero_division=0)[:3]
           for k in range(t.shape[1])]
    prec, rec, f1 = (np.array(v, float) for v in zip(*per))
    return ClassScores(prec, rec, f1, t.sum(0), np.arange(t.shape[1]))


def f1_optimal_thresholds(y_true, y_prob) -> np.ndarray:
    """Per-label decision thresholds that maximise F1 on ``(N, K)`` indicators and probabilities.

    Choose them on held-out (e.g. out-of-fold) predictions, never on the data a model was trained on.
    A label with a single class in ``y_true`` gets 0.5. Returns an array of K thresholds: predict the
    label where ``y_prob >= threshold``.
    """
    from sklearn.metrics import precision_recall_curve

    t, p = _labels(y_true, y_prob)
    if t.ndim != 2:
        raise InputError(f"multi-label thresholds need (N, K) arrays, got shape {t.shape}")
    out = np.full(t.shape[1], 0.5)
    for k in range(t.shape[1]):
        if len(np.unique(t[:, k])) < 2:
            continue
        prec, rec, thr = precision_recall_curve(t[:, k].astype(int), p[:, k])
        f1 = 2 * prec[:-1] * rec[:-1] / np.clip(prec[:-1] + rec[:-1], 1e-12, None)
        out[k] = float(thr[int(np.argmax(f1))])
    return out


class ReliabilityCurve(NamedTuple):
    """Per-bin mean predicted probability, observed frequency and count (NaN for empty bins)."""

    confidence: np.ndarray
    frequency: np.ndarray
    count: np.ndarray
    edges: np.ndarray


def _probs(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise InputError(f"labels and probabilities differ in size: {t.size} vs {p.size}")
    if t.size == 0:
        raise InputError("no labels given")
    if np.any((p < 0) | (p > 1)) or np.any((t < 0) | (t > 1)) or not np.all(np.isfinite(p + t)):
        raise InputError("calibration needs probabilities and (soft) labels in [0, 1]")
    return t, p


def reliability_curve(y_true, y_prob, n_bins: int = 10) -> ReliabilityCurve:
    """Reliability diagram data for binary or soft labels.

    Parameters
    ----------
    y_true : array_like
        Labels in [0, 1]: hard 0/1 labels or soft labels (e.g. the fraction of annotators who
        chose the positive class). Multi-label (N, K) arrays are pooled over labels.
    y_prob : array_like, same shape
        Predicted probabilities in [0, 1].
    n_bins : int
        Equal-width probability bins on [0, 1] (the last bin includes 1).

    Returns
    -------
    ReliabilityCurve
        ``frequency`` is the mean (soft) label in each bin; a calibrated model has
        ``frequency == confidence``.
    """
    t, p = _probs(y_true, y_prob)
    if n_bins < 1:
        raise InputError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=p, minlength=n_bins) / count
        freq = np.bincount(idx, weights=t, minlength=n_bins) / count
    return ReliabilityCurve(conf, freq, count, edges)


def expected_calibration_error(y_true, y_prob, n_bins: int = 10) -> float:
    """Expected calibration error ``sum_b (n_b / N) |frequency_b - confidence_b|``.

    Same inputs as :func:`reliability_curve` (hard or soft labels in [0, 1]); 0 for a perfectly
    calibrated model, at most 1.
    """
    curve = reliability_curve(y_true, y_prob, n_bins)
    ok = curve.count > 0
    w = curve.count[ok] / curve.count.sum()
    return float(np.sum(w * np.abs(curve.frequency[ok] - curve.confidence[ok])))
