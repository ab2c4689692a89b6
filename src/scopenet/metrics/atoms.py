"""Atom-position metrics: optimal one-to-one matching within a tolerance.

Predicted and true positions are paired by the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`) so that the number of pairs closer than
``tolerance`` is maximal and, among such pairings, their summed distance is minimal. Matched
pairs are true positives; unmatched predictions are false positives, unmatched true atoms false
negatives.

Examples
--------
>>> m = match_atoms([[0, 0], [10, 10]], [[0.5, 0], [30, 30]], tolerance=2.0)
>>> m.tp, m.fp, m.fn, m.precision, m.rms_px
(1, 1, 1, 0.5, 0.5)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scopenet.errors import InputError

__all__ = ["AtomMatch", "fraction_within_sigma", "match_atoms"]


@dataclass(frozen=True)
class AtomMatch:
    """Result of :func:`match_atoms`.

    Attributes
    ----------
    pairs : ndarray of int, shape (M, 2)
        Indices ``(true_index, pred_index)`` of the matched pairs.
    distances_px : ndarray, shape (M,)
        Distance of each pair in pixels.
    n_true, n_pred : int
        Numbers of true and predicted atoms.
    pixel_size : float or None
        Metres per pixel, if given.
    """

    pairs: np.ndarray
    distances_px: np.ndarray
    n_true: int
    n_pred: int
    pixel_size: float | None = None

    @property
    def tp(self) -> int:
        """True positives (matched pairs)."""
        return int(len(self.pairs))

    @property
    def fp(self) -> int:
        """False positives (unmatched predictions)."""
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        """False negatives (unmatched true atoms)."""
        return self.n_true - self.tp

    @property
    def precision(self) -> float:
        """``tp / n_pred``; 1.0 when nothing was predicted (no false positive was made)."""
        return 1.0 if self.n_pred == 0 else self.tp / self.n_pred

    @property
    def recall(self) -> float:
        """``tp / n_true``; 1.0 when there were no atoms (none was missed)."""
        return 1.0 if self.n_true == 0 else self.tp / self.n_true

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def rms_px(self) -> float:
        """RMS distance of the matched pairs in pixels (NaN without matches)."""
        if self.tp == 0:
            return float("nan")
        return float(np.sqrt(np.mean(self.distances_px ** 2)))

    @property
    def rms_m(self) -> float | None:
        """RMS distance in metres (``rms_px * pixel_size``), None without a pixel size."""
        return None if self.pixel_size is None else self.rms_px * self.pixel_size

    def as_dict(self) -> dict:
        """Summary numbers (for tables and model cards)."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1, "rms_px": self.rms_px, "rms_m": self.rms_m}


def _points(xy, name: str) -> np.ndarray:
    a = np.asarray(xy, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 2))
    if a.ndim != 2 or a.shape[1] not in (2, 3):
        raise InputError(f"{name} positions must have shape (N, 2) or (N, 3), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{name} positions contain NaN or inf")
    return a


def match_atoms(true_xy, pred_xy, tolerance: float, pixel_size: float | None = None) -> AtomMatch:
    """Match predicted atom positions to true ones within ``tolerance`` pixels.

    Parameters
    ----------
    true_xy, pred_xy : array_like, shape (N, 2) and (M, 2)
        Positions in pixels (any consistent axis order; 3-D positions also work).
    tolerance : float
        Largest distance (px) at which a prediction can count as a true atom (e.g. half the
        smallest interatomic distance).
    pixel_size : float, optional
        Metres per pixel, for :attr:`AtomMatch.rms_m`.

    Returns
    -------
    AtomMatch
    """
    from scipy.spatial.distance import cdist

    if not (np.isfinite(tolerance) and tolerance > 0):
        raise InputError(f"tolerance must be finite and > 0, got {tolerance!r}")
    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"pixel_size must be finite and > 0, got {pixel_size!r}")
    t = _points(true_xy, "true")
    p = _points(pred_xy, "predicted")
    empty = AtomMatch(np.zeros((0, 2), dtype=np.int64), np.zeros(0), len(t), len(p), pixel_size)
    if len(t) == 0 or len(p) == 0:
        return empty
    if t.shape[1] != p.shape[1]:
        raise InputError(f"true and predicted positions differ in dimension: {t.shape[1]} vs {p.shape[1]}")
    if len(t) * len(p) > 4_000_000:  # large sets: solve each connected group of candidate pairs alone
        return _match_sparse(t, p, tolerance, pixel_size, empty)
    d = cdist(t, p)
    rows, cols = _assign(d, tolerance)
    if len(rows) == 0:
        return empty
    return AtomMatch(np.stack([rows, cols], axis=1).astype(np.int64), d[rows, cols], len(t), len(p),
                     pixel_size)


def _assign(d: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal pairs (rows, cols) of a distance matrix within ``tolerance``."""
    from scipy.optimize import linear_sum_assignment

    ok = d <= tolerance
    if not ok.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # A forbidden pair costs more than any complete set of allowed pairs, so the assignment first
    # maximises the number of allowed pairs, then minimises their summed distance.
    big = tolerance * (min(d.shape) + 1) + 1.0
    rows, cols = linear_sum_assignment(np.where(ok, d, big))
    keep = ok[rows, cols]
    return rows[keep], cols[keep]


def _match_sparse(t: np.ndarray, p: np.ndarray, tolerance: float, pixel_size, empty) -> AtomMatch:
    """:func:`match_atoms` for large sets: the same optimum, found per connected component of the graph of
    pairs closer than ``tolerance`` (components are independent), in memory linear in the pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    sp = cKDTree(t).sparse_distance_matrix(cKDTree(p), tolerance, output_type="coo_matrix")
    if sp.nnz == 0:
        return empty
    nt, npred = len(t), len(p)
    graph = coo_matrix((np.ones(sp.nnz), (sp.row, sp.col + nt)), shape=(nt + npred, nt + npred))
    _, lab = connected_components(graph, directed=False)
    comp = lab[sp.row]
    order = np.argsort(comp, kind="stable")
    bounds = np.flatnonzero(np.diff(comp[order])) + 1
    rows_all, cols_all = [], []
    for idx in np.split(order, bounds):
        ti, pi = np.unique(sp.row[idx]), np.unique(sp.col[idx])
        d = np.linalg.norm(t[ti][:, None, :] - p[pi][None, :, :], axis=-1)
        r, c = _assign(d, tolerance)
        rows_all.append(ti[r])
        cols_all.append(pi[c])
    rows, cols = np.concatenate(rows_all), np.concatenate(cols_all)
    dist = np.linalg.norm(t[rows] - p[cols], axis=1)
    return AtomMatch(np.stack([rows, cols], axis=1).astype(np.int64), dist, len(t), len(p), pixel_size)


def fraction_within_sigma(match: AtomMatch, true_xy, pred_xy, sigma) -> float:
    """Fraction of per-axis errors of the matched pairs no larger than the predicted 1-sigma.

    For a calibrated Gaussian uncertainty about 0.683 (each axis's error is compared with its own
    ``sigma``; the distance in 2-D would give 0.393 instead).

    Parameters
    ----------
    match : AtomMatch
        From :func:`match_atoms` on the same ``true_xy`` and ``pred_xy``.
    true_xy, pred_xy : array_like, shape (N, 2) and (M, 2)
    sigma : array_like, shape (M,) or (M, 2)
        Predicted standard deviation of each prediction (one for both axes, or one per axis), px.

    Returns
    -------
    float
        NaN without matches.

    Examples
    --------
    >>> m = match_atoms([[0, 0], [10, 10]], [[0.5, 0], [10, 10.1]], tolerance=2.0)
    >>> fraction_within_sigma(m, [[0, 0], [10, 10]], [[0.5, 0], [10, 10.1]], [0.2, 0.2])
    0.75
    """
    if match.tp == 0:
        return float("nan")
    t = _points(true_xy, "true")
    p = _points(pred_xy, "predicted")
    s = np.asarray(sigma, np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if len(s) != len(p):
        raise InputError(f"sigma has {len(s)} rows for {len(p)} predictions")
    err = np.abs(t[match.pairs[:, 0]] - p[match.pairs[:, 1]])
    return float(np.mean(err <= s[match.pairs[:, 1]]))
