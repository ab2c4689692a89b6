"""Aggregate crowd classifications to per-image scores, and build training sets from them.

The scheme of Gordon & Landon (Report §4.3-4.4):

* per image and category the **mean score** ``x`` in [0, 1]: the fraction of the image's
  classifications that ticked the category;
* the **agreement** ``2 |x - 0.5|`` (1: everyone agreed, 0: a 50/50 split);
* the image's **mean agreement** over its categories, and the **count** of classifications;
* images whose mean agreement is below 0.40 are dropped.

The score table has the columns of ``gordon-hsi/labels.csv``: ``name``, ``n_classifications``,
``mean_<key>``..., ``agree_<key>``..., ``agree_mean``, where ``<key>`` is :func:`~scopenet.label.db.slug`
of the category name (``"Bad/Blurry"`` -> ``bad_blurry``).

Three ways to turn scores into training targets (:func:`training_set`):

``"soft"`` (recommended)
    one sample per image, target = the mean scores (use with BCE on sigmoid outputs).
``"repeat"``
    per image and category ``ceil(x * max_weight)`` copies of the image with a one-hot target for
    that category (the report's example: max weight 4, x = 0.4 -> 2 copies, x = 0.8 -> 4 copies).
``"balanced"``
    as ``"repeat"`` with every category's copies multiplied by ``f_max / f_c`` (``f`` the category's
    mean score over the set), so rare categories are "over-balanced" and a model cannot win by
    predicting the prior (about 80% Bad/Blurry in the study).

:func:`class_weights` and :func:`pos_weight` give per-category loss weights for re-balancing soft
targets instead of repeating images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from ...errors import InputError
from . import DEFAULT_CATEGORIES, slug

#: the study's threshold on an image's mean agreement
MIN_AGREEMENT = 0.40


def agreement(mean) -> np.ndarray:
    """Agreement ``2 |x - 0.5|`` of mean scores ``x`` in [0, 1] (any shape)."""
    return 2.0 * np.abs(np.asarray(mean, dtype=np.float64) - 0.5)


def category_keys(scores: pd.DataFrame) -> list[str]:
    """The category keys of a score table, in column order (from its ``mean_*`` columns)."""
    keys = [c[len("mean_"):] for c in scores.columns if c.startswith("mean_")]
    if not keys:
        raise InputError("the score table has no mean_<category> columns")
    return keys


def _event_columns(events: pd.DataFrame, categories: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(column in events, key) for every category."""
    if categories is None:
        present = [c for c in DEFAULT_CATEGORIES if c in events.columns or slug(c) in events.columns]
        if not present:
            raise InputError("cannot tell the category columns of the events; pass categories=[...]")
        categories = present
    cols, keys = [], []
    for c in categories:
        key = slug(c)
        if c in events.columns:
            cols.append(c)
        elif key in events.columns:
            cols.append(key)
        else:
            raise InputError(f"the events have no column for category {c!r} (looked for {c!r} and {key!r}); "
                             f"columns: {', '.join(map(str, events.columns))}")
        keys.append(key)
    if len(set(keys)) != len(keys):
        raise InputError(f"categories {list(categories)} map to duplicate keys {keys}")
    return cols, keys


def aggregate_events(events: pd.DataFrame, categories: Sequence[str] | None = None,
                     image_col: str = "image") -> pd.DataFrame:
    """Mean scores, agreements and counts per image from one row per classification event.

    Parameters
    ----------
    events : DataFrame
        One row per classification: ``image_col`` (the image name or id) and one column per category
        (its display name or key) holding 0/1 or booleans.
    categories : sequence of str, optional
        Category names in output order; default the six study categories found in ``events``.
    image_col : str
        Column naming the image.

    Returns
    -------
    DataFrame
        One row per image, in order of first appearance: ``name``, ``n_classifications``,
        ``mean_<key>``, ``agree_<key>`` for every category, and ``agree_mean``.
    """
    if image_col not in events.columns:
        raise InputError(f"the events have no {image_col!r} column")
    cols, keys = _event_columns(events, categories)
    votes = events[cols].astype(float)
    if votes.isna().any().any():
        raise InputError("the events hold missing category answers")
    if ((votes != 0) & (votes != 1)).any().any():
        raise InputError("category answers must be 0/1 or booleans")
    votes.columns = keys
    votes.insert(0, "name", events[image_col].to_numpy())
    g = votes.groupby("name", sort=False)
    means = g[keys].mean()
    out = pd.DataFrame({"name": means.index, "n_classifications": g.size().loc[means.index].to_numpy()})
    m = means.to_numpy(dtype=np.float64)
    a = agreement(m)
    for j, k in enumerate(keys):
        out[f"mean_{k}"] = m[:, j]
    for j, k in enumerate(keys):
        out[f"agree_{k}"] = a[:, j]
    out["agree_mean"] = a.mean(axis=1) if len(keys) else np.nan
    return out.reset_index(drop=True)


def rescore(scores: pd.DataFrame) -> pd.DataFrame:
    """Recompute ``agree_*`` and ``agree_mean`` of a score table from its ``mean_*`` columns."""
    keys = category_keys(scores)
    out = scores.copy()
    a = agreement(out[[f"mean_{k}" for k in keys]].to_numpy())
    for j, k in enumerate(keys):
        out[f"agree_{k}"] = a[:, j]
    out["agree_mean"] = a.mean(axis=1)
    return out


def filter_by_agreement(scores: pd.DataFrame, min_agreement: float = MIN_AGREEMENT,
                        min_classifications: int = 1) -> pd.DataFrame:
    """Keep images whose mean agreement is at least ``min_agreement`` (0.40 in the study) and that
    have at least ``min_classifications`` classifications."""
    if not 0.0 <= min_agreement <= 1.0:
        raise InputError(f"min_agreement must lie in [0, 1], got {min_agreement}")
    keep = (scores["agree_mean"] >= min_agreement - 1e-12) & (scores["n_classifications"] >= min_classifications)
    return scores[keep].reset_index(drop=True)


# ------------------------------------------------------------------------------ training sets


@dataclass
class TrainingSet:
    """Samples of a training set made from aggregated scores.

    Attributes
    ----------
    index : ndarray of int, shape (m,)
        Row of the score table (the image) of each sample; an image can occur several times.
    names : ndarray of str, shape (m,)
        The image name of each sample.
    targets : ndarray of float32, shape (m, c)
        Target per sample and category, in [0, 1].
    weights : ndarray of float32, shape (m,)
        Sample weight for the loss (1 unless re-balanced).
    categories : list of str
        The category keys, in target column order.
    """

    index: np.ndarray
    names: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    categories: list[str]

    def __len__(self) -> int:
        return len(self.index)


def category_frequency(targets: np.ndarray) -> np.ndarray:
    """Mean target per category, shape (c,): the (soft) fraction of images in each category."""
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2 or len(t) == 0:
        raise InputError(f"targets must have shape (n, c) with n > 0, got {t.shape}")
    return t.mean(axis=0)


def class_weights(targets: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-category weights inversely proportional to category frequency, shape (c,).

    ``w_c = mean(f) / f_c`` (mean over the categories that occur): a category of average frequency
    gets 1, one ten times rarer gets ten times more. Categories nobody ticked get weight 0.
    """
    f = category_frequency(targets)
    present = f > eps
    ref = f[present].mean() if present.any() else 0.0
    w = np.where(present, ref / np.maximum(f, eps), 0.0)
    return w.astype(np.float32)


def pos_weight(targets: np.ndarray, eps: float = 1e-6, max_weight: float = 100.0) -> np.ndarray:
    """``(1 - f_c) / f_c`` per category, shape (c,): the positive-class weight for
    ``BCEWithLogitsLoss(pos_weight=...)`` that makes positives and negatives weigh the same."""
    f = category_frequency(targets)
    w = (1.0 - f) / np.maximum(f, eps)
    return np.clip(w, 0.0, max_weight).astype(np.float32)


def repeat_counts(means: np.ndarray, max_weight: int = 4) -> np.ndarray:
    """Copies per image and category, ``ceil(x * max_weight)``, shape like ``means`` (int)."""
    if max_weight < 1:
        raise InputError(f"max_weight must be >= 1, got {max_weight}")
    m = np.asarray(means, dtype=np.float64)
    if np.any((m < 0) | (m > 1)) or not np.isfinite(m).all():
        raise InputError("mean scores must lie in [0, 1]")
    return np.ceil(m * max_weight - 1e-9).clip(0).astype(int)


def training_set(scores: pd.DataFrame, method: Literal["soft", "repeat", "balanced"] = "soft",
                 max_weight: int = 4, min_agreement: float | None = MIN_AGREEMENT,
                 max_balance: float = 10.0) -> TrainingSet:
    """Training samples from a score table (see the module docstring for the methods).

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`aggregate_events` / :func:`aggregate_project`, or ``labels.csv``.
    method : {"soft", "repeat", "balanced"}
    max_weight : int
        Copies of an image for a category with mean score 1 (``"repeat"``, ``"balanced"``).
    min_agreement : float or None
        Drop images below this mean agreement first (None keeps all).
    max_balance : float
        Upper bound of the over-balancing factor ``f_max / f_c`` (``"balanced"``).

    Returns
    -------
    TrainingSet
    """
    if min_agreement is not None:
        scores = filter_by_agreement(scores, min_agreement)
    keys = category_keys(scores)
    means = scores[[f"mean_{k}" for k in keys]].to_numpy(dtype=np.float64)
    names = scores["name"].astype(str).to_numpy()
    n, c = means.shape
    if n == 0:
        raise InputError("no images left to build a training set from")
    if method == "soft":
        idx = np.arange(n)
        return TrainingSet(idx, names[idx], means.astype(np.float32), np.ones(n, np.float32), keys)
    if method not in ("repeat", "balanced"):
        raise InputError(f"unknown method {method!r}; use 'soft', 'repeat' or 'balanced'")
    counts = repeat_counts(means, max_weight)
    if method == "balanced":
        f = means.mean(axis=0)
        factor = np.where(f > 0, np.clip(f.max() / np.maximum(f, 1e-12), 1.0, max_balance), 0.0)
        counts = np.ceil(counts * factor[None, :] - 1e-9).astype(int)
    rows = np.repeat(np.arange(n), counts.sum(axis=1))
    cats = np.concatenate([np.repeat(np.arange(c), counts[i]) for i in range(n)]) if n else np.zeros(0, int)
    targets = np.zeros((len(rows), c), np.float32)
    targets[np.arange(len(rows)), cats] = 1.0
    return TrainingSet(rows, names[rows], targets, np.ones(len(rows), np.float32), keys)
