"""Background subtraction: least-squares planes and polynomials, and RANSAC planes robust to steps."""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ._common import _out_dtype, _per_frame, _split, _unit_coords, _valid, _wrap


def _poly2d_fit(z: np.ndarray, ok: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares 2-D polynomial ``sum c[a,b] x^a y^b`` (a + b <= order) over pixels ``ok``.

    Uses separable moments so memory stays O(image): returns (background, coefficients (order+1, order+1)
    indexed [b, a] on coordinates scaled to [-1, 1]).
    """
    h, w = z.shape
    ty, tx = _unit_coords(h), _unit_coords(w)
    Py = np.vander(ty, 2 * order + 1, increasing=True)  # (h, 2o+1)
    Px = np.vander(tx, 2 * order + 1, increasing=True)  # (w, 2o+1)
    W = ok.astype(np.float64)
    M = Py.T @ W @ Px  # moments M[b, a] = sum w y^b x^a
    R = Py[:, : order + 1].T @ np.where(ok, z, 0.0) @ Px[:, : order + 1]  # rhs[b, a] = sum w z y^b x^a
    terms = [(a, b) for a in range(order + 1) for b in range(order + 1) if a + b <= order]
    # drop terms a degenerate axis cannot support (1-pixel-wide images)
    terms = [(a, b) for a, b in terms if (a == 0 or w > a) and (b == 0 or h > b)]
    A = np.array([[M[b1 + b2, a1 + a2] for (a2, b2) in terms] for (a1, b1) in terms])
    rhs = np.array([R[b, a] for (a, b) in terms])
    coef, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    C = np.zeros((order + 1, order + 1))
    for (a, b), c in zip(terms, coef):
        C[b, a] = c
    bg = Py[:, : order + 1] @ C @ Px[:, : order + 1].T
    return bg, C


def subtract_polynomial(x, order: int = 2, mask=None):
    """Subtract a least-squares 2-D polynomial background of total degree ``order``.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    order : int
        Total degree (1 = plane, 2 = quadratic bow from the scanner, ...).
    mask : array_like of bool, shape (y, x), optional
        True where pixels must not take part in the fit.

    Returns
    -------
    ndarray or Micrograph
    """
    arr, img = _split(x)
    order = int(order)
    if order < 0:
        raise InputError(f"polynomial order must be >= 0, got {order}")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        ok = _valid(z, mask)
        if not ok.any():
            return z
        return z - _poly2d_fit(z, ok, order)[0]

    out = _per_frame(one, arr).astype(_out_dtype(arr))
    return _wrap(out, img, "subtract_polynomial", order=order, masked=mask is not None)


def subtract_plane(x, mask=None):
    """Subtract the least-squares plane ``a + b x + c y`` (sample tilt).

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    mask : array_like of bool, shape (y, x), optional
        True where pixels must not take part in the fit.

    Returns
    -------
    ndarray or Micrograph
    """
    arr, img = _split(x)
    out = subtract_polynomial(arr, order=1, mask=mask)
    return _wrap(out, img, "subtract_plane", masked=mask is not None)


def plane_coefficients(z, mask=None) -> tuple[float, float, float]:
    """Least-squares plane of a 2-D image in pixel units: ``(offset, slope_x, slope_y)``.

    ``z ~ offset + slope_x * col + slope_y * row``; NaN and masked pixels are ignored.
    """
    arr, _ = _split(z)
    if arr.ndim != 2:
        raise InputError("plane_coefficients needs a 2-D image")
    zz = arr.astype(np.float64)
    ok = _valid(zz, mask)
    if not ok.any():
        raise InputError("no finite pixels to fit a plane to")
    _, C = _poly2d_fit(zz, ok, 1)
    h, w = zz.shape
    sx = 2.0 / (w - 1) if w > 1 else 0.0  # unit coordinate per pixel
    sy = 2.0 / (h - 1) if h > 1 else 0.0
    c0, cx, cy = C[0, 0], C[0, 1], C[1, 0]  # unit coordinate u = -1 + s * index (cx = 0 when w == 1)
    return float(c0 - cx - cy), float(cx * sx), float(cy * sy)


def _robust_noise(z: np.ndarray, ok: np.ndarray) -> float:
    """Noise estimate from pixel-to-pixel differences along the fast axis (MAD, Gaussian units)."""
    d = np.diff(np.where(ok, z, np.nan), axis=1)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def ransac_plane(x, threshold: float | None = None, mask=None, max_trials: int = 200,
                 max_points: int = 20000, random_state: int | None = 0, return_inliers: bool = False):
    """Subtract a plane found by RANSAC: robust to atomic steps and adsorbates.

    A plane is fitted by :class:`sklearn.linear_model.RANSACRegressor` to at most ``max_points``
    randomly chosen pixels; it is then refined by least squares on every pixel within ``threshold``
    of it (the dominant terrace).

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    threshold : float, optional
        Inlier distance, in data units. Default: the larger of 3x a robust noise estimate (from
        fast-axis pixel differences) and 2 % of the 1-99 percentile spread about the least-squares
        plane (so noise-free or finely corrugated terraces count as one plane, steps do not).
    mask : array_like of bool, shape (y, x), optional
        True where pixels must not take part in the fit.
    max_trials : int
        RANSAC iterations.
    max_points : int
        Pixels sampled for the RANSAC search (the refinement uses all of them).
    random_state : int or None
        Seed, for reproducible results.
    return_inliers : bool
        Also return the boolean inlier map, shape like the image.

    Returns
    -------
    ndarray or Micrograph (and the inlier map if ``return_inliers``)
    """
    from sklearn.linear_model import LinearRegression, RANSACRegressor

    arr, img = _split(x)
    rng = np.random.default_rng(random_state)
    inlier_maps = []

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        ok = _valid(z, mask)
        n_ok = int(ok.sum())
        if n_ok < 3:
            inlier_maps.append(ok)
            return z
        vals = z[ok]
        rng_z = float(vals.max() - vals.min())
        thr = threshold
        if thr is None:  # noise level, but never below 2 % of the spread about the mean plane
            resid = (z - _poly2d_fit(z, ok, 1)[0])[ok]
            lo, hi = np.percentile(resid, [1, 99])
            thr = max(3.0 * _robust_noise(z, ok), 0.02 * (hi - lo))
        thr = max(float(thr), 1e-6 * rng_z, np.finfo(float).tiny)
        yy, xx = np.nonzero(ok)
        pick = rng.choice(n_ok, size=min(n_ok, max_points), replace=False)
        X = np.column_stack([xx[pick], yy[pick]]).astype(np.float64)
        reg = RANSACRegressor(LinearRegression(), min_samples=3, residual_threshold=thr,
                              max_trials=max_trials, random_state=int(rng.integers(2**31 - 1)))
        try:
            reg.fit(X, vals[pick])
            a, (bx, by) = reg.estimator_.intercept_, reg.estimator_.coef_
        except ValueError:  # no consensus found: fall back to plain least squares
            a, bx, by = plane_coefficients(np.where(ok, z, np.nan))
        h, w = z.shape
        plane = a + bx * np.arange(w)[None, :] + by * np.arange(h)[:, None]
        inl = ok & (np.abs(z - plane) <= thr)
        for _ in range(3):  # refine by least squares on the inliers of the whole image
            if inl.sum() < 3:
                break
            plane = _poly2d_fit(z, inl, 1)[0]
            new = ok & (np.abs(z - plane) <= thr)
            if np.array_equal(new, inl):
                break
            inl = new
        inlier_maps.append(inl)
        return z - plane

    out = _per_frame(one, arr).astype(_out_dtype(arr))
    res = _wrap(out, img, "ransac_plane", threshold=threshold, masked=mask is not None,
                max_trials=max_trials, random_state=random_state)
    if return_inliers:
        inl = inlier_maps[0] if arr.ndim == 2 else np.stack(inlier_maps)
        return res, inl
    return res
