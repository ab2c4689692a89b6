"""Classical completions of partial scans: the methods the learned model must beat.

Every function takes a partial scan ``(H, W)`` (values at scanned pixels, anything elsewhere) and a
boolean mask ``(H, W)`` (``True`` where scanned) and returns a float32 completion ``(H, W)``. The
scattered-data and NN methods return the scanned pixels unchanged.
"""
from __future__ import annotations

import numpy as np
from scipy import interpolate, ndimage

from ...errors import InputError
from ...simulate.scans import nn_infill


def check_scan(partial, mask) -> tuple[np.ndarray, np.ndarray]:
    """Validate a partial scan and its mask: same 2-D shape, finite scanned values, >= 1 scanned pixel."""
    partial = np.asarray(partial)
    mask = np.asarray(mask)
    if partial.ndim != 2:
        raise InputError(f"a partial scan must be a 2-D image, got shape {partial.shape}")
    if mask.shape != partial.shape:
        raise InputError(f"mask shape {mask.shape} differs from scan shape {partial.shape}")
    mask = mask > 0 if mask.dtype != bool else mask
    if not mask.any():
        raise InputError("the mask has no scanned pixels (all zero)")
    p = partial.astype(np.float32)
    if not np.isfinite(p[mask]).all():
        raise InputError("the partial scan has non-finite values at scanned pixels")
    return p, mask


def nearest(partial, mask) -> np.ndarray:
    """Nearest-neighbour infill (Euclidean), :func:`scopenet.simulate.scans.nn_infill`."""
    p, m = check_scan(partial, mask)
    return nn_infill(p, m).astype(np.float32)


_TRI_CACHE: dict[bytes, object] = {}


def _triangulation(mask: np.ndarray):
    """Delaunay triangulation of the scanned pixels, cached per mask (the same path serves many images)."""
    import hashlib

    from scipy.spatial import Delaunay

    key = hashlib.sha1(np.packbits(mask).tobytes() + str(mask.shape).encode()).digest()
    if key not in _TRI_CACHE:
        if len(_TRI_CACHE) > 8:
            _TRI_CACHE.pop(next(iter(_TRI_CACHE)))
        _TRI_CACHE[key] = Delaunay(np.argwhere(mask).astype(np.float64))
    return _TRI_CACHE[key]


def _griddata(partial, mask, method: str) -> np.ndarray:
    p, m = check_scan(partial, mask)
    if m.sum() < 4:
        return nearest(p, m)
    vals = p[m].astype(np.float64)
    grid = np.argwhere(np.ones_like(m)).astype(np.float64)
    try:
        tri = _triangulation(m)
        interp = (interpolate.LinearNDInterpolator(tri, vals) if method == "linear"
                  else interpolate.CloughTocher2DInterpolator(tri, vals))
        out = interp(grid).reshape(m.shape)
    except Exception:  # degenerate (collinear) samples: Qhull fails
        return nearest(p, m)
    hole = ~np.isfinite(out)  # outside the convex hull of the samples
    if hole.any():
        out[hole] = nn_infill(p, m)[hole]
    out[m] = p[m]
    return out.astype(np.float32)


def linear(partial, mask) -> np.ndarray:
    """Piecewise-linear interpolation on the Delaunay triangulation of the samples (scipy ``griddata``);
    NN infill outside their convex hull."""
    return _griddata(partial, mask, "linear")


def cubic(partial, mask) -> np.ndarray:
    """Clough-Tocher C1 cubic interpolation (scipy ``griddata``); NN infill outside the convex hull."""
    return _griddata(partial, mask, "cubic")


def biharmonic(partial, mask, max_side: int | None = None) -> np.ndarray:
    """scikit-image biharmonic inpainting (:func:`skimage.restoration.inpaint_biharmonic`).

    Slow on large images; with ``max_side`` the image is processed in ``max_side``-px tiles
    (overlapping by 1/8) and blended, which changes the result only near tile seams.
    """
    from skimage.restoration import inpaint_biharmonic

    p, m = check_scan(partial, mask)
    if max_side is None or max(p.shape) <= max_side:
        out = inpaint_biharmonic(p, ~m)
        out[m] = p[m]
        return out.astype(np.float32)
    ov = max_side // 8
    out = np.zeros(p.shape, np.float64)
    wsum = np.zeros(p.shape, np.float64)
    step = max_side - ov
    for r in range(0, max(p.shape[0] - ov, 1), step):
        for c in range(0, max(p.shape[1] - ov, 1), step):
            r1, c1 = min(r + max_side, p.shape[0]), min(c + max_side, p.shape[1])
            r0, c0 = max(r1 - max_side, 0), max(c1 - max_side, 0)
            mt = m[r0:r1, c0:c1]
            t = nn_infill(p[r0:r1, c0:c1], mt) if not mt.any() else inpaint_biharmonic(p[r0:r1, c0:c1], ~mt)
            out[r0:r1, c0:c1] += t
            wsum[r0:r1, c0:c1] += 1
    out /= wsum
    out[m] = p[m]
    return out.astype(np.float32)


def _div(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Backward-difference divergence, the negative adjoint of the forward-difference gradient (Neumann)."""
    d = px.copy()
    d[:, 1:] -= px[:, :-1]
    d[1:, :] += py[1:, :] - py[:-1, :]
    d[0, :] += py[0, :]
    return d


def tv(partial, mask, n_iter: int = 200) -> np.ndarray:
    """Total-variation inpainting: minimise ``TV(u)`` subject to ``u = partial`` on the mask.

    Chambolle-Pock primal-dual iterations (isotropic TV, forward differences, Neumann borders,
    ``tau = sigma = 0.35`` so ``tau * sigma * ||grad||^2 < 1``), started from the NN infill; the scanned
    pixels are kept exactly (projection after each primal step).

    Parameters
    ----------
    n_iter : int
        Primal-dual iterations.
    """
    p, m = check_scan(partial, mask)
    u = nn_infill(p, m).astype(np.float64)
    ubar = u.copy()
    qx = np.zeros_like(u)
    qy = np.zeros_like(u)
    tau = sigma = 0.35
    for _ in range(n_iter):
        gx = np.zeros_like(u)
        gy = np.zeros_like(u)
        gx[:, :-1] = ubar[:, 1:] - ubar[:, :-1]
        gy[:-1, :] = ubar[1:, :] - ubar[:-1, :]
        qx += sigma * gx
        qy += sigma * gy
        norm = np.maximum(1.0, np.sqrt(qx * qx + qy * qy))
        qx /= norm
        qy /= norm
        qx[:, -1] = 0
        qy[-1, :] = 0
        u_new = u + tau * _div(qx, qy)
        u_new[m] = p[m]
        ubar = 2 * u_new - u
        u = u_new
    return u.astype(np.float32)


def is_sublattice(mask) -> int | None:
    """The step ``s`` if ``mask`` is a uniform sub-lattice (every ``s``-th row and column from (0, 0)), else None."""
    m = np.asarray(mask).astype(bool)
    rows = np.flatnonzero(m.any(1))
    if len(rows) < 2:
        return None
    s = int(rows[1] - rows[0])
    if s < 1:
        return None
    ref = np.zeros_like(m)
    ref[rows[0]::s, rows[0]::s] = True
    return s if np.array_equal(ref, m) else None


def bicubic(partial, mask) -> np.ndarray:
    """Bicubic (cubic spline, order 3) upsampling of a regular sub-lattice scan.

    The samples at ``mask[r0::s, r0::s]`` form a low-resolution image, interpolated exactly through the
    samples at the full grid; raises ``InputError`` if the mask is not a uniform sub-lattice.
    """
    p, m = check_scan(partial, mask)
    s = is_sublattice(m)
    if s is None:
        raise InputError("bicubic completion needs a uniform sub-lattice mask (every s-th row and column)")
    r0 = int(np.flatnonzero(m.any(1))[0])
    low = p[r0::s, r0::s]
    yi = (np.arange(p.shape[0]) - r0) / s
    xi = (np.arange(p.shape[1]) - r0) / s
    yy, xx = np.meshgrid(yi, xi, indexing="ij")
    out = ndimage.map_coordinates(low.astype(np.float64), [yy, xx], order=3, mode="nearest", prefilter=True)
    out[m] = p[m]
    return out.astype(np.float32)


def sparse_fourier(partial, mask, start=None, n_iter: int = 60, keep: tuple[float, float] = (1e-4, 2e-3)
                   ) -> np.ndarray:
    """Completion by sparsity in Fourier space (iterative hard thresholding with data consistency).

    Crystalline specimens image as a few sharp Bragg peaks in the Fourier transform, which a sparse
    scan samples everywhere along its path. Starting from ``start`` (default: :func:`linear`), each
    iteration keeps only the strongest fraction of the Fourier coefficients of the current estimate
    (rising geometrically from ``keep[0]`` to ``keep[1]`` of the ``rfft2`` coefficients over the
    iterations, so the lattice is fixed first and finer structure later), transforms back, and
    resets the scanned pixels to their measured values (Papoulis-Gerchberg / POCS style, as in
    compressed-sensing STEM).

    Much better than interpolation on periodic images, worse on amorphous or biological ones:
    :class:`~scopenet.tasks.inpaint.model.Inpainter` applies it only when a check on the scan itself
    says it helps. ``n_iter`` and ``keep`` were chosen on the em-real *training* images
    (``benchmarks/results/inpaint.md``, tenth session). About 0.2 s for 512x512 on one CPU thread.
    """
    p, m = check_scan(partial, mask)
    if not 0 < keep[0] <= keep[1] <= 1:
        raise InputError(f"keep must be fractions 0 < keep[0] <= keep[1] <= 1, got {keep}")
    x = (linear(p, m) if start is None else np.asarray(start, np.float32)).astype(np.float32).copy()
    if x.shape != p.shape:
        raise InputError(f"start shape {x.shape} differs from scan shape {p.shape}")
    from scipy import fft as sfft

    mu = np.float32(p[m].mean())
    for it in range(max(int(n_iter), 1)):
        f = sfft.rfft2(x - mu, workers=-1)  # float32 in, complex64 out
        frac = keep[0] * (keep[1] / keep[0]) ** (it / max(1, n_iter - 1))
        a = np.abs(f)
        k = max(1, int(frac * a.size))
        thr = np.partition(a.ravel(), a.size - k)[a.size - k]
        f[a < thr] = 0
        x = sfft.irfft2(f, s=x.shape, workers=-1) + mu
        x[m] = p[m]
    return x.astype(np.float32)


#: name -> function for the benchmark (bicubic only applies to sub-lattice masks)
BASELINES = {"nearest": nearest, "linear": linear, "cubic": cubic, "biharmonic": biharmonic, "tv": tv}
