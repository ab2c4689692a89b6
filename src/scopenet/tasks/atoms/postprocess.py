"""From a heatmap and an image to an atom table: peaks, sub-pixel refinement, classes, uncertainty,
neighbour distances, strain and an out-of-distribution flag (pure numpy/scipy; no torch).

Coordinates are ``(row, col)`` px inside this module (pixel centres at integers); the public table of
:func:`~scopenet.tasks.atoms.find_atoms` names them ``y`` and ``x``.
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import InputError

__all__ = ["normalise", "heatmap_peaks", "merge_close", "atom_table", "estimate_spacing", "refine_gaussian",
           "refine_com", "refine_heatmap", "intensity_classes", "structured_sd", "counts_like",
           "nearest_neighbour_distances", "local_strain", "strain_map", "default_radius", "lattice_prediction",
           "lattice_prior"]


def normalise(img: np.ndarray) -> np.ndarray:
    """Scale an image to about [0, 1] by its 0.5th and 99.9th percentiles (robust to hot pixels).

    Returns
    -------
    ndarray, float32, same shape
    """
    a = np.asarray(img, np.float32)
    lo, hi = np.percentile(a, [0.5, 99.9])
    if not hi > lo:
        hi = lo + 1.0
    return ((a - lo) / (hi - lo)).astype(np.float32)


def heatmap_peaks(heat: np.ndarray, threshold: float = 0.4, min_distance: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a heatmap above ``threshold``, at least ``min_distance`` px apart.

    Returns
    -------
    peaks : ndarray of int, shape (k, 2)
        ``(row, col)`` px.
    values : ndarray, shape (k,)
        The heatmap at each peak (the atoms' confidence).
    """
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    h = np.asarray(heat, np.float32)
    r = int(min_distance)
    half = max(1, int(r / np.sqrt(2)))  # the square inscribed in the disk: a fast separable filter
    mx = ndi.maximum_filter(h, size=2 * half + 1, mode="nearest")
    rc = np.argwhere((h >= mx) & (h > threshold))
    if len(rc) == 0:
        return np.zeros((0, 2), int), np.zeros(0, np.float32)
    pk = rc
    pairs = cKDTree(rc).query_pairs(1.01, output_type="ndarray")  # side by side (4-connected): a plateau
    if len(pairs):  # plateaus give one peak (their centre of mass, rounded)
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n = len(rc)
        _, lab = connected_components(coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)),
                                      directed=False)
        cnt = np.bincount(lab)
        com = np.stack([np.bincount(lab, rc[:, 0]), np.bincount(lab, rc[:, 1])], 1) / cnt[:, None]
        pk = np.rint(com).astype(int)
    pk[:, 0] = np.clip(pk[:, 0], 0, h.shape[0] - 1)
    pk[:, 1] = np.clip(pk[:, 1], 0, h.shape[1] - 1)
    val = h[pk[:, 0], pk[:, 1]]
    if r > half:  # the Euclidean separation: of two peaks closer than min_distance, the higher stays
        keep = merge_close(pk, val, r - 1e-9)
        pk, val = pk[keep], val[keep]
    return pk, val


def lattice_supported(peaks: np.ndarray, values: np.ndarray, threshold: float, min_confident: int = 8,
                      min_partners: int = 2, reach: float | None = None,
                      reference: np.ndarray | None = None) -> np.ndarray:
    """Which peaks the lattice of the confident ones supports: ``(k,)`` bool.

    A peak above ``threshold`` is confident (True). A fainter one is True only when other peaks (of any
    value) lie one lattice vector away in at least ``min_partners`` of the four directions ``+-a1``, ``+-a2``
    (the confident peaks' two most frequent neighbour vectors, :func:`_reference_vectors`), each within
    ``1.5 + 0.05 |a|`` px (the rounding of two integer peaks and a few % of lattice distortion): a column
    of a faint sublattice or a faint column of the lattice repeats (an edge column still has three of
    the four), a bump of an amorphous support does not. With fewer than ``min_confident`` confident peaks,
    or no clear lattice, the faint peaks are all False. With ``reach``, a faint peak farther than ``reach`` x
    the confident peaks' nearest-neighbour distance from every confident peak is False (support bumps around a
    particle, which support each other by chance). ``reference`` gives the two lattice vectors ``(2, 2)`` instead.

    Parameters
    ----------
    peaks : ndarray, shape (k, 2)
        ``(row, col)`` px.
    values : ndarray, shape (k,)
        The heatmap at each peak.
    threshold : float
        The heatmap value above which a peak needs no support.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(peaks, float).reshape(-1, 2)
    v = np.asarray(values, float).reshape(-1)
    ok = v > threshold
    faint = np.flatnonzero(~ok)
    if len(faint) == 0 or ok.sum() < max(min_confident, 3):
        return ok
    nn = float(np.nanmedian(nearest_neighbour_distances(p[ok])))
    ref = reference if reference is not None else (_reference_vectors(p[ok], nn) if np.isfinite(nn) and nn > 0
                                                   else None)
    if ref is None:
        return ok
    tree = cKDTree(p)
    partners = np.zeros(len(faint), int)
    for a in ref:
        tol = 1.5 + 0.05 * float(np.hypot(*a))
        for sign in (1.0, -1.0):
            d, _ = tree.query(p[faint] + sign * a, 1)
            partners += d <= tol
    good = partners >= min_partners
    if reach is not None:
        d, _ = cKDTree(p[ok]).query(p[faint], 1)
        good &= d <= reach * nn
    ok[faint[good]] = True
    return ok


# ------------------------------------------------------------------------------------ lattice prior
def lattice_prediction(positions: np.ndarray, classes: np.ndarray | None = None, sigma: np.ndarray | None = None,
                       reach: float = 1.6, tolerance: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the local lattice puts each atom, from its neighbours alone (leave-one-out).

    For every atom ``i`` and every pair of neighbours ``j``, ``l`` of the same class on either side of it
    (``p_l`` within ``tolerance`` x the median nearest-neighbour distance of the mirror point
    ``2 p_i - p_j``; the pair's span ``|p_j - p_l| / 2`` at most ``reach`` x the shortest such span of atom
    ``i``), the midpoint ``(p_j + p_l) / 2`` predicts ``p_i``: exactly for any affine (uniformly strained,
    rotated, sheared) lattice, and with an error of half the displacement field's second derivative times
    the squared span otherwise. The midpoints are averaged with inverse-variance weights (the neighbours'
    ``sigma``; equal weights without it).

    Parameters
    ----------
    positions : ndarray, shape (k, 2)
        ``(row, col)`` px.
    classes : ndarray of int, shape (k,), optional
        Column classes (sublattices / species): only same-class neighbours predict an atom, so a
        sublattice shifted against another keeps its shift.
    sigma : ndarray, shape (k,), optional
        Per-axis position uncertainty of each atom, px (for the weights and the prediction's variance).
    reach, tolerance : float
        See above.

    Returns
    -------
    prediction : ndarray, shape (k, 2)
        NaN where no pair of neighbours brackets the atom (the border, isolated atoms).
    variance : ndarray, shape (k,)
        Per-axis variance of the prediction from the neighbours' ``sigma``, px^2 (NaN without a prediction).
    pairs : ndarray of int, shape (k,)
        Number of neighbour pairs used.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    k = len(p)
    pred, var, npairs = np.full((k, 2), np.nan), np.full(k, np.nan), np.zeros(k, int)
    if k < 3:
        return pred, var, npairs
    cls = np.zeros(k, int) if classes is None else np.asarray(classes).reshape(-1)
    s2 = np.ones(k) if sigma is None else np.asarray(sigma, float).reshape(-1) ** 2
    s2 = np.where(np.isfinite(s2) & (s2 > 0), s2, np.inf)
    nn = float(np.nanmedian(nearest_neighbour_distances(p)))
    if not np.isfinite(nn) or nn <= 0:
        return pred, var, npairs
    tree = cKDTree(p)
    kq = min(k, 25)
    dist, idx = tree.query(p, kq, distance_upper_bound=3.0 * nn)
    dist, idx = dist.reshape(k, -1)[:, 1:], idx.reshape(k, -1)[:, 1:]  # (k, K): the atom itself dropped
    have = idx < k
    jj = np.where(have, idx, 0)
    mirror = 2 * p[:, None, :] - p[jj]  # (k, K, 2)
    dm, ll = tree.query(mirror.reshape(-1, 2), 1)
    dm, ll = dm.reshape(jj.shape), ll.reshape(jj.shape)
    ll = np.where(ll < k, ll, 0)
    ok = have & (dm <= tolerance * nn) & (ll != np.arange(k)[:, None]) & (ll != jj)
    ok &= (cls[jj] == cls[:, None]) & (cls[ll] == cls[:, None]) & (jj < ll)  # each pair once
    span = np.where(ok, dist, np.inf)
    shortest = span.min(1)
    ok &= span <= reach * shortest[:, None]
    ok &= np.isfinite(s2[jj]) & np.isfinite(s2[ll])
    vt = np.where(ok, (s2[jj] + s2[ll]) / 4.0, np.inf)  # each midpoint's per-axis variance
    wt = np.where(ok, 1.0 / np.where(ok, vt, 1.0), 0.0)
    wsum = wt.sum(1)
    got = wsum > 0
    mid = (p[jj] + p[ll]) / 2.0
    pred[got] = (wt[got, :, None] * mid[got]).sum(1) / wsum[got, None]
    var[got] = 1.0 / wsum[got]
    npairs = ok.sum(1)
    return pred, var, npairs


def lattice_prior(positions: np.ndarray, sigma: np.ndarray, classes: np.ndarray | None = None,
                  neighbourhood: float = 2.5, gate: float = 3.0, reach: float = 1.6,
                  tolerance: float = 0.2) -> dict:
    """Combine each measured position with the local lattice's prediction of it (empirical Bayes).

    The measurement ``p_i`` (per-axis uncertainty ``s_i``) and the prediction of its same-class neighbours
    (:func:`lattice_prediction`, variance ``v_i``) are combined by inverse variance, where the
    prediction's variance also holds ``t_i^2``, the real per-column displacement from the local lattice
    that the data show: the mean excess of the squared residuals ``|p - prediction|^2 / 2`` over
    ``s^2 + v`` among the atoms within ``neighbourhood`` x the spacing (at least zero). So

    ``p_new = prediction + w (p - prediction)``, ``w = (v + t^2) / (s^2 + v + t^2)``,
    ``s_new = s sqrt(w)``:

    a regular lattice measured with much noise is pulled toward its neighbours (below the error of any fit
    of one column, e.g. on an amorphous support), while genuine displacements are kept: a uniform strain,
    rotation or shear, and a shift of a whole sublattice or region, are predicted by the neighbours
    themselves (the midpoint rule is exact for affine fields; only the same class predicts); displacements
    that vary from column to column raise ``t`` and so lower the pull; and an atom whose residual is beyond
    ``gate`` standard deviations (chi-squared with 2 degrees of freedom) is left as measured (a defect,
    a dopant's relaxation). What it cannot keep is a real displacement of a single column smaller than
    about ``gate`` x its uncertainty: it is shrunk toward the lattice like the noise is.

    Parameters
    ----------
    positions : ndarray, shape (k, 2)
        Measured ``(row, col)`` px.
    sigma : ndarray, shape (k,)
        Their calibrated per-axis 1-sigma uncertainty, px (atoms with a non-finite one are left alone and
        predict nothing).
    classes : ndarray of int, shape (k,), optional
        Column classes (:func:`intensity_classes`).
    neighbourhood, gate, reach, tolerance : float
        See above (``reach``, ``tolerance``: :func:`lattice_prediction`).

    Returns
    -------
    dict
        ``positions`` (k, 2), ``sigma`` (k,) (the combined per-axis uncertainty), ``weight`` (k,) the
        measurement's weight ``w`` (1: as measured), ``prediction`` (k, 2), ``displacement_sd`` (k,) ``t``, px.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    s = np.asarray(sigma, float).reshape(-1)
    k = len(p)
    out = {"positions": p.copy(), "sigma": s.copy(), "weight": np.ones(k), "prediction": np.full((k, 2), np.nan),
           "displacement_sd": np.full(k, np.nan)}
    if k < 3:
        return out
    pred, v, _ = lattice_prediction(p, classes, s, reach=reach, tolerance=tolerance)
    out["prediction"] = pred
    good = np.isfinite(pred[:, 0]) & np.isfinite(s) & (s > 0) & np.isfinite(v)
    if not good.any():
        return out
    r2 = np.where(good, ((p - pred) ** 2).sum(1) / 2.0, 0.0)  # per axis
    expect = np.where(good, s ** 2 + v, 0.0)
    nn = float(np.nanmedian(nearest_neighbour_distances(p)))
    cls = np.zeros(k, int) if classes is None else np.asarray(classes).reshape(-1)
    # the local excess of the residuals over their expected variance: the atom and its same-class
    # neighbours within ``neighbourhood`` spacings (at most 24)
    _, j = cKDTree(p).query(p, min(k, 25), distance_upper_bound=neighbourhood * nn)
    j = j.reshape(k, -1)
    use = j < k
    j = np.where(use, j, 0)
    use &= good[j] & (cls[j] == cls[:, None])
    cnt = use.sum(1)
    t2 = np.where(cnt > 0, (np.where(use, r2[j] - expect[j], 0.0)).sum(1) / np.maximum(cnt, 1), np.nan)
    t2 = np.where(good, np.maximum(t2, 0.0), np.nan)
    tot = np.where(good, s ** 2 + v + t2, np.inf)
    w = np.where(good, (v + t2) / tot, 1.0)
    w = np.where(good & (2.0 * r2 / tot > _chi2_2dof(gate)), 1.0, w)  # an outlier: kept as measured
    out["positions"] = np.where(good[:, None], pred + w[:, None] * (p - pred), p)
    out["sigma"] = np.where(good, s * np.sqrt(w), s)
    out["weight"] = w
    out["displacement_sd"] = np.sqrt(t2)
    return out


def _chi2_2dof(n_sigma: float) -> float:
    """The chi-squared (2 degrees of freedom) value with the two-sided tail of ``n_sigma`` of a normal."""
    from math import erfc, sqrt

    tail = erfc(n_sigma / sqrt(2.0))
    return float(-2.0 * np.log(max(tail, 1e-300)))


# ------------------------------------------------------------------------------------ patches
def default_radius(peaks: np.ndarray) -> float:
    """Refinement half-width, px: 0.45 x the median nearest-neighbour distance of ``peaks``, in [1.5, 12]."""
    nn = nearest_neighbour_distances(peaks)
    med = float(np.nanmedian(nn)) if np.isfinite(nn).any() else 8.0
    return float(np.clip(0.45 * med, 1.5, 12.0))


def _patches(img: np.ndarray, centres: np.ndarray, r: int, padded: tuple[np.ndarray, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k, P, P)`` windows of ``img`` around the integer ``centres`` (NaN outside the image), and the
    integer centres ``(k, 2)`` and offsets ``d`` (P,). ``padded`` = ``(img padded by R >= r with NaN, R)``
    saves padding again (and sets the windows' dtype). The windows are gathered from a strided view of
    the padded image (one copy, no index arrays)."""
    from numpy.lib.stride_tricks import sliding_window_view

    c = np.rint(np.asarray(centres, float)).astype(np.int64).reshape(-1, 2)
    h, w = img.shape
    c[:, 0] = np.clip(c[:, 0], 0, h - 1)
    c[:, 1] = np.clip(c[:, 1], 0, w - 1)
    if padded is None or padded[1] < r:
        padded = (np.pad(np.asarray(img, np.float64), r, mode="constant", constant_values=np.nan), r)
    pad, big = padded
    d = np.arange(-r, r + 1)
    view = sliding_window_view(pad, (2 * r + 1, 2 * r + 1))
    return view[c[:, 0] + big - r, c[:, 1] + big - r], c, d


# ----------------------------------------------------------------------------------- refinement
def refine_com(img: np.ndarray, peaks: np.ndarray, radius: float, iterations: int = 3) -> np.ndarray:
    """Centre-of-mass refinement: the intensity centroid (above the window's minimum) within ``radius`` px,
    re-centred ``iterations`` times.

    Parameters
    ----------
    img : ndarray (H, W)
        Bright atoms on a darker background.
    peaks : ndarray (k, 2)
        Starting ``(row, col)`` px.
    radius : float
        Window radius, px.

    Returns
    -------
    ndarray, float64, shape (k, 2)
    """
    pos = np.asarray(peaks, float).reshape(-1, 2).copy()
    if len(pos) == 0:
        return pos
    r = int(np.ceil(radius))
    for _ in range(max(1, iterations)):
        p, c, d = _patches(img, pos, r)
        dy, dx = d[:, None] + c[:, 0, None, None] - pos[:, 0, None, None], d[None, :] + c[:, 1, None, None] - pos[:, 1, None, None]
        inside = (dy ** 2 + dx ** 2 <= radius ** 2) & np.isfinite(p)
        q = np.where(inside, p, np.nan)
        q = q - np.nanmin(q.reshape(len(q), -1), axis=1)[:, None, None]
        q = np.where(inside, q, 0.0)
        s = q.sum((1, 2))
        ok = s > 0
        yy = c[:, 0, None, None] + d[:, None]
        xx = c[:, 1, None, None] + d[None, :]
        new = np.stack([(q * yy).sum((1, 2)), (q * xx).sum((1, 2))], 1) / np.where(ok, s, 1)[:, None]
        pos[ok] = new[ok]
    return pos


def refine_heatmap(heat: np.ndarray, peaks: np.ndarray, radius: float = 1.5) -> np.ndarray:
    """Centroid of the heatmap (above 0.5 x the peak) within ``radius`` px of each peak."""
    pos = np.asarray(peaks, float).reshape(-1, 2)
    if len(pos) == 0:
        return pos.copy()
    r = int(np.ceil(radius))
    p, c, d = _patches(heat, pos, r)
    inside = (d[:, None] ** 2 + d[None, :] ** 2 <= radius ** 2)[None] & np.isfinite(p)
    peak = np.where(inside, p, -np.inf).reshape(len(p), -1).max(1)
    q = np.where(inside, p - 0.5 * peak[:, None, None], 0.0).clip(0)
    s = q.sum((1, 2))
    off = np.stack([(q * d[:, None]).sum((1, 2)), (q * d[None, :]).sum((1, 2))], 1) / np.where(s > 0, s, 1)[:, None]
    return c + off


def _jacobian(g, a, y0, x0, s2, yy, xx, idx):
    """Columns ``idx`` of the Jacobian of the model with respect to (A, y0, x0, log s, b0, by, bx),
    ``(k, P*P, len(idx))``."""
    k = g.shape[0]
    ag = a * g / s2
    dy = yy - y0
    dx = xx - x0
    cols = {0: lambda: g, 1: lambda: ag * dy, 2: lambda: ag * dx, 3: lambda: ag * (dy * dy + dx * dx),
            4: lambda: np.ones_like(g), 5: lambda: np.broadcast_to(yy, g.shape), 6: lambda: np.broadcast_to(xx, g.shape)}
    jac = np.empty((k, g.shape[1] * g.shape[2], len(idx)), g.dtype)
    for j, i in enumerate(idx):
        jac[..., j] = cols[i]().reshape(k, -1)
    return jac


def _gauss_newton(p, yy, xx, wgt, theta, iters, free=None, fisher=True):
    """Vectorised Levenberg-Marquardt fit of ``A exp(-r^2/2s^2) + b0 + by*y + bx*x`` to patches ``p``.

    ``theta`` (k, 7) = (A, y0, x0, log s, b0, by, bx) in patch coordinates; ``wgt`` the pixel weights (0
    outside the window; inverse variances for a weighted fit). Parameters with ``free == 0`` stay fixed.
    The model and its Jacobian are evaluated in float32 (the normal equations are solved in float64).
    Returns the parameters, the weighted residual sums of squares and the Fisher matrix ``J^T W J``
    (k, 7, 7) at the solution (identity rows for fixed parameters; None without ``fisher``)."""
    k = len(p)
    lam = np.full(k, 1e-3)
    free = np.ones(7) if free is None else np.asarray(free, float)
    idx = [i for i in range(7) if free[i]]
    m_ = len(idx)
    p32 = np.asarray(p, np.float32)
    w32 = np.asarray(wgt, np.float32)
    wflat = w32.reshape(k, -1, 1)
    yy32, xx32 = np.asarray(yy, np.float32), np.asarray(xx, np.float32)
    eye = np.eye(m_)[None]

    def model(t):
        t = t.astype(np.float32)
        a, y0, x0, ls, b0, by, bx = (t[:, i, None, None] for i in range(7))
        s2 = np.exp(2 * ls)
        g = np.exp(-(yy32 - y0) ** 2 / (2 * s2)) * np.exp(-(xx32 - x0) ** 2 / (2 * s2))  # separable: 2P exps
        mod = a * g + b0
        if free[5] or t[:, 5].any():
            mod = mod + by * yy32
        if free[6] or t[:, 6].any():
            mod = mod + bx * xx32
        return mod, g, s2, a, y0, x0

    def rss(t):
        return (w32 * (p32 - model(t)[0]) ** 2).sum((1, 2), dtype=np.float64)

    def normal(t):
        mod, g, s2, a, y0, x0 = model(t)
        res = np.where(w32 > 0, p32 - mod, np.float32(0))
        jac = _jacobian(g, a, y0, x0, s2, yy32, xx32, idx)
        jw = jac * wflat
        jtj = np.einsum("kni,knj->kij", jw, jac, optimize=True)
        jtr = np.einsum("kni,kn->ki", jw, res.reshape(k, -1), optimize=True)
        return jtj.astype(np.float64), jtr.astype(np.float64)

    cur = rss(theta)
    for _ in range(iters):
        jtj, jtr = normal(theta)
        diag = np.einsum("kii->ki", jtj)
        a_mat = jtj + lam[:, None, None] * (diag[:, :, None] * eye + 1e-12 * eye)
        try:
            step = np.linalg.solve(a_mat + 1e-300 * eye, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:  # pragma: no cover - regularised above
            step = np.zeros((k, m_))
        step[~np.isfinite(step)] = 0.0
        trial = theta.copy()
        trial[:, idx] += step
        trial[:, 3] = np.clip(trial[:, 3], np.log(0.3), np.log(30.0))
        new = rss(trial)
        better = np.isfinite(new) & (new <= cur)
        theta = np.where(better[:, None], trial, theta)
        cur = np.where(better, new, cur)
        lam = np.where(better, lam * 0.2, lam * 10.0).clip(1e-9, 1e7)
    if not fisher:
        return theta, cur, None
    fim = np.tile(np.eye(7), (k, 1, 1))
    fim[np.ix_(np.arange(k), idx, idx)] = normal(theta)[0]
    return theta, cur, fim


#: atoms fitted together by :func:`refine_gaussian` (bounds its memory)
CHUNK = 2048
#: threads fitting chunks at once (the usable cores, at most 4)
THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
#: atoms whose independent fits give the shared column width (evenly spread over the image)
WIDTH_SAMPLE = 1024


def _fit(p, yy, xx, wf, t0, iterations, free, poisson, covariance=True):
    """Fit in chunks (on up to :data:`THREADS` threads: NumPy releases the GIL); returns the parameters,
    the row and column variances of the position (inf without ``covariance``) and the number of pixels of
    each fit and the weighted residual sum of squares."""
    k = len(p)
    th, vy, vx, rss = np.empty((k, 7)), np.empty(k), np.empty(k), np.empty(k)
    eye = np.eye(7)[None]

    def one(c0):
        sl = slice(c0, c0 + CHUNK)
        th[sl], rss[sl], fisher = _gauss_newton(p[sl], yy, xx, wf[sl], t0[sl], iterations, free, covariance)
        if not covariance:
            vy[sl], vx[sl] = np.inf, np.inf
            return
        try:
            cov = np.linalg.inv(fisher + 1e-12 * eye)
        except np.linalg.LinAlgError:  # pragma: no cover - regularised above
            cov = np.full(fisher.shape, np.inf)
        vy[sl], vx[sl] = cov[:, 1, 1], cov[:, 2, 2]

    starts = range(0, k, CHUNK)  # bounded memory for images with 10^5 atoms
    workers = min(THREADS, len(starts))
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, starts))
    else:
        for c0 in starts:
            one(c0)
    n = (wf > 0).sum((1, 2))
    dof = np.maximum(n - free.sum(), 1)
    # Poisson weights: the inverse Fisher matrix is the Cramer-Rao bound itself (structured misfit is
    # accounted for separately, :func:`structured_sd`); uniform weights: scaled by the residual variance
    scale = np.ones(k) if poisson else np.maximum(rss / dof, 1e-300)
    return th, vy * scale, vx * scale, n, rss


def counts_like(img: np.ndarray) -> bool:
    """Whether an image holds photon/electron counts (non-negative integers), so that a Poisson-weighted
    fit applies (checked on up to 10^5 pixels)."""
    a = np.asarray(img).reshape(-1)
    if a.size > 100_000:
        a = a[:: a.size // 100_000]
    return bool(a.size and a.min() >= 0 and np.all(a == np.round(a)) and a.max() > 0)


def refine_gaussian(img: np.ndarray, peaks: np.ndarray, radius: float, sigma0: float | None = None,
                    iterations: int = 4, passes: int = 3, plane: bool = False, shared_width: bool = True,
                    window: float = 2.0, weights: str = "auto", com_start: bool = True,
                    max_move: float = 1.0, small_window: float | None = 1.25, switch_px: float = 0.065,
                    windows: tuple[float, ...] | None = (2.5, 2.0, 1.25),
                    window_thresholds: tuple[float, ...] = (0.5, 1.2), locked: bool = True) -> dict:
    """Fit 2-D Gaussians to the image at every peak (vectorised least squares; Poisson-weighted for counts).

    A first pass fits each column alone (amplitude, position, width and a constant background in the
    disk of ``radius`` px around its centre of mass, as atomap does), from a width of ``sigma0`` and from a third of
    it (the start of lower median misfit kept: sparse columns are far narrower than the disk). With ``passes`` > 0, every column
    then shares the median fitted width (``shared_width``), and ``passes`` joint passes follow: the fitted
    Gaussians of all *other* columns are rendered and subtracted, and each column's amplitude, position
    and local background are refitted in a disk of ``window`` fitted widths (at least 1.5 px). Each pass is
    one batched Levenberg-Marquardt solve over all atoms (no Python loop over atoms).

    For an image of counts (non-negative integers, ``weights="auto"``) the pixels are weighted by the
    inverse of the fitted expectation (Poisson; the iteratively reweighted least squares of the maximum
    likelihood fit); otherwise uniformly. The position uncertainty is the Cramér-Rao bound of the fit (the
    inverse Fisher matrix; for uniform weights scaled by the residual variance). It covers the noise only:
    a structured background under the columns adds an error of its own (:func:`structured_sd`).

    A fit that fails (moves by more than ``radius``, a non-positive amplitude, a width outside 0.3-30 px)
    keeps the centre-of-mass position and gets an infinite uncertainty.

    Parameters
    ----------
    img : ndarray (H, W)
    peaks : ndarray (k, 2)
        Starting ``(row, col)`` px.
    radius : float
        Window radius of the first pass, px (about half the column spacing).
    sigma0 : float, optional
        Starting Gaussian width, px (default ``radius / 2``).
    iterations : int
        Levenberg-Marquardt steps per pass.
    passes : int
        Joint passes with the neighbours subtracted (0: the independent fits only).
    plane : bool
        Fit a sloped background plane (default a constant: fewer parameters, steadier at low dose).
    shared_width : bool
        One width for every column in the joint passes (otherwise each keeps its own first-pass width).
    window : float
        Radius of the joint passes' windows, in fitted widths.
    small_window, switch_px : float or None, float
        The adaptive window: when the median position uncertainty (Cramér-Rao bound) after the first joint
        pass is below ``switch_px`` px, the remaining passes use windows of ``small_window`` widths. With
        little noise the error is the structured background's (an amorphous support, the neighbours'
        tails), which a tighter window sees less of; with much noise the wider window's extra pixels
        matter more. None: always ``window``.
    windows, window_thresholds : tuple of float, optional
        The window (in widths) of the passes after the first, chosen by the ratio of the structured
        background's position error to the noise's after the first joint pass (medians over the atoms of
        ``STRUCTURED_GAIN * structured_sd / amplitude * width`` and of the Cramér-Rao bound):
        ``windows[i]`` where ``i`` is the number of ``window_thresholds`` (increasing) at or below the
        ratio (default: 2.5 widths below 0.5, 2 up to 1.2, 1.25 above). A structured background the width of
        the columns moves a column by an amount proportional to its width while the noise's error does not
        grow with it, so wide columns on a support want a tight window and narrow noisy ones a wide one
        (the ratio is in ``background_noise_ratio``). ``windows=None``: the older rule of ``small_window``
        and ``switch_px``, on the noise alone.
    locked : bool
        :func:`structured_sd` leaves out what repeats at every column (its ``locked``).
    weights : {"auto", "poisson", "uniform"}
    com_start : bool
        Start from the centre of mass in ``radius`` (False: the given ``peaks``, already sub-pixel).
    max_move : float
        A fit that ends farther than ``max_move * radius`` from its start has failed.

    Returns
    -------
    dict of ndarrays
        ``positions`` (k, 2) px; ``sigma_pos`` (k,) 1-sigma position uncertainty per axis, px (the mean of
        the row and column variances); ``amplitude`` (k,) peak height above the local background;
        ``width`` (k,) Gaussian sigma, px; ``ok`` (k,) bool.
    """
    img = np.asarray(img, np.float64)
    pos = np.asarray(peaks, float).reshape(-1, 2).copy()
    k = len(pos)
    out = {"positions": pos, "sigma_pos": np.full(k, np.inf), "amplitude": np.zeros(k), "width": np.zeros(k),
           "ok": np.zeros(k, bool), "background_model": None, "window": float("nan"),
           "background_noise_ratio": float("nan")}
    if k == 0:
        return out
    if weights not in ("auto", "poisson", "uniform"):
        raise InputError(f"weights must be auto, poisson or uniform, got {weights!r}")
    poisson = weights == "poisson" or (weights == "auto" and counts_like(img))
    h, w = img.shape
    start = refine_com(img, pos, radius, iterations=2) if com_start else pos.copy()
    s0 = float(sigma0) if sigma0 else max(0.6, radius / 2)
    free = np.array([1, 1, 1, 1, 1, plane, plane], float)
    wmax = max([window] + [float(wd) for wd in (windows or ())])
    if windows is not None and len(windows) != len(window_thresholds) + 1:
        raise InputError(f"windows needs one entry more than window_thresholds, got {len(windows)} and "
                         f"{len(window_thresholds)}")
    big = int(np.ceil(max(radius, 1.5, 2 * wmax * s0, wmax * radius)))
    padded = (np.pad(img.astype(np.float32), big, mode="constant", constant_values=np.nan), big)

    def cut(centres, rad):
        r = int(np.ceil(rad))
        patch, c, d = _patches(img, centres, r, padded)
        yy, xx = d[None, :, None] + 0.0, d[None, None, :] + 0.0
        oy, ox = centres[:, 0] - c[:, 0], centres[:, 1] - c[:, 1]
        disk = ((yy - oy[:, None, None]) ** 2 + (xx - ox[:, None, None]) ** 2 <= rad ** 2) & np.isfinite(patch)
        return patch, c, d, yy, xx, oy, ox, disk

    # pass 0: every column alone, free width, uniform weights (on many atoms: a sample for the shared width)
    patch, c, d, yy, xx, oy, ox, disk = cut(start, radius)
    flat = np.where(disk, patch, np.nan).reshape(k, -1)
    lo, hi = np.nanmin(flat, 1), np.nanmax(flat, 1)
    lo, hi = np.nan_to_num(lo), np.nan_to_num(hi)
    t0 = np.stack([np.maximum(hi - lo, 1e-9), oy, ox, np.full(k, np.log(s0)), lo, np.zeros(k), np.zeros(k)], 1)
    sample = np.arange(k)
    if passes > 0 and shared_width and k > WIDTH_SAMPLE:
        sample = np.unique(np.linspace(0, k - 1, WIDTH_SAMPLE).astype(int))
    p = np.where(disk[sample], patch[sample], 0.0)
    wf = disk[sample].astype(np.float64)
    th_s, vy_s, vx_s, n_s, rss_s = _fit(p, yy, xx, wf, t0[sample], iterations, free, False)
    if s0 / 3 >= 0.6 and len(sample) >= 2:
        # sparse columns: radius / 2 is far wider than a column, and a few steps from it can end far from its
        # width; a second start at a third of it, kept for the whole image when its median misfit is lower (per
        # column, a bright column's fit could jump to its faint partner and back between the two)
        t1 = t0[sample].copy()
        t1[:, 3] = np.log(s0 / 3)
        alt = _fit(p, yy, xx, wf, t1, iterations, free, False)
        fine = np.isfinite(alt[4]) & np.isfinite(rss_s)
        if fine.sum() >= 2 and np.median(alt[4][fine]) < np.median(rss_s[fine]) * (1 - 1e-6):
            th_s, vy_s, vx_s, n_s, rss_s = alt

    def check(th, vy, vx, n, oy, ox, fixed_width):
        moved = np.hypot(th[:, 1] - oy, th[:, 2] - ox)
        good = (th[:, 0] > 0) & (moved <= radius) & (n >= 5) & np.isfinite(vy) & np.isfinite(vx) & (vy >= 0) & (vx >= 0)
        if not fixed_width:
            good &= (th[:, 3] > np.log(0.3) + 1e-6) & (th[:, 3] < np.log(30.0) - 1e-6)
        return good

    ok = np.zeros(k, bool)
    ok[sample] = check(th_s, vy_s, vx_s, n_s, oy[sample], ox[sample], False)
    theta = t0.copy()
    theta[sample] = th_s
    vy, vx = np.full(k, np.inf), np.full(k, np.inf)
    vy[sample], vx[sample] = vy_s, vx_s
    theta[:, 1:3] += c  # absolute (row, col)
    ok &= np.hypot(*(theta[:, 1:3] - start).T) <= max_move * radius
    if passes > 0 and ok.sum() >= 3:
        ls = np.where(ok, theta[:, 3], np.median(theta[ok, 3]))
        if shared_width:
            ls[:] = np.median(theta[ok, 3])
        cur = np.where(ok[:, None], theta[:, 1:3], start)
        amp = np.where(ok, theta[:, 0], np.maximum(hi - lo, 1e-9))
        bg = np.where(ok, theta[:, 4], lo)
        sig = np.exp(ls)
        rad = np.maximum(1.5, window * sig)
        rw = float(np.max(rad))
        fixed = free.copy()
        fixed[3] = 0.0
        nb = None
        adapt = (small_window is not None or windows is not None) and passes >= 2
        window0 = window
        for it in range(passes):
            sig = np.exp(ls)
            rad = np.maximum(SMALL_MIN_PX if window != window0 else 1.5, window * sig)
            rw = float(np.max(rad))
            patch, c, d, yy, xx, oy, ox, disk = cut(cur, rw)
            disk &= (yy - oy[:, None, None]) ** 2 + (xx - ox[:, None, None]) ** 2 <= rad[:, None, None] ** 2
            reach = rw + 4.0 * float(np.max(sig))
            if nb is None or reach > nb[1]:  # positions move little between passes: one list, with slack
                nb = (_neighbours(cur, reach + 1.5), reach + 1.0)
            others = _neighbour_sum(cur, amp, sig, c, d, nb[0])
            t0 = np.stack([amp, oy, ox, ls, bg, np.zeros(k), np.zeros(k)], 1)
            p = np.where(disk, patch - others, np.float32(0))
            wf = disk.astype(np.float32)
            if poisson:
                s2 = (-0.5 / sig ** 2).astype(np.float32)[:, None, None]
                gy = np.exp(np.maximum((yy - oy[:, None, None]).astype(np.float32) ** 2 * s2, -40))
                gx = np.exp(np.maximum((xx - ox[:, None, None]).astype(np.float32) ** 2 * s2, -40))
                own = amp.astype(np.float32)[:, None, None] * gy * gx
                wf = wf / np.maximum(others + own + bg[:, None, None], 1.0)
            last = it == passes - 1
            probe = adapt and it == 0 and not last
            th, vy, vx, n, _ = _fit(p, yy, xx, wf, t0, max(2, iterations // 2), fixed if last else free, poisson,
                                 last or probe)
            good = check(th, np.where(last, vy, 0.0), np.where(last, vx, 0.0), n, oy, ox, last)
            good &= np.hypot(*(th[:, 1:3] + c - start).T) <= max_move * radius
            new = th[:, 1:3] + c
            cur = np.where(good[:, None], new, cur)
            amp = np.where(good, th[:, 0], amp)
            bg = np.where(good, th[:, 4], bg)
            if not last and good.sum() >= 3:  # the widths converge with the neighbours modelled
                ls = np.where(good, th[:, 3], ls)
                if shared_width:
                    ls[:] = np.median(th[good, 3])
            ok = good
            if probe:  # the noise after one joint pass chooses the window of the next ones
                sv = np.sqrt(np.clip((vy + vx) / 2, 0, None))[good & np.isfinite(vy) & np.isfinite(vx)]
                out["first_pass_sigma_px"] = float(np.median(sv)) if len(sv) else float("inf")
                if windows is not None:
                    sel = good & (amp > 0)
                    ratio = float("nan")
                    if sel.sum() >= 3 and len(sv):
                        s_bg = structured_sd(img, cur[sel], amp[sel], sig[sel], locked=locked)
                        bg_px = STRUCTURED_GAIN * s_bg * float(np.median(sig[sel] / amp[sel]))
                        ratio = bg_px / max(out["first_pass_sigma_px"], 1e-12)
                    out["background_noise_ratio"] = ratio
                    if np.isfinite(ratio):
                        window = float(windows[int(np.searchsorted(np.asarray(window_thresholds, float), ratio,
                                                                       side="right"))])
                elif out["first_pass_sigma_px"] < switch_px:
                    window = float(small_window)
        theta = np.concatenate([amp[:, None], cur, ls[:, None], bg[:, None], th[:, 5:]], 1)
    pos = np.where(ok[:, None], theta[:, 1:3], start)
    out["background_model"] = (pos[ok], theta[ok, 0], np.exp(theta[ok, 3])) if ok.any() else None
    out["window"] = float(window)
    out.update(positions=pos, sigma_pos=np.where(ok, np.sqrt(np.clip((vy + vx) / 2, 0, None)), np.inf),
               amplitude=np.where(ok, theta[:, 0], np.nan_to_num(hi - lo)),
               width=np.where(ok, np.exp(theta[:, 3]), 0.0), ok=ok)
    return out


#: position error (px, per axis) per unit of (background sd / amplitude) x column width, for a structured
#: background with the columns' own width (measured on simulated images by the fit floor of ``scopenet bench
#: atoms``; about 1.2, see :func:`structured_sd`)
STRUCTURED_GAIN = 1.2
SMALL_MIN_PX = 2.0


def structured_sd(img: np.ndarray, positions: np.ndarray, amplitude: np.ndarray, width: np.ndarray,
                  max_side: int = 1024, locked: bool = True) -> float:
    """Standard deviation of the image's *structured* background at the scale of the columns (an amorphous
    support, contamination, unresolved light columns), in image units.

    The fitted columns are subtracted and slow background removed (a Gaussian high-pass of 4 widths). Of
    what is left, white noise of variance ``v`` and a smooth field of variance ``s^2`` with the columns'
    width ``w``, the variance is ``v + s^2``, and after smoothing by the column's Gaussian
    ``v / (4 pi w^2) + s^2 / 2``; the two give ``s``. At most a ``max_side`` px central crop is used.

    With ``locked`` (default) what repeats at every column of an intensity class is taken out first (per
    class, the median of what is left around the columns, within 0.75 nearest-neighbour distances,
    :func:`_locked_part`): a residual that repeats with the lattice (a probe's tails and rings that the
    Gaussian misses, faint columns at fixed places in the cell) is symmetric about the columns or the same
    for every column, and moves none of them differently, while an amorphous support is different under
    every column.

    Returns
    -------
    float (0 when nothing structured is left)
    """
    from scipy import ndimage as ndi

    pos = np.asarray(positions, float).reshape(-1, 2)
    if len(pos) < 3:
        return 0.0
    w = float(np.median(width))
    h, wd = img.shape
    y0, x0 = max(0, (h - max_side) // 2), max(0, (wd - max_side) // 2)
    crop = np.asarray(img, np.float64)[y0:y0 + max_side, x0:x0 + max_side]
    sel = (pos[:, 0] > y0 - 5 * w) & (pos[:, 0] < y0 + max_side + 5 * w) & (pos[:, 1] > x0 - 5 * w) & \
        (pos[:, 1] < x0 + max_side + 5 * w)
    res = crop - _render(crop.shape, pos[sel] - [y0, x0], np.asarray(amplitude)[sel], np.full(sel.sum(), w))
    res = res - ndi.gaussian_filter(res, 4 * w, mode="nearest")
    m = max(1, int(np.ceil(4 * w)))
    if locked:
        res = res - _locked_part(res, np.rint(pos[sel] - [y0, x0]).astype(int), np.asarray(amplitude, float)[sel],
                                 float(np.median(nearest_neighbour_distances(pos))), 2 * m)
    core = (slice(m, -m), slice(m, -m)) if min(res.shape) > 4 * m else (slice(None), slice(None))
    v_all = float(np.var(res[core]))
    v_smooth = float(np.var(ndi.gaussian_filter(res, w, mode="nearest")[core]))
    f = 1.0 / (4 * np.pi * w * w)
    s2 = (v_smooth - f * v_all) / max(0.5 - f, 0.05)
    return float(np.sqrt(max(s2, 0.0)))


def _locked_part(res: np.ndarray, q: np.ndarray, amplitude: np.ndarray, nn: float, margin: int,
                 classes: int | None = 3) -> np.ndarray:
    """The part of ``res`` that repeats at every column of an intensity class: per class, the median of ``res``
    around the columns at least ``margin`` px inside (offsets within 0.75 nearest-neighbour distances of the
    integer pixel ``q``), put back at every column and averaged where two overlap (zero where none reaches).
    The classes: ``classes`` by k-means on ``amplitude`` from 30 columns (splitting a species costs a template
    a third of its columns, while merging two, which :func:`intensity_classes`' own choice can do as the noise
    falls, leaves their difference in the residual); None, or fewer columns: :func:`intensity_classes`."""
    h, w = res.shape
    out, count = np.zeros_like(res), np.zeros_like(res)
    if not np.isfinite(nn) or nn <= 0 or len(q) < 3:
        return out
    r = max(1.0, 0.75 * nn)
    d = np.arange(-int(r), int(r) + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    disk = dy ** 2 + dx ** 2 <= r * r
    dy, dx = dy[disk], dx[disk]
    iy, ix = q[:, 0:1] + dy, q[:, 1:2] + dx
    e = max(margin, int(r) + 1)
    inner = (q >= e).all(1) & (q[:, 0] < h - e) & (q[:, 1] < w - e)
    fits = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    cls = intensity_classes(amplitude, n_classes=classes) if classes and len(q) >= 30 else intensity_classes(amplitude)
    for c in np.unique(cls):
        template = cls == c
        if (template & inner).sum() < 3:
            continue
        t = np.median(res[iy[template & inner], ix[template & inner]], 0)
        np.add.at(out, (iy[template][fits[template]], ix[template][fits[template]]),
                  np.broadcast_to(t, iy[template].shape)[fits[template]])
        np.add.at(count, (iy[template][fits[template]], ix[template][fits[template]]), 1.0)
    return np.where(count > 0, out / np.maximum(count, 1.0), 0.0)


def _model_patch(th: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """``A exp(-r^2/2s^2) + b0 + by*y + bx*x`` of parameters ``th`` (k, 7) on patch coordinates."""
    a, y0, x0, ls, b0, by, bx = (th[:, i, None, None] for i in range(7))
    return a * np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * np.exp(2 * ls))) + b0 + by * yy + bx * xx


def _neighbours(pos: np.ndarray, reach: float) -> np.ndarray:
    """Indices ``(k, K)`` of every atom's neighbours within ``reach`` px, padded with ``k`` (and never the
    atom itself); ``K`` is the largest number found."""
    from scipy.spatial import cKDTree

    k = len(pos)
    tree = cKDTree(pos)
    area = max(float(np.ptp(pos[:, 0]) * np.ptp(pos[:, 1])), 1.0)
    kq = int(min(k, np.ceil(2.0 * np.pi * reach ** 2 * k / area) + 6))
    while True:  # a guess from the mean density; doubled when some atom has more neighbours
        dist, idx = tree.query(pos, kq, distance_upper_bound=reach)
        dist, idx = dist.reshape(k, -1), idx.reshape(k, -1)
        if kq >= k or not np.isfinite(dist[:, -1]).any():
            break
        kq = min(k, 2 * kq)
    idx = np.where(idx == np.arange(k)[:, None], k, idx)  # the atom itself is not its neighbour
    used = (idx < k).any(0)
    return idx[:, used] if used.any() else idx[:, :0]


def _neighbour_sum(pos: np.ndarray, amp: np.ndarray, sigma: np.ndarray, c: np.ndarray, d: np.ndarray,
                   idx: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """The fitted Gaussians of every atom's neighbours ``idx`` (:func:`_neighbours`) on its window:
    ``(k, P, P)`` float32, the window of atom ``i`` being the pixels ``c[i] + (d, d)``. Each Gaussian is
    separable, so a window costs ``2 P K`` exponentials and a ``(P, K) @ (K, P)`` product (no image is
    rendered)."""
    k, n = len(pos), len(d)
    out = np.zeros((k, n, n), np.float32)
    if k < 2 or idx.shape[1] == 0:
        return out
    posx = np.concatenate([pos, [[0.0, 0.0]]]).astype(np.float32)
    ampx = np.concatenate([amp, [0.0]]).astype(np.float32)
    sigx = np.concatenate([np.broadcast_to(sigma, (k,)), [1.0]]).astype(np.float32)
    d32 = d.astype(np.float32)
    c32 = c.astype(np.float32)
    for c0 in range(0, k, chunk):
        j = idx[c0:c0 + chunk]
        inv = (-0.5 / sigx[j] ** 2)[:, :, None]
        ry = (c32[c0:c0 + chunk, 0, None, None] + d32) - posx[j, 0][:, :, None]
        rx = (c32[c0:c0 + chunk, 1, None, None] + d32) - posx[j, 1][:, :, None]
        gy = np.exp(np.maximum(ry * ry * inv, -40.0)) * ampx[j][:, :, None]  # no subnormals (slow)
        gx = np.exp(np.maximum(rx * rx * inv, -40.0))
        out[c0:c0 + chunk] = np.einsum("knp,knq->kpq", gy, gx, optimize=True)
    return out


def _render(shape: tuple[int, int], positions: np.ndarray, amplitude: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Sum of the fitted Gaussians (one call per distinct width)."""
    from ...simulate.em.lattice import render_gaussians

    out = np.zeros(shape)
    for s in np.unique(sigma):
        sel = sigma == s
        out += render_gaussians(shape, positions[sel], amplitude[sel], float(s), truncate=4.0)
    return out


def residual_columns(img: np.ndarray, positions: np.ndarray, amplitude: np.ndarray, width: np.ndarray,
                     contrast: float = 0.3, significance: float = 5.0, min_partners: int = 2,
                     reach: float = 1.5, min_distance: float = 0.3, min_widths: float = 2.0) -> np.ndarray:
    """Columns the heatmap missed, found in what the fitted atoms leave of the image: ``(k, 2)`` ``(row, col)`` px.

    A faint column a lattice vector's fraction from a bright one (P beside In in InP [110] at a few px) can sit on
    the bright column's heatmap blob as a shoulder, not a peak. The fitted Gaussians of the atoms found are
    subtracted from the image, and so is a smooth background (the rest blurred over the atoms' spacing); the
    remainder is filtered with a Gaussian of the atoms' median width (a matched filter: a column of peak ``A``
    gives ``A / 2``). A maximum of it is a column when its peak (twice the filtered value) is at least
    ``contrast`` x the atoms' median peak (the benches' visibility rule is 0.2 of the brightest columns), at least
    ``significance`` x the filtered remainder's noise (its median absolute deviation), at least ``min_widths``
    column widths and ``min_distance`` nearest-neighbour distances from every atom, and where the atoms' lattice repeats it
    (:func:`lattice_supported`: ``min_partners`` of the four directions, within ``reach`` spacings of an atom), as a
    sublattice does and a support's bumps do not.
    """
    from scipy import ndimage as ndi
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    amp = np.asarray(amplitude, float).reshape(-1)
    wid = np.asarray(width, float).reshape(-1)
    good = np.isfinite(amp) & (amp > 0) & np.isfinite(wid) & (wid > 0)
    if good.sum() < 8:
        return np.zeros((0, 2))
    a = np.asarray(img, np.float64)
    w0 = float(np.median(wid[good]))
    nn = float(np.nanmedian(nearest_neighbour_distances(p)))
    if not (np.isfinite(nn) and nn > 0):
        return np.zeros((0, 2))
    rest = a - _render(a.shape, p[good], amp[good], np.full(good.sum(), w0))
    rest = rest - ndi.gaussian_filter(rest, max(nn, 3 * w0), mode="reflect")
    f = ndi.gaussian_filter(rest, w0, mode="reflect")
    noise = 1.4826 * float(np.median(np.abs(f - np.median(f))))
    level = max(0.5 * contrast * float(np.median(amp[good])), 0.5 * significance * noise)
    r = max(1, int(round(2 * w0)))
    mx = ndi.maximum_filter(f, size=2 * r + 1, mode="nearest")
    cand = np.argwhere((f >= mx) & (f >= level)).astype(float)
    if len(cand) == 0:
        return np.zeros((0, 2))
    d, _ = cKDTree(p).query(cand, 1)
    cand = cand[d >= max(min_widths * w0, min_distance * nn)]
    if len(cand) == 0:
        return np.zeros((0, 2))
    allp = np.concatenate([p, cand])
    vals = np.concatenate([np.ones(len(p)), np.zeros(len(cand))])
    # the lattice of the atoms; where the nearest neighbours are pairs (dumbbells), its vectors are longer
    ref = None
    for scale in (1.0, 2.0, 3.0):
        ref = _reference_vectors(p, scale * nn)
        if ref is not None:
            break
    if ref is None:
        return np.zeros((0, 2))
    ok = lattice_supported(allp, vals, 0.5, min_partners=min_partners, reach=reach, reference=ref)
    return cand[ok[len(p):]]


# ------------------------------------------------------------------------------------ analysis
def _kmeans_1d(v: np.ndarray, k: int, iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means on 1-D values, started at the ``(i + 0.5) / k`` quantiles (deterministic)."""
    c = np.quantile(v, (np.arange(k) + 0.5) / k)
    lab = np.zeros(len(v), int)
    for it in range(iterations):
        new = np.argmin(np.abs(v[:, None] - c[None, :]), axis=1)
        if it and np.array_equal(new, lab):
            break
        lab = new
        c = np.array([v[lab == i].mean() if (lab == i).any() else c[i] for i in range(k)])
    return lab


def intensity_classes(intensity: np.ndarray, n_classes: int | None = None, min_fraction: float = 0.05,
                      separation: float = 3.0, min_contrast: float = 0.1) -> np.ndarray:
    """Column classes from intensities by k-means (class 0 = the brightest).

    With ``n_classes=None`` the number is chosen from 1-3: ``k + 1`` classes replace ``k`` when every
    adjacent pair of cluster means is at least ``separation`` pooled standard deviations apart, and
    differs by at least ``min_contrast`` of the brighter mean (identical columns measured with little
    noise, e.g. at the image border, do not make two species), and every cluster holds at least
    ``min_fraction`` of the atoms (so a few dopants do not make a class).

    Returns
    -------
    ndarray of int, shape (k,)
    """
    v = np.asarray(intensity, float).reshape(-1)
    n = len(v)
    if n == 0:
        return np.zeros(0, int)
    v = np.where(np.isfinite(v), v, np.nanmedian(v) if np.isfinite(v).any() else 0.0)

    def km(k):
        if k == 1 or n < k:
            return np.zeros(n, int)
        lab = _kmeans_1d(v, k)
        means = np.array([v[lab == i].mean() if (lab == i).any() else -np.inf for i in range(k)])
        order = np.argsort(-means)  # 0 = brightest
        remap = np.empty(k, int)
        remap[order] = np.arange(k)
        return remap[lab]

    if n_classes is not None:
        return km(min(int(n_classes), max(n, 1)))
    best = np.zeros(n, int)
    for k in (2, 3):
        if n < 10 * k:
            break
        lab = km(k)
        frac = np.bincount(lab, minlength=k) / n
        if frac.min() == 0:
            break
        means = np.array([v[lab == i].mean() for i in range(k)])
        sds = np.array([v[lab == i].std() for i in range(k)])
        gaps = [(means[i] - means[i + 1]) / max(np.sqrt((sds[i] ** 2 + sds[i + 1] ** 2) / 2), 1e-12)
                for i in range(k - 1)]
        contrast = [(means[i] - means[i + 1]) / max(abs(means[i]), 1e-12) for i in range(k - 1)]
        if frac.min() >= min_fraction and min(gaps) >= separation and min(contrast) >= min_contrast:
            best = lab
        else:
            break
    return best


def nearest_neighbour_distances(positions: np.ndarray) -> np.ndarray:
    """Distance from each position to its nearest other one, px (NaN for a lone atom)."""
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    if len(p) < 2:
        return np.full(len(p), np.nan)
    d, _ = cKDTree(p).query(p, 2)
    return d[:, 1]


def lattice_share(positions: np.ndarray, k: int = 6, radius: float = 0.15, ring: float = 0.5,
                  min_peak: float = 3.0, sample: int = 3000) -> float:
    """How much a set of atoms is a crystal: the share of neighbour vectors that fall in a sharp mode.

    The vectors between each atom and its ``k`` nearest neighbours are pooled, each pair of atoms once (as ``v``
    and ``-v``). In a crystal seen along a zone axis, whatever its basis (dumbbells, honeycombs, several
    sublattices, two grains), every neighbour vector recurs once per cell, so the pool has sharp modes; peaks on
    noise, a texture or an amorphous support give vectors spread over an annulus. A pair's vector is in a mode
    when *other* pairs put at least one vector, and ``min_peak`` times more than a uniform spread would, within
    ``radius`` x the median nearest-neighbour distance of it (the uniform spread is that of the other pairs'
    vectors within ``ring`` x that distance; a perfect mode scores ``(ring / radius)^2``, about 11, a uniform
    spread 1). The pair itself is not counted: on a handful of atoms every vector would otherwise be a mode of
    its own. At most ``sample`` vectors are tested (the modes are clear from a sample).

    Returns
    -------
    float
        The share in [0, 1]; NaN with fewer than four atoms.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    n = len(p)
    if n < 4:
        return float("nan")
    kk = min(k, n - 1)
    tree = cKDTree(p)
    d, j = tree.query(p, kk + 1)
    nn = float(np.median(d[:, 1]))
    if not nn > 0:
        return float("nan")
    i = np.repeat(np.arange(n), kk)
    jj = j[:, 1:].reshape(-1)
    pairs = np.unique(np.sort(np.stack([i, jj], 1), axis=1), axis=0)  # each pair once
    vec = p[pairs[:, 1]] - p[pairs[:, 0]]
    pool = cKDTree(np.concatenate([vec, -vec]))
    if len(vec) > sample:
        vec = vec[np.random.default_rng(0).choice(len(vec), sample, replace=False)]
    # minus the pair's own vector (its mirror -v is 2 |v| >= 2 nn away, outside both discs)
    near = np.asarray(pool.query_ball_point(vec, radius * nn, return_length=True), float) - 1.0
    wide = np.asarray(pool.query_ball_point(vec, ring * nn, return_length=True), float) - 1.0
    return float(np.mean((near >= 1.0) & (near >= min_peak * wide * (radius / ring) ** 2)))


def _reference_vectors(p: np.ndarray, nn: float) -> np.ndarray | None:
    """The two most frequent non-parallel neighbour vectors of a lattice (``(2, 2)``, rows), or None."""
    from scipy.spatial import cKDTree

    tree = cKDTree(p)
    d, j = tree.query(p, min(7, len(p)))
    vec = (p[j[:, 1:]] - p[:, None, :]).reshape(-1, 2)
    dist = d[:, 1:].reshape(-1)
    vec = vec[(dist > 0) & (dist < 1.6 * nn)]
    if len(vec) < 4:
        return None
    ang = np.arctan2(vec[:, 0], vec[:, 1])
    vec = np.where(((ang < 0) | (ang >= np.pi))[:, None], -vec, vec)  # fold onto a half-plane
    if len(vec) > 3000:  # the modes of the neighbour vectors are clear from a sample (and cost O(n^2))
        vec = vec[np.random.default_rng(0).choice(len(vec), 3000, replace=False)]
    vt = cKDTree(vec)
    counts = np.asarray(vt.query_ball_point(vec, 0.15 * nn, return_length=True))
    order = np.argsort(-counts, kind="stable")
    a1 = vec[order[0]]
    a1 = vec[np.hypot(*(vec - a1).T) < 0.15 * nn].mean(0)
    for i in order[1:]:
        v = vec[i]
        cos = abs(v @ a1) / (np.linalg.norm(v) * np.linalg.norm(a1) + 1e-12)
        if cos < np.cos(np.deg2rad(25)) and counts[i] >= 0.2 * counts[order[0]]:
            a2 = vec[np.hypot(*(vec - v).T) < 0.15 * nn].mean(0)
            return np.stack([a1, a2])
    return None


def local_strain(positions: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """Per-atom strain relative to the image's average lattice.

    The two most frequent non-parallel neighbour vectors give the reference lattice (or ``reference``,
    rows ``a1``, ``a2`` in ``(row, col)`` px). Each atom's neighbours along ``+-a1``, ``+-a2`` (within
    0.3 of the vector's length) give its deformation gradient ``F`` by least squares; the strain is
    ``(F + F^T)/2 - I`` and the rotation ``(F_xy - F_yx)/2`` (radians), in x = column, y = row axes.

    Returns
    -------
    dict of ndarray (k,)
        ``exx``, ``eyy``, ``exy``, ``rotation`` (NaN where fewer than two independent neighbours match),
        and ``reference`` (2, 2) or None.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    k = len(p)
    nanv = np.full(k, np.nan)
    out = {"exx": nanv.copy(), "eyy": nanv.copy(), "exy": nanv.copy(), "rotation": nanv.copy(), "reference": None}
    if k < 5:
        return out
    nn = float(np.nanmedian(nearest_neighbour_distances(p)))
    ref = np.asarray(reference, float) if reference is not None else _reference_vectors(p, nn)
    if ref is None:
        return out
    out["reference"] = ref
    refs = np.concatenate([ref, -ref])[:, ::-1]  # (4, 2) in (x, y)
    tree = cKDTree(p)
    act = np.full((k, 4, 2), np.nan)
    for i, v in enumerate(refs):
        target = p + v[::-1]
        d, j = tree.query(target, 1)
        ok = d < 0.3 * np.linalg.norm(v)
        act[ok, i] = (p[j[ok]] - p[ok])[:, ::-1]
    have = np.isfinite(act[..., 0])
    # least squares F with R (4, 2) rows as reference and D rows as actual: D = R F^T
    sxx = np.zeros((k, 2, 2))
    sdx = np.zeros((k, 2, 2))
    for i in range(4):
        m = have[:, i]
        r = refs[i]
        sxx[m] += np.outer(r, r)
        sdx[m] += act[m, i][:, :, None] * r[None, None, :]
    good = (have[:, [0, 2]].any(1)) & (have[:, [1, 3]].any(1))
    f = np.full((k, 2, 2), np.nan)
    if good.any():
        f[good] = sdx[good] @ np.linalg.inv(sxx[good])
    out["exx"] = f[:, 0, 0] - 1
    out["eyy"] = f[:, 1, 1] - 1
    out["exy"] = (f[:, 0, 1] + f[:, 1, 0]) / 2
    out["rotation"] = (f[:, 1, 0] - f[:, 0, 1]) / 2
    return out


def strain_map(x: np.ndarray, y: np.ndarray, values: np.ndarray, shape: tuple[int, int], step: int = 4) -> np.ndarray:
    """Interpolate per-atom values (e.g. ``exx``) onto a grid every ``step`` px (linear; NaN outside the
    atoms' hull).

    Returns
    -------
    ndarray, shape ``(ceil(H / step), ceil(W / step))``
    """
    from scipy.interpolate import griddata

    h, w = shape
    ok = np.isfinite(values) & np.isfinite(x) & np.isfinite(y)
    gy, gx = np.mgrid[0:h:step, 0:w:step]
    if ok.sum() < 3:
        return np.full(gy.shape, np.nan)
    return griddata(np.stack([y[ok], x[ok]], 1), np.asarray(values)[ok], (gy, gx), method="linear")


def coordinates_rc(labels, shape: tuple[int, int], is_mask: bool) -> np.ndarray:
    """``(row, col)`` positions from a coordinate table (``(x, y)`` array or a DataFrame with ``x``, ``y``)
    or, with ``is_mask``, from a label image (the centroid of each connected non-zero region)."""
    from scipy import ndimage as ndi

    if is_mask:
        m = np.asarray(getattr(labels, "data", labels))
        if m.shape != tuple(shape):
            raise InputError(f"a mask of shape {m.shape} does not match its image {tuple(shape)}")
        lab, n = ndi.label(m != 0)
        if n == 0:
            return np.zeros((0, 2))
        return np.array(ndi.center_of_mass(m != 0, lab, np.arange(1, n + 1))).reshape(-1, 2)
    if hasattr(labels, "columns"):
        if not {"x", "y"} <= set(labels.columns):
            raise InputError("a coordinate table needs columns 'x' and 'y'")
        xy = np.stack([np.asarray(labels["x"], float), np.asarray(labels["y"], float)], 1)
    else:
        xy = np.asarray(labels, float)
        if xy.size == 0:
            return np.zeros((0, 2))
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise InputError(f"coordinates must have shape (k, 2) as (x, y), got {xy.shape}")
    if not np.isfinite(xy).all():
        raise InputError("coordinates contain NaN or inf")
    return xy[:, ::-1].copy()


def median_spacing(rcs: list[np.ndarray]) -> float:
    """Median nearest-neighbour distance over several images' positions (8 px when undefined)."""
    d = np.concatenate([nearest_neighbour_distances(r) for r in rcs]) if rcs else np.zeros(0)
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else 8.0


# ------------------------------------------------------------------------------------ the table
def merge_close(positions: np.ndarray, score: np.ndarray, distance: float) -> np.ndarray:
    """Indices to keep so that no two kept positions are closer than ``distance`` px (higher
    ``score`` first)."""
    from scipy.spatial import cKDTree

    p = np.asarray(positions, float).reshape(-1, 2)
    if len(p) < 2:
        return np.arange(len(p))
    pairs = cKDTree(p).query_pairs(distance, output_type="ndarray")
    if len(pairs) == 0:
        return np.arange(len(p))
    sc = np.asarray(score, float)
    nbrs: dict[int, list[int]] = {}
    for i, j in pairs:
        nbrs.setdefault(int(i), []).append(int(j))
        nbrs.setdefault(int(j), []).append(int(i))
    dropped = np.zeros(len(p), bool)
    for i in sorted(nbrs, key=lambda i: -sc[i]):  # only atoms with a close neighbour need the greedy pass
        if not dropped[i]:
            dropped[nbrs[i]] = True
    return np.flatnonzero(~dropped)


def atom_table(img: np.ndarray, heat: np.ndarray, peaks: np.ndarray, confidence: np.ndarray, cfg,
               pixel_size_m: float | None = None, merge_px: float = 1.5) -> dict:
    """Refine, class and describe the atoms at ``peaks``; returns ``{"columns": {...}, attrs...}`` for a
    DataFrame (see :mod:`scopenet.tasks.atoms.model`). Refined atoms closer than ``merge_px`` are merged
    (the more confident kept) and atoms refined outside the image, or within ``cfg.edge_margin`` px of its
    first or last pixel centre (a column cut by the border), dropped, and so are atoms within
    ``cfg.edge_fit_px`` px of the border whose Gaussian fit failed."""
    radius = cfg.refine_radius or default_radius(peaks)
    start = refine_heatmap(heat, peaks, 1.5)
    s_bg = 0.0
    fit_window = ratio = float("nan")
    if cfg.refine == "gaussian":
        wins = getattr(cfg, "windows", (2.5, 2.0, 1.25))
        locked = bool(getattr(cfg, "structured_locked", True))
        fit = refine_gaussian(img, start, radius, com_start=False,  # the heatmap's centroids: steadier at low dose
                              weights="uniform" if getattr(cfg, "dark_columns", False) else "auto",
                              windows=None if wins is None else tuple(wins), locked=locked,
                              window_thresholds=tuple(getattr(cfg, "window_thresholds", (0.5, 1.2))))
        bm = fit.pop("background_model")
        fit_window = fit.pop("window", float("nan"))
        fit.pop("first_pass_sigma_px", None)
        ratio = fit.pop("background_noise_ratio", float("nan"))
        if bm is not None:
            s_bg = structured_sd(img, *bm, locked=locked)
    else:  # fast modes: no fit, so no uncertainty (NaN); the intensity is the image at the peak
        n0 = len(start)
        ij = np.clip(np.rint(start).astype(int), 0, np.array(img.shape) - 1) if n0 else np.zeros((0, 2), int)
        fit = {"positions": start.copy(), "sigma_pos": np.full(n0, np.nan), "width": np.full(n0, np.nan),
               "amplitude": np.asarray(img, float)[ij[:, 0], ij[:, 1]] if n0 else np.zeros(0),
               "ok": np.zeros(n0, bool)}
    h, w = img.shape
    p = fit["positions"]
    if fit["ok"].sum() >= 3 and cfg.merge_width > 0:  # two columns closer than ~1 width are not resolved
        merge_px = max(merge_px, cfg.merge_width * float(np.median(fit["width"][fit["ok"]])))
    keep = merge_close(p, np.asarray(confidence, float) + fit["ok"], merge_px)
    m = float(getattr(cfg, "edge_margin", -0.5))
    keep = keep[(p[keep] >= m).all(1) & (p[keep, 0] <= h - 1 - m) & (p[keep, 1] <= w - 1 - m)]
    eb = getattr(cfg, "edge_fit_px", None)
    if eb and cfg.refine == "gaussian" and len(keep):  # a failed fit at the border: a column centred outside
        q = p[keep]
        border = np.minimum(np.minimum(q[:, 0], h - 1 - q[:, 0]), np.minimum(q[:, 1], w - 1 - q[:, 1]))
        keep = keep[~((border < eb) & ~fit["ok"][keep])]
    peaks, confidence, start = np.asarray(peaks)[keep], np.asarray(confidence)[keep], start[keep]
    fit = {k: v[keep] for k, v in fit.items()}
    k = len(peaks)
    if cfg.refine == "gaussian":
        pos = fit["positions"]
    elif cfg.refine == "com":
        pos = refine_com(img, start, radius)
    elif cfg.refine == "heatmap":
        pos = start
    else:
        pos = np.asarray(peaks, float).reshape(-1, 2)
    # noise (the fit's Cramer-Rao bound, calibrated) and the structured background's share, in quadrature
    amp = np.where(fit["amplitude"] > 0, fit["amplitude"], np.nan)
    gain, scale = getattr(cfg, "background_gain", STRUCTURED_GAIN), cfg.sigma_scale
    mismatch = getattr(cfg, "mismatch_fraction", 0.0)
    if fit_window < 2.0:  # the adaptive small window has factors of its own
        gain = gain if getattr(cfg, "background_gain_small", None) is None else cfg.background_gain_small
        scale = scale if getattr(cfg, "sigma_scale_small", None) is None else cfg.sigma_scale_small
        mismatch = mismatch if getattr(cfg, "mismatch_fraction_small", None) is None else cfg.mismatch_fraction_small
    noise_px = fit["sigma_pos"] * scale
    sys_px = np.nan_to_num(gain * s_bg * fit["width"] / amp, nan=0.0)
    model_px = mismatch * fit["width"]
    sig = np.maximum(np.sqrt(noise_px ** 2 + sys_px ** 2 + model_px ** 2), cfg.sigma_floor_px)
    inten = fit["amplitude"]
    cls = intensity_classes(inten, cfg.n_classes)
    weight = np.ones(k)
    if getattr(cfg, "lattice_prior", False) and cfg.refine == "gaussian" and k >= 3:
        prior = lattice_prior(pos, sig, cls, gate=cfg.prior_gate)
        pos, weight = prior["positions"], prior["weight"]
        sig = np.where(weight < 1, np.maximum(prior["sigma"] * cfg.prior_sigma_scale, cfg.sigma_floor_px), sig)
    nn = nearest_neighbour_distances(pos)
    strain = local_strain(pos)
    y, x = (pos[:, 0], pos[:, 1]) if k else (np.zeros(0), np.zeros(0))
    nanv = np.full(k, np.nan)
    cols = {"x": x, "y": y,
            "x_m": x * pixel_size_m if pixel_size_m else nanv.copy(),
            "y_m": y * pixel_size_m if pixel_size_m else nanv.copy(),
            "sigma_px": sig, "class": cls.astype(int), "confidence": np.asarray(confidence, float),
            "sigma_m": sig * pixel_size_m if pixel_size_m else nanv.copy(),
            "intensity": inten, "width_px": fit["width"], "nn_px": nn,
            "exx": strain["exx"], "eyy": strain["eyy"], "exy": strain["exy"], "rotation": strain["rotation"],
            "sigma_noise_px": noise_px, "sigma_background_px": sys_px, "sigma_model_px": model_px, "fit_ok": fit["ok"],
            "prior_weight": weight}
    med_conf = float(np.median(confidence)) if k else 0.0
    spacing = float(np.nanmedian(nn)) if k > 1 else float("nan")
    reasons = []
    if k < 4:  # lattice_share needs four; the OOD study's rule (scripts/atoms_ood_study.py) flags these too
        reasons.append(f"only {k} atoms found")
    if k and med_conf < cfg.ood_confidence:
        reasons.append(f"median peak confidence {med_conf:.2f} < {cfg.ood_confidence}")
    if np.isfinite(spacing) and not 3.0 <= spacing <= 40.0:
        reasons.append(f"atom spacing {spacing:.1f} px outside the trained 4-30 px")
    if k >= 10 and cfg.refine == "gaussian" and (~fit["ok"]).mean() > 0.2:
        reasons.append(f"{(~fit['ok']).mean():.0%} of the Gaussian fits failed")
    share = lattice_share(pos)
    min_share = float(getattr(cfg, "ood_lattice", 0.0))
    if k >= 4 and min_share > 0 and np.isfinite(share) and share < min_share:
        reasons.append(f"the atoms hardly form a lattice (share of neighbour vectors in a lattice mode {share:.2f} < "
                       f"{min_share}): noise, a texture, an amorphous region, or atoms the network invented")
    return {"columns": cols, "ood": bool(reasons), "ood_reasons": reasons, "median_confidence": med_conf,
            "lattice_share": share,
            "spacing_px": spacing, "refine_radius_px": float(radius), "structured_background_sd": s_bg,
            "fit_window_widths": fit_window, "background_noise_ratio": ratio,
            "reference_vectors_px": None if strain["reference"] is None else strain["reference"].tolist()}


def estimate_spacing(img: np.ndarray, lo: float = 2.5, hi: float | None = None, max_side: int = 512) -> float:
    """The smallest repeat distance of an image's bright features, px, from its autocorrelation.

    The autocorrelation of the (lightly smoothed, mean-free) image is searched for local maxima
    between ``lo`` and ``hi`` px from the centre (default a quarter of the smaller side); the nearest
    maximum at least 30 % as high as the strongest is the spacing. Used by the baselines to size their
    filters and windows (the network needs no spacing). A larger image is measured on its central
    ``max_side`` px square (enough for the 4-30 px spacings, and O(1) time). Returns NaN when no maximum is
    found.
    """
    from scipy import ndimage as ndi

    a = np.asarray(img, np.float64)
    if max(a.shape) > max_side:
        y0, x0 = max(0, (a.shape[0] - max_side) // 2), max(0, (a.shape[1] - max_side) // 2)
        a = a[y0:y0 + max_side, x0:x0 + max_side]
    h, w = a.shape
    # smoothed by a Gaussian of 1 px, slow background (a Gaussian of a side / 8) removed: both filters
    # applied in Fourier space (periodic; O(1) whatever the width)
    q2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    big = min(h, w) / 8
    f = np.fft.rfft2(a - a.mean()) * np.exp(-2 * np.pi ** 2 * q2) * (1 - np.exp(-2 * np.pi ** 2 * big ** 2 * q2))
    acf = np.fft.fftshift(np.fft.irfft2(np.abs(f) ** 2, s=a.shape))
    cy, cx = h // 2, w // 2
    hi = hi if hi is not None else min(h, w) / 4
    yy, xx = np.mgrid[0:h, 0:w]
    rr = np.hypot(yy - cy, xx - cx)
    mx = ndi.maximum_filter(acf, size=3)
    cand = (acf >= mx) & (rr >= lo) & (rr <= hi) & (acf > 0)
    if not cand.any():
        return float("nan")
    vals, rads = acf[cand], rr[cand]
    keep = vals >= 0.3 * vals.max()
    return float(rads[keep].min())
