"""Preprocessing for scanning probe and electron micrographs.

Every function accepts either a NumPy array or a :class:`~scopenet.image.Micrograph`. Given an array
it returns an array (float32 for integer or float32 input, float64 for float64 input); given a
Micrograph it returns a new Micrograph with calibration updated where the geometry changes and one
provenance entry appended. The input is never modified.

Images are ``(y, x)`` with ``x`` the fast-scan axis (one scan line per row). Stacks ``(n, y, x)``
are processed frame by frame. Non-finite pixels (NaN: unscanned lines of a scan stopped early) are
ignored by every fit and stay NaN in the output.

Scanning probe
    :func:`flatten_lines`, :func:`align_rows`, :func:`subtract_plane`, :func:`subtract_polynomial`,
    :func:`ransac_plane`, :func:`detect_scars`, :func:`repair_scars` and the façade :func:`flatten`.
Electron microscopy
    :func:`replace_nonfinite`, :func:`normalise`, :func:`bin_image`, :func:`crop_to_square`,
    :func:`resize`.
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, Callable, Literal

import numpy as np

from ..errors import InputError
from .micrograph import Micrograph, check_image_array

__all__ = [
    "flatten", "flatten_lines", "align_rows", "subtract_plane", "subtract_polynomial", "ransac_plane",
    "plane_coefficients", "detect_scars", "repair_scars", "replace_nonfinite", "normalise", "normalize",
    "bin_image", "crop_to_square", "resize", "crop_unscanned", "FLATTEN_METHODS",
]

FLATTEN_METHODS = ("plane", "lines", "poly", "ransac", "align", "auto")


# ----------------------------------------------------------------------------- plumbing
def _split(x) -> tuple[np.ndarray, Micrograph | None]:
    """The data of ``x`` as a float array (no copy when possible) and the Micrograph or None."""
    if isinstance(x, Micrograph):
        return x.data, x
    return check_image_array(x), None


def _out_dtype(arr: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if arr.dtype == np.float64 else np.dtype(np.float32)


def _wrap(out: np.ndarray, img: Micrograph | None, operation: str, axes=None, **params):
    if img is None:
        return out
    return img.with_data(out, axes=axes, operation=operation, **params)


def _per_frame(func: Callable[[np.ndarray], np.ndarray], arr: np.ndarray) -> np.ndarray:
    """Apply a 2-D function to each frame of a stack (or to the image itself)."""
    if arr.ndim == 2:
        return func(arr)
    return np.stack([func(f) for f in arr])


def _valid(z: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Pixels usable for a fit: finite and not excluded by ``mask`` (True = exclude)."""
    ok = np.isfinite(z)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != z.shape[-2:]:
            raise InputError(f"mask shape {m.shape} does not match the image shape {z.shape[-2:]}")
        ok &= ~m
    return ok


def _unit_coords(n: int) -> np.ndarray:
    """``n`` coordinates spread over [-1, 1] (0 for n == 1), for well-conditioned fits."""
    if n == 1:
        return np.zeros(1)
    return np.linspace(-1.0, 1.0, n)


# ----------------------------------------------------------------------------- SPM: lines
def flatten_lines(x, method: Literal["offset", "linear", "median", "poly"] = "offset", order: int = 1,
                  mask=None):
    """Line-by-line flattening ("X flatten"), as capture software does in real time.

    From every scan line (row) subtract its mean (``"offset"``), its median (``"median"``), its
    least-squares straight line (``"linear"``) or polynomial of degree ``order`` (``"poly"``).

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
        Image; rows are scan lines.
    method : {"offset", "linear", "median", "poly"}
        Per-line model to remove.
    order : int
        Polynomial degree for ``method="poly"`` (``"linear"`` is ``order=1``).
    mask : array_like of bool, shape (y, x), optional
        True where pixels must not take part in the fits (adsorbates, steps); they are still
        corrected. A line with too few usable pixels is left unchanged.

    Returns
    -------
    ndarray or Micrograph
        The flattened image, NaNs where the input had them.

    Examples
    --------
    >>> z = np.add.outer(np.arange(4.0), np.zeros(5))      # every line at a different height
    >>> float(np.abs(flatten_lines(z)).max())
    0.0
    """
    arr, img = _split(x)
    if method not in ("offset", "linear", "median", "poly"):
        raise InputError(f"unknown line-flattening method {method!r}; use offset, linear, median or poly")
    deg = {"offset": 0, "median": 0, "linear": 1, "poly": int(order)}[method]
    if deg < 0:
        raise InputError(f"polynomial order must be >= 0, got {order}")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        ok = _valid(z, mask)
        if method in ("offset", "median"):
            zm = np.where(ok, z, np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                base = np.nanmedian(zm, axis=1) if method == "median" else np.nanmean(zm, axis=1)
            base = np.where(np.isfinite(base), base, 0.0)
            return z - base[:, None]
        return z - _row_poly_fit(z, ok, deg)

    out = _per_frame(one, arr).astype(_out_dtype(arr))
    return _wrap(out, img, "flatten_lines", method=method, order=deg, masked=mask is not None)


def _row_poly_fit(z: np.ndarray, ok: np.ndarray, deg: int) -> np.ndarray:
    """Per-row weighted least-squares polynomial of degree ``deg``; returns the fitted surface."""
    h, w = z.shape
    t = _unit_coords(w)
    V = np.vander(t, deg + 1, increasing=True)  # (w, k)
    wts = ok.astype(np.float64)
    zz = np.where(ok, z, 0.0)
    A = np.einsum("hw,wk,wl->hkl", wts, V, V)  # (h, k, k)
    b = zz @ V  # (h, k)
    counts = wts.sum(axis=1)
    use = np.minimum(deg, counts.astype(int) - 1)  # rows with few points fall back to a lower degree
    fit = np.zeros_like(z)
    for d in range(deg, -1, -1):
        rows = use == d
        if not rows.any():
            continue
        k = d + 1
        coef = np.linalg.solve(A[rows][:, :k, :k], b[rows][:, :k, None])[..., 0]
        fit[rows] = coef @ V[:, :k].T
    return fit


def align_rows(x, method: Literal["median_diff", "median", "mean"] = "median_diff", mask=None):
    """Align scan lines to each other by shifting each one vertically.

    ``"median_diff"`` shifts every line by the median of its pixel-wise difference to the previous
    (valid) line — robust to steps and adsorbates, and it keeps the slow-scan slope out. ``"median"``
    and ``"mean"`` subtract each line's median or mean (see :func:`flatten_lines`).

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    method : {"median_diff", "median", "mean"}
    mask : array_like of bool, shape (y, x), optional
        True where pixels must be ignored when measuring the shifts.

    Returns
    -------
    ndarray or Micrograph
        Aligned image; the first valid line keeps its height.
    """
    arr, img = _split(x)
    if method in ("median", "mean"):
        out = flatten_lines(arr, method="median" if method == "median" else "offset", mask=mask)
        return _wrap(out, img, "align_rows", method=method)
    if method != "median_diff":
        raise InputError(f"unknown row-alignment method {method!r}; use median_diff, median or mean")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        zm = np.where(_valid(z, mask), z, np.nan)
        shifts = np.zeros(z.shape[0])
        prev = None
        acc = 0.0
        for i in range(z.shape[0]):
            row = zm[i]
            if not np.isfinite(row).any():
                continue
            if prev is not None:
                d = row - zm[prev]
                d = d[np.isfinite(d)]
                if d.size:
                    acc += float(np.median(d))
                else:  # no common pixels: match the medians instead
                    acc += float(np.nanmedian(row) - np.nanmedian(zm[prev]))
            shifts[i] = acc
            prev = i
        return z - shifts[:, None]

    out = _per_frame(one, arr).astype(_out_dtype(arr))
    return _wrap(out, img, "align_rows", method=method, masked=mask is not None)


# ----------------------------------------------------------------------------- SPM: backgrounds
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


# ----------------------------------------------------------------------------- SPM: scars
def detect_scars(x, threshold: float = 4.0, min_length: int = 4, max_width: int = 2) -> np.ndarray:
    """Find scars: short streaks along the fast-scan axis where the tip jumped for a moment.

    A pixel belongs to a scar of width ``k <= max_width`` rows when it (and the rest of its ``k``-row
    block) stands above both the line above and the line below the block by more than ``threshold``
    times the robust scatter of line-to-line differences (or below both, for negative scars), and
    the streak runs along the line for at least ``min_length`` pixels.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
        Image (line-flattened or not: only differences between neighbouring lines matter).
    threshold : float
        Jump height in units of the robust standard deviation of vertical pixel differences.
    min_length : int
        Shortest streak, in pixels along the fast axis.
    max_width : int
        Thickest scar, in lines.

    Returns
    -------
    ndarray of bool, same shape as the image
        True on scar pixels.
    """
    from scipy import ndimage as ndi

    arr, _ = _split(x)
    if min_length < 1 or max_width < 1:
        raise InputError("min_length and max_width must be >= 1")

    def one(z2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        h, w = z.shape
        mask = np.zeros((h, w), bool)
        if h < 3:
            return mask
        dv = np.diff(z, axis=0)
        dv = dv[np.isfinite(dv)]
        if dv.size == 0:
            return mask
        sigma = 1.4826 * np.median(np.abs(dv - np.median(dv)))
        if sigma <= 0:
            sigma = max(np.std(dv), np.finfo(float).tiny)
        t = threshold * sigma
        with np.errstate(invalid="ignore"):
            for k in range(1, max_width + 1):
                if h < k + 2:
                    break
                above = z[: h - k - 1]
                below = z[k + 1:]
                hi = np.maximum(above, below)
                lo = np.minimum(above, below)
                pos = np.ones_like(above, bool)
                neg = np.ones_like(above, bool)
                for j in range(k):
                    blk = z[1 + j: h - k + j]
                    pos &= (blk - hi) > t
                    neg &= (blk - lo) < -t
                hit = pos | neg
                for j in range(k):
                    mask[1 + j: h - k + j] |= hit
        if min_length > 1:
            mask = ndi.binary_opening(mask, structure=np.ones((1, min_length), bool))
        return mask

    return _per_frame(one, arr)


def repair_scars(x, mask=None, **detect_kw):
    """Replace scar pixels by interpolating between the nearest good lines above and below.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    mask : array_like of bool, same shape as the image, optional
        Pixels to repair; default :func:`detect_scars` ``(x, **detect_kw)``.

    Returns
    -------
    ndarray or Micrograph
        A one-line scar becomes the mean of the lines above and below it.
    """
    arr, img = _split(x)
    m = detect_scars(arr, **detect_kw) if mask is None else np.asarray(mask, bool)
    if m.shape != arr.shape and m.shape != arr.shape[-2:]:
        raise InputError(f"scar mask shape {m.shape} does not match the image shape {arr.shape}")
    if arr.ndim == 3 and m.ndim == 2:
        m = np.broadcast_to(m, arr.shape)
    n_fixed = int(m.sum())

    def one(z2: np.ndarray, m2: np.ndarray) -> np.ndarray:
        z = z2.astype(np.float64)
        h, w = z.shape
        good = ~m2
        rows = np.arange(h)[:, None] * np.ones((1, w), int)
        up = np.where(good, rows, -1)
        up = np.maximum.accumulate(up, axis=0)  # nearest good row at or above
        dn = np.where(good, rows, h)
        dn = np.minimum.accumulate(dn[::-1], axis=0)[::-1]  # nearest good row at or below
        cols = np.broadcast_to(np.arange(w), (h, w))
        has_up, has_dn = up >= 0, dn < h
        zu = z[np.clip(up, 0, h - 1), cols]
        zd = z[np.clip(dn, 0, h - 1), cols]
        span = np.maximum(dn - up, 1)
        f = (rows - up) / span
        interp = np.where(has_up & has_dn, zu + f * (zd - zu), np.where(has_up, zu, zd))
        fix = m2 & (has_up | has_dn)
        out = z.copy()
        out[fix] = interp[fix]
        return out

    if arr.ndim == 2:
        out = one(arr, m)
    else:
        out = np.stack([one(f, mf) for f, mf in zip(arr, m)])
    return _wrap(out.astype(_out_dtype(arr)), img, "repair_scars", pixels=n_fixed)


# ----------------------------------------------------------------------------- façade
def flatten(img, method: Literal["plane", "lines", "poly", "ransac", "align", "auto"] = "auto", **kw):
    """Flatten a scanning probe image with one call (``sn.flatten``).

    Parameters
    ----------
    img : array_like, shape (y, x) or (n, y, x), or Micrograph
    method : {"plane", "lines", "poly", "ransac", "align", "auto"}
        ``"plane"``: :func:`subtract_plane`; ``"lines"``: :func:`flatten_lines` (``line_method``,
        ``order``); ``"poly"``: :func:`subtract_polynomial` (``order``, default 2); ``"ransac"``:
        :func:`ransac_plane`; ``"align"``: :func:`align_rows`; ``"auto"``: row alignment by median of
        differences, then a RANSAC plane (robust to steps, adsorbates and line offsets).
    **kw
        Passed to the chosen function (``mask``, ``threshold``, ``order``...).

    Returns
    -------
    ndarray or Micrograph, like the input.

    Examples
    --------
    >>> import scopenet as sn
    >>> img = sn.read("scan.sxm")                     # doctest: +SKIP
    >>> flat = sn.flatten(img, method="lines")        # doctest: +SKIP
    """
    if method == "plane":
        return subtract_plane(img, **kw)
    if method == "lines":
        lm = kw.pop("line_method", kw.pop("lines", "offset"))
        return flatten_lines(img, method=lm, **kw)
    if method == "poly":
        return subtract_polynomial(img, **kw)
    if method == "ransac":
        return ransac_plane(img, **kw)
    if method == "align":
        return align_rows(img, **kw)
    if method == "auto":
        mask = kw.pop("mask", None)
        return ransac_plane(align_rows(img, mask=mask), mask=mask, **kw)
    raise InputError(f"unknown flattening method {method!r}; choose one of {', '.join(FLATTEN_METHODS)}")


# ----------------------------------------------------------------------------- EM
def replace_nonfinite(x, value: Literal["median", "mean"] | float = "median"):
    """Replace NaN and ±inf pixels by the median or mean of the finite ones, or by a number.

    Raises
    ------
    InputError
        If a statistic is asked for and no pixel is finite.
    """
    arr, img = _split(x)
    bad = ~np.isfinite(arr)
    out = arr.astype(_out_dtype(arr), copy=True)
    if bad.any():
        if isinstance(value, str):
            good = arr[~bad]
            if good.size == 0:
                raise InputError("every pixel is NaN or infinite; nothing to replace them with")
            if value == "median":
                fill = float(np.median(good))
            elif value == "mean":
                fill = float(np.mean(good, dtype=np.float64))
            else:
                raise InputError(f"value must be 'median', 'mean' or a number, got {value!r}")
        else:
            fill = float(value)
        out[bad] = fill
    return _wrap(out, img, "replace_nonfinite", value=value, pixels=int(bad.sum()))


def normalise(x, mode: Literal["minmax", "symmetric", "standard"] = "minmax",
              percentiles: tuple[float, float] | None = None):
    """Rescale intensities: ``"minmax"`` to [0, 1], ``"symmetric"`` to [-1, 1], ``"standard"`` to
    zero mean and unit variance.

    Statistics ignore NaN (which stays NaN). A constant image maps to 0.

    Parameters
    ----------
    x : array_like or Micrograph
    mode : {"minmax", "symmetric", "standard"}
    percentiles : (low, high), optional
        For ``"minmax"``/``"symmetric"``: use these percentiles (e.g. ``(0.5, 99.5)``) instead of
        the extremes, and clip to the range.

    Raises
    ------
    InputError
        For an unknown mode, or when no pixel is finite.
    """
    arr, img = _split(x)
    if mode not in ("minmax", "symmetric", "standard"):
        raise InputError(f"unknown normalisation mode {mode!r}; use minmax, symmetric or standard")
    z = arr.astype(np.float64)
    fin = np.isfinite(z)
    if not fin.any():
        raise InputError("cannot normalise: no finite pixel (all NaN/inf)")
    vals = z[fin]
    z = np.where(fin, z, np.nan)
    if mode == "standard":
        mu, sd = float(vals.mean()), float(vals.std())
        constant = sd <= 16 * np.finfo(np.float64).eps * abs(mu) or vals.min() == vals.max()
        out = np.where(fin, 0.0, np.nan) if constant else (z - mu) / sd
    else:
        lo, hi = (np.percentile(vals, percentiles) if percentiles else (vals.min(), vals.max()))
        if hi > lo:
            out = (z - lo) / (hi - lo)
            if percentiles:
                out = np.clip(out, 0.0, 1.0)
            if mode == "symmetric":
                out = 2.0 * out - 1.0
        else:
            out = np.where(fin, 0.0, np.nan)
    return _wrap(out.astype(_out_dtype(arr)), img, "normalise", mode=mode, percentiles=percentiles)


normalize = normalise


def bin_image(x, factor: int | tuple[int, int], reduce: Literal["mean", "sum"] = "mean"):
    """Bin ``factor x factor`` pixel blocks into one (trailing rows/columns that do not fill a block
    are dropped). NaN pixels are ignored within a block; an all-NaN block gives NaN.

    For a Micrograph the pixel size grows by ``factor`` and the offsets move to the centre of the
    first block.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    factor : int or (int, int)
        Binning along (y, x).
    reduce : {"mean", "sum"}
    """
    arr, img = _split(x)
    fy, fx = (factor, factor) if np.isscalar(factor) else tuple(factor)
    fy, fx = int(fy), int(fx)
    if fy < 1 or fx < 1:
        raise InputError(f"bin factor must be >= 1, got {factor}")
    if reduce not in ("mean", "sum"):
        raise InputError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    h, w = arr.shape[-2:]
    ny, nx = h // fy, w // fx
    if ny == 0 or nx == 0:
        raise InputError(f"bin factor {factor} is larger than the image ({h}x{w})")
    z = arr[..., : ny * fy, : nx * fx].astype(np.float64)
    z = z.reshape(*arr.shape[:-2], ny, fy, nx, fx)
    fin = np.isfinite(z)
    s = np.where(fin, z, 0.0).sum(axis=(-3, -1))
    n = fin.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = s / n if reduce == "mean" else s
    out = np.where(n > 0, out, np.nan).astype(_out_dtype(arr))
    axes = None
    if img is not None:
        ay, ax = img.axes[-2], img.axes[-1]
        axes = img.axes[:-2] + [
            replace(ay, size=ny, scale=ay.scale * fy, offset=ay.offset + (fy - 1) / 2 * ay.scale),
            replace(ax, size=nx, scale=ax.scale * fx, offset=ax.offset + (fx - 1) / 2 * ax.scale),
        ]
    return _wrap(out, img, "bin_image", axes=axes, factor=[fy, fx], reduce=reduce)


def crop_to_square(x, where: Literal["centre", "center", "start", "end"] = "centre"):
    """Crop the largest square: centred, at the start (top/left) or at the end (bottom/right).

    For a Micrograph the axis offsets follow the crop (via :meth:`Micrograph.crop`).
    """
    arr, img = _split(x)
    h, w = arr.shape[-2:]
    n = min(h, w)
    if where in ("centre", "center"):
        y0, x0 = (h - n) // 2, (w - n) // 2
    elif where == "start":
        y0, x0 = 0, 0
    elif where == "end":
        y0, x0 = h - n, w - n
    else:
        raise InputError(f"where must be 'centre', 'start' or 'end', got {where!r}")
    if img is not None:
        return img.crop(y0, y0 + n, x0, x0 + n)
    return arr[..., y0: y0 + n, x0: x0 + n].astype(_out_dtype(arr), copy=True)


def resize(x, shape: tuple[int, int], antialias: bool = True, order: int = 1):
    """Resize to ``shape = (rows, cols)`` with :func:`skimage.transform.resize`.

    Downsampling is Gaussian-antialiased when ``antialias``. NaN pixels are filled for the
    interpolation and put back (nearest-neighbour) afterwards. For a Micrograph the field of view is
    kept: the pixel size scales by the size ratio.

    Parameters
    ----------
    x : array_like, shape (y, x) or (n, y, x), or Micrograph
    shape : (int, int)
        Output (rows, cols).
    antialias : bool
    order : int
        Spline order (0 nearest, 1 bilinear, 3 bicubic).
    """
    from skimage.transform import resize as _sk_resize

    arr, img = _split(x)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"resize shape must be two positive integers, got {shape}")
    full = arr.shape[:-2] + shape
    z = arr.astype(np.float64)
    fin = np.isfinite(z)
    nan_mask = None
    if not fin.all():
        if not fin.any():
            raise InputError("cannot resize: no finite pixel (all NaN/inf)")
        z = np.where(fin, z, np.median(z[fin]))
        nan_mask = _sk_resize((~fin).astype(float), full, order=0, anti_aliasing=False) > 0.5
    out = _sk_resize(z, full, order=order, anti_aliasing=antialias, preserve_range=True, mode="reflect")
    if nan_mask is not None:
        out[nan_mask] = np.nan
    out = out.astype(_out_dtype(arr))
    axes = None
    if img is not None:
        axes = list(img.axes[:-2])
        for a, n in zip(img.axes[-2:], shape):
            s = a.scale * a.size / n
            axes.append(replace(a, size=n, scale=s, offset=a.offset - a.scale / 2 + s / 2))
    return _wrap(out, img, "resize", axes=axes, shape=list(shape), antialias=antialias, order=order)


def _describe(x: Any) -> str:  # pragma: no cover - debugging helper
    arr, _ = _split(x)
    return f"{arr.shape} {arr.dtype}"


# ----------------------------------------------------------------------------- unfinished scans
def crop_unscanned(img: Micrograph) -> Micrograph:
    """Crop away the all-NaN rows (unscanned lines of a scan stopped early).

    Parameters
    ----------
    img : Micrograph
        A 2-D image, e.g. from the MATRIX reader (:func:`scopenet.io.matrix.read_matrix`).

    Returns
    -------
    Micrograph
        The rows from the first to the last one holding any finite value; the pixel size is kept,
        the y offset follows, and a ``crop_unscanned`` provenance entry is appended. An image with
        no NaN row is returned as a copy with the same provenance entry.

    Raises
    ------
    InputError
        If the image is not 2-D or no row holds a finite value.
    """
    if img.ndim != 2:
        raise InputError(f"crop_unscanned needs a 2-D image, got shape {img.shape}")
    good = np.flatnonzero(np.isfinite(img.data).any(axis=1))
    if good.size == 0:
        raise InputError("crop_unscanned: every row of the image is NaN (nothing was scanned)")
    y0, y1 = int(good[0]), int(good[-1]) + 1
    out = img.crop(y0, y1, 0, img.shape[1])
    out.provenance[-1] = {**out.provenance[-1], "operation": "crop_unscanned"}
    return out
