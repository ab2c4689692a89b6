"""From a heatmap and an image to an atom table: peaks, sub-pixel refinement, classes, uncertainty,
neighbour distances, strain and an out-of-distribution flag (pure numpy/scipy; no torch).

Coordinates are ``(row, col)`` px inside this module (pixel centres at integers); the public table of
:func:`~scopenet.tasks.atoms.find_atoms` names them ``y`` and ``x``.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError

__all__ = ["normalise", "heatmap_peaks", "merge_close", "atom_table", "estimate_spacing", "refine_gaussian", "refine_com", "refine_heatmap", "intensity_classes",
           "nearest_neighbour_distances", "local_strain", "strain_map", "default_radius"]


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

    h = np.asarray(heat, np.float32)
    r = int(min_distance)
    half = max(1, int(r / np.sqrt(2)))  # the square inscribed in the disk: a fast separable filter
    mx = ndi.maximum_filter(h, size=2 * half + 1, mode="nearest")
    cand = (h >= mx) & (h > threshold)
    lab, n = ndi.label(cand)  # plateaus give one peak (their centre of mass, rounded)
    if n == 0:
        return np.zeros((0, 2), int), np.zeros(0, np.float32)
    com = np.array(ndi.center_of_mass(cand, lab, np.arange(1, n + 1))).reshape(-1, 2)
    pk = np.rint(com).astype(int)
    pk[:, 0] = np.clip(pk[:, 0], 0, h.shape[0] - 1)
    pk[:, 1] = np.clip(pk[:, 1], 0, h.shape[1] - 1)
    val = h[pk[:, 0], pk[:, 1]]
    if r > half:  # the Euclidean separation: of two peaks closer than min_distance, the higher stays
        keep = merge_close(pk, val, r - 1e-9)
        pk, val = pk[keep], val[keep]
    return pk, val


# ------------------------------------------------------------------------------------ patches
def default_radius(peaks: np.ndarray) -> float:
    """Refinement half-width, px: 0.45 x the median nearest-neighbour distance of ``peaks``, in [1.5, 12]."""
    nn = nearest_neighbour_distances(peaks)
    med = float(np.nanmedian(nn)) if np.isfinite(nn).any() else 8.0
    return float(np.clip(0.45 * med, 1.5, 12.0))


def _patches(img: np.ndarray, centres: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(k, P, P)`` windows of ``img`` around the integer ``centres`` (NaN outside the image), and the
    integer centres ``(k, 2)`` and offsets ``d`` (P,)."""
    c = np.rint(np.asarray(centres, float)).astype(np.int64).reshape(-1, 2)
    h, w = img.shape
    c[:, 0] = np.clip(c[:, 0], 0, h - 1)
    c[:, 1] = np.clip(c[:, 1], 0, w - 1)
    pad = np.pad(np.asarray(img, np.float64), r, mode="constant", constant_values=np.nan)
    d = np.arange(-r, r + 1)
    iy = c[:, 0, None, None] + r + d[None, :, None]
    ix = c[:, 1, None, None] + r + d[None, None, :]
    return pad[iy, ix], c, d


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


def _jacobian(g, a, y0, x0, s2, yy, xx, free):
    k = g.shape[0]
    jac = np.zeros((k, g.shape[1] * g.shape[2], 7))
    ag = (a * g / s2).reshape(k, -1)
    dy = np.broadcast_to(yy - y0, g.shape).reshape(k, -1)
    dx = np.broadcast_to(xx - x0, g.shape).reshape(k, -1)
    jac[..., 0] = g.reshape(k, -1)
    jac[..., 1] = ag * dy
    jac[..., 2] = ag * dx
    if free[3]:
        jac[..., 3] = ag * (dy * dy + dx * dx)
    jac[..., 4] = 1.0
    if free[5]:
        jac[..., 5] = np.broadcast_to(yy, g.shape).reshape(k, -1)
        jac[..., 6] = np.broadcast_to(xx, g.shape).reshape(k, -1)
    return jac


def _gauss_newton(p, yy, xx, wgt, theta, iters, free=None):
    """Vectorised Levenberg-Marquardt fit of ``A exp(-r^2/2s^2) + b0 + by*y + bx*x`` to patches ``p``.

    ``theta`` (k, 7) = (A, y0, x0, log s, b0, by, bx) in patch coordinates; ``wgt`` the pixel weights (0
    outside the window). Returns the parameters, the weighted residual sums of squares and the Jacobian
    at the solution."""
    k = len(p)
    lam = np.full(k, 1e-2)
    free = np.ones(7) if free is None else np.asarray(free, float)
    fixed_diag = np.diag(1.0 - free)[None]

    def model(t):
        a, y0, x0, ls, b0, by, bx = (t[:, i, None, None] for i in range(7))
        s2 = np.exp(2 * ls)
        g = np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * s2))
        return a * g + b0 + by * yy + bx * xx, g, s2, a, y0, x0

    def rss(t):
        m = model(t)[0]
        return (wgt * (p - m) ** 2).sum((1, 2))

    cur = rss(theta)
    for _ in range(iters):
        m, g, s2, a, y0, x0 = model(theta)
        res = np.where(wgt > 0, p - m, 0.0)
        jac = _jacobian(g, a, y0, x0, s2, yy, xx, free)
        jw = jac * wgt.reshape(k, -1, 1)
        jwt = jw.transpose(0, 2, 1)
        jtj = jwt @ jac + fixed_diag  # batched BLAS products (einsum has no BLAS path here)
        jtr = (jwt @ res.reshape(k, -1, 1))[..., 0]
        diag = np.einsum("kii->ki", jtj)
        a_mat = jtj + lam[:, None, None] * (diag[:, :, None] * np.eye(7)[None] + 1e-12 * np.eye(7)[None])
        try:
            step = np.linalg.solve(a_mat, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(theta)
        step[~np.isfinite(step)] = 0.0
        trial = theta + step
        trial[:, 3] = np.clip(trial[:, 3], np.log(0.3), np.log(30.0))
        new = rss(trial)
        better = np.isfinite(new) & (new <= cur)
        theta = np.where(better[:, None], trial, theta)
        cur = np.where(better, new, cur)
        lam = np.where(better, lam * 0.3, lam * 10.0).clip(1e-7, 1e7)
    m, g, s2, a, y0, x0 = model(theta)
    return theta, cur, _jacobian(g, a, y0, x0, s2, yy, xx, free)


#: atoms fitted together by :func:`refine_gaussian` (bounds its memory)
CHUNK = 4096


def _fit_chunk(p, yy, xx, wf, t0, iterations, free):
    """Fit one chunk; returns the parameters and the row and column variances of the position."""
    th, rss, jac = _gauss_newton(p, yy, xx, wf, t0, iterations, free)
    dof = np.maximum(wf.sum((1, 2)) - free.sum(), 1)
    var = rss / dof
    k = len(th)
    jac = jac.reshape(k, -1, 7)
    jtj = (jac * wf.reshape(k, -1, 1)).transpose(0, 2, 1) @ jac + np.diag(1.0 - free)[None]
    try:
        cov = np.linalg.inv(jtj + 1e-12 * np.eye(7)[None]) * var[:, None, None]
        return th, cov[:, 1, 1], cov[:, 2, 2]
    except np.linalg.LinAlgError:  # pragma: no cover - regularised above
        return th, np.full(len(th), np.inf), np.full(len(th), np.inf)


def refine_gaussian(img: np.ndarray, peaks: np.ndarray, radius: float, sigma0: float | None = None,
                    iterations: int = 6, passes: int = 2, plane: bool = False, shared_width: bool = True,
                    grow: bool = True) -> dict:
    """Fit a 2-D Gaussian plus a plane to the image around each peak (vectorised least squares).

    Each atom's window is the disk of ``radius`` px around it. In the second and later ``passes`` the
    fitted Gaussians of the *other* atoms are subtracted first, so overlapping neighbours do not pull a
    column towards them (atomap's refinement fits one column at a time with its neighbours masked; here
    they are modelled), every column shares the median fitted width (``shared_width``) and the window
    grows to 2.5 widths (at most 1.5 ``radius``, ``grow``). A fit that fails (moves by more than ``radius``, a non-positive amplitude or a
    width outside 0.3-30 px) keeps the centre-of-mass position and gets an infinite uncertainty.

    Parameters
    ----------
    img : ndarray (H, W)
    peaks : ndarray (k, 2)
        Starting ``(row, col)`` px.
    radius : float
        Window radius, px.
    sigma0 : float, optional
        Starting Gaussian width, px (default ``radius / 2``).
    iterations, passes : int
        Levenberg-Marquardt steps per pass; passes.
    plane : bool
        Fit a sloped background plane (default a constant: fewer parameters, steadier at low dose).

    Returns
    -------
    dict of ndarrays
        ``positions`` (k, 2) px; ``sigma_pos`` (k,) 1-sigma least-squares position uncertainty per axis,
        px (the mean of the row and column variances, with the residual variance as noise); ``amplitude``
        (k,) peak height above the local plane; ``width`` (k,) fitted Gaussian sigma, px; ``ok`` (k,) bool.
    """
    img = np.asarray(img, np.float64)
    pos = np.asarray(peaks, float).reshape(-1, 2).copy()
    k = len(pos)
    out = {"positions": pos, "sigma_pos": np.full(k, np.inf), "amplitude": np.zeros(k), "width": np.zeros(k),
           "ok": np.zeros(k, bool)}
    if k == 0:
        return out
    radius0 = float(radius)
    r = int(np.ceil(radius))
    start = refine_com(img, pos, radius, iterations=2)
    s0 = float(sigma0) if sigma0 else max(0.6, radius / 2)
    theta = None
    model_img = None
    ok = np.zeros(k, bool)
    for ps in range(max(1, passes)):
        if ps > 0 and ok.sum() >= 3 and grow:  # a window of at least 2.5 fitted widths (neighbours are modelled)
            radius = max(radius0, min(2.5 * float(np.median(np.exp(theta[ok, 3]))), 1.5 * radius0))
            r = int(np.ceil(radius))
        patch, c, d = _patches(img, start, r)
        yy = (d[:, None] + 0.0)[None] * np.ones((k, 1, 1))
        xx = (d[None, :] + 0.0)[None] * np.ones((k, 1, 1))
        oy, ox = start[:, 0] - c[:, 0], start[:, 1] - c[:, 1]
        wgt = ((yy - oy[:, None, None]) ** 2 + (xx - ox[:, None, None]) ** 2 <= radius ** 2) & np.isfinite(patch)
        if ps > 0 and theta is not None:
            mp, _, _ = _patches(model_img, start, r)
            own = theta[:, 0, None, None] * np.exp(-((yy + c[:, 0, None, None] - theta[:, 1, None, None]) ** 2
                                                     + (xx + c[:, 1, None, None] - theta[:, 2, None, None]) ** 2)
                                                   / (2 * np.exp(2 * theta[:, 3, None, None])))
            patch = patch - np.nan_to_num(mp) + np.where(ok[:, None, None], own, 0.0)
        p = np.where(wgt, patch, 0.0)
        wf = wgt.astype(np.float64)
        flat = np.where(wgt, patch, np.nan).reshape(k, -1)
        lo = np.nanmin(flat, 1)
        hi = np.nanmax(flat, 1)
        t0 = np.stack([np.maximum(hi - lo, 1e-9), oy, ox, np.full(k, np.log(s0)), lo, np.zeros(k), np.zeros(k)], 1)
        free = np.array([1, 1, 1, 1, 1, plane, plane], float)
        if ps > 0 and shared_width and ok.sum() >= 3:  # one width for every column: a steadier fit
            free[3] = 0.0
            t0[:, 3] = np.median(theta[ok, 3])
        th, vy, vx = np.empty((k, 7)), np.empty(k), np.empty(k)
        for c0 in range(0, k, CHUNK):  # bounded memory for images with 10^5 atoms
            sl = slice(c0, c0 + CHUNK)
            th[sl], vy[sl], vx[sl] = _fit_chunk(p[sl], yy[sl], xx[sl], wf[sl], t0[sl], iterations, free)
        n = wf.sum((1, 2))
        moved = np.hypot(th[:, 1] - oy, th[:, 2] - ox)
        ok = (th[:, 0] > 0) & (moved <= radius) & (n >= 8) & np.isfinite(vy) & np.isfinite(vx) & (vy >= 0) & (vx >= 0)
        ok &= (th[:, 3] > np.log(0.3) + 1e-6) & (th[:, 3] < np.log(30.0) - 1e-6) | (free[3] == 0)
        theta = th.copy()
        theta[:, 1] += c[:, 0]
        theta[:, 2] += c[:, 1]
        if ps + 1 < passes:
            from ...simulate.em.lattice import render_gaussians

            start = np.where(ok[:, None], theta[:, 1:3], start)
            model_img = np.zeros(img.shape)
            for s in np.unique(np.round(th[ok, 3], 1)):  # group by width for the renderer
                sel = ok & (np.round(th[:, 3], 1) == s)
                model_img += render_gaussians(img.shape, theta[sel, 1:3], theta[sel, 0], float(np.exp(s)))
    pos = np.where(ok[:, None], theta[:, 1:3], start)
    out.update(positions=pos, sigma_pos=np.where(ok, np.sqrt(np.clip((vy + vx) / 2, 0, None)), np.inf),
               amplitude=np.where(ok, theta[:, 0], 0.0), width=np.where(ok, np.exp(theta[:, 3]), 0.0), ok=ok)
    if not ok.all():  # a failed fit: the window's centre of mass and its range as the intensity
        out["amplitude"] = np.where(ok, out["amplitude"], np.nan_to_num(hi - lo))
    return out


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
    (the more confident kept) and atoms refined outside the image (beyond half a pixel) dropped."""
    radius = cfg.refine_radius or default_radius(peaks)
    start = refine_heatmap(heat, peaks, 1.5)
    if cfg.refine == "gaussian":
        fit = refine_gaussian(img, start, radius)
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
    keep = keep[(p[keep] >= -0.5).all(1) & (p[keep, 0] <= h - 0.5) & (p[keep, 1] <= w - 0.5)]
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
    sig = np.maximum(fit["sigma_pos"] * cfg.sigma_scale, cfg.sigma_floor_px)
    inten = fit["amplitude"]
    cls = intensity_classes(inten, cfg.n_classes)
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
            "fit_ok": fit["ok"]}
    med_conf = float(np.median(confidence)) if k else 0.0
    spacing = float(np.nanmedian(nn)) if k > 1 else float("nan")
    reasons = []
    if k < 3:
        reasons.append(f"only {k} atoms found")
    if k and med_conf < cfg.ood_confidence:
        reasons.append(f"median peak confidence {med_conf:.2f} < {cfg.ood_confidence}")
    if np.isfinite(spacing) and not 3.0 <= spacing <= 40.0:
        reasons.append(f"atom spacing {spacing:.1f} px outside the trained 4-30 px")
    if k >= 10 and cfg.refine == "gaussian" and (~fit["ok"]).mean() > 0.2:
        reasons.append(f"{(~fit['ok']).mean():.0%} of the Gaussian fits failed")
    return {"columns": cols, "ood": bool(reasons), "ood_reasons": reasons, "median_confidence": med_conf,
            "spacing_px": spacing, "refine_radius_px": float(radius),
            "reference_vectors_px": None if strain["reference"] is None else strain["reference"].tolist()}


def estimate_spacing(img: np.ndarray, lo: float = 2.5, hi: float | None = None) -> float:
    """The smallest repeat distance of an image's bright features, px, from its autocorrelation.

    The autocorrelation of the (lightly smoothed, mean-free) image is searched for local maxima
    between ``lo`` and ``hi`` px from the centre (default a quarter of the smaller side); the nearest
    maximum at least 30 % as high as the strongest is the spacing. Used by the baselines to size their
    filters and windows (the network needs no spacing). Returns NaN when no maximum is found.
    """
    from scipy import ndimage as ndi

    a = np.asarray(img, np.float64)
    a = ndi.gaussian_filter(a, 1.0) - a.mean()
    a = a - ndi.gaussian_filter(a, min(a.shape) / 8)  # remove slow background
    f = np.fft.rfft2(a)
    acf = np.fft.fftshift(np.fft.irfft2(np.abs(f) ** 2, s=a.shape))
    h, w = a.shape
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
