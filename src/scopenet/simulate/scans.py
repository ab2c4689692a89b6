"""Scan paths, sampling masks and partial-scan simulation.

Partial scans sample a subset of the pixels of a raster scan to cut electron dose and scan time.
This module builds the sampling masks used in J. M. Ede's partial-STEM work (thesis chapter 4,
*Partial Scanning Transmission Electron Microscopy with Deep Learning*, Sci. Rep. 10, 8332, 2020):
Archimedes spirals and jittered grid-like scans, plus uniform sub-lattices, random pixels, random line
segments and Lissajous curves; it applies them to images (binary and blurred-dwell selection),
completes them with a nearest-neighbour baseline, and estimates scan time and dose reduction.

Conventions
-----------
Masks are boolean arrays of shape ``(N, N)``, ``True`` where the probe dwells. Coverage is the
fraction of ``True`` pixels. Paths are float arrays of shape ``(n, 2)`` holding ``(row, col)``
positions in pixels, in the coordinates of the ``N x N`` field of view (a spiral path extends
beyond it). All random choices take a :class:`numpy.random.Generator`.

>>> import numpy as np
>>> m = spiral_mask(512, 1 / 16)
>>> round(1 / m.mean(), 1)
17.9
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from ..errors import InputError

MaskKind = Literal["spiral", "grid", "sublattice", "random", "segments", "lissajous"]
MASK_KINDS: tuple[str, ...] = ("spiral", "grid", "sublattice", "random", "segments", "lissajous")


def _check_size(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"scan size must be an integer >= 2, got {n!r}")
    return int(n)


def _check_coverage(c: float) -> float:
    c = float(c)
    if not (0.0 < c <= 1.0) or not math.isfinite(c):
        raise InputError(f"coverage must be in (0, 1], got {c!r}")
    return c


# --------------------------------------------------------------------------------------- spirals


def spiral_path(size: int, coverage: float, n_points: int = 10_000) -> np.ndarray:
    """Points of an Archimedes spiral that, cropped to ``size x size``, gives partial-STEM coverage.

    Construction of Ede (thesis ch. 4): a square canvas of side ``C = ceil(sqrt(2) * size)`` so that the
    spiral reaches the crop's corners; radius ``R = C / 2``; ``r = k * theta`` with
    ``k = 1 / (2 pi c)`` so successive turns are ``1/c`` px apart (an infinite 1-px path then covers
    the fraction ``c``); ``n_points`` equally spaced angles in ``[0, R/k)`` (end point excluded).

    Parameters
    ----------
    size : int
        Side ``N`` of the square field of view, px.
    coverage : float
        Nominal coverage ``c`` of the infinite spiral (e.g. 1/16).
    n_points : int
        Number of vertices of the polyline.

    Returns
    -------
    ndarray, shape (n_points, 2), float64
        ``(row, col)`` positions in crop coordinates (the crop starts at ``(C - N) // 2`` of the canvas);
        points outside ``[0, N)`` lie on the part of the spiral outside the field of view.
    """
    size = _check_size(size)
    c = _check_coverage(coverage)
    canvas = math.ceil(math.sqrt(2) * size)
    radius = canvas / 2
    k = 1.0 / (2 * math.pi * c)
    theta = np.linspace(0.0, radius / k, int(n_points), endpoint=False)
    r = k * theta
    off = (canvas - size) // 2
    rows = radius + r * np.sin(theta) - off
    cols = radius + r * np.cos(theta) - off
    return np.stack([rows, cols], axis=1)


@functools.lru_cache(maxsize=64)
def _spiral_mask_cached(size: int, coverage: float, n_points: int) -> np.ndarray:
    from skimage.draw import line

    canvas = math.ceil(math.sqrt(2) * size)
    off = (canvas - size) // 2
    pts = spiral_path(size, coverage, n_points) + off
    # vertices are truncated to integer pixels (int() of non-negative canvas coordinates)
    ij = np.clip(np.floor(pts).astype(np.int64), 0, canvas - 1)
    m = np.zeros((canvas, canvas), bool)
    for a, b in zip(ij[:-1], ij[1:]):
        rr, cc = line(a[0], a[1], b[0], b[1])
        m[rr, cc] = True
    m[ij[-1, 0], ij[-1, 1]] = True
    out = m[off:off + size, off:off + size].copy()
    out.flags.writeable = False
    return out


def spiral_mask(size: int, coverage: float, n_points: int = 10_000) -> np.ndarray:
    """Boolean mask of a 1-px Archimedes spiral (see :func:`spiral_path`) centre-cropped to ``size``.

    Successive vertices are truncated to integer canvas pixels and joined with
    :func:`skimage.draw.line`. On ``size=512`` nominal coverages 1/16, 1/25, 1/36, 1/49, 1/64, 1/81 and
    1/100 give actual coverages 1/17.9, 1/27.3, 1/38.2, 1/50.0, 1/60.5, 1/73.7 and 1/87.0, the
    values quoted in Ede's partial-STEM paper (Fig. 6 and Figs. S6-S12).

    Returns
    -------
    ndarray of bool, shape (size, size)
    """
    size = _check_size(size)
    c = _check_coverage(coverage)
    return _spiral_mask_cached(size, c, int(n_points)).copy()


def calibrate_spiral(size: int, target_coverage: float, rtol: float = 0.01,
                     n_points: int = 10_000, max_iter: int = 60) -> float:
    """Nominal spiral coverage whose cropped mask has actual coverage within ``rtol`` of the target.

    Actual coverage is below nominal (diagonal 1-px lines cover fewer pixels per unit length and the
    crop cuts the path), so the nominal value is found by bisection on ``log(c)``.

    Parameters
    ----------
    size : int
        Field-of-view side, px.
    target_coverage : float
        Wanted fraction of probed pixels, e.g. ``1/20``.
    rtol : float
        Relative tolerance on the actual coverage.

    Returns
    -------
    float
        Nominal coverage ``c`` to pass to :func:`spiral_mask`.

    Raises
    ------
    InputError
        If no nominal coverage within ``max_iter`` bisection steps reaches the tolerance.
    """
    size = _check_size(size)
    t = _check_coverage(target_coverage)

    def actual(c: float) -> float:
        return float(_spiral_mask_cached(size, c, n_points).mean())

    lo, hi = math.log(t * 0.5), math.log(min(1.0, t * 2.5))
    best, best_err = math.exp(hi), math.inf
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        c = math.exp(mid)
        a = actual(c)
        err = abs(a / t - 1)
        if err < best_err:
            best, best_err = c, err
        if err <= rtol:
            return c
        if a < t:
            lo = mid
        else:
            hi = mid
    if best_err <= rtol:  # pragma: no cover - loop returns first
        return best
    raise InputError(f"cannot reach spiral coverage {t:.4g} within {rtol:.1%} on {size} px "
                     f"(closest {best_err:.2%} off)")


# ----------------------------------------------------------------------------------- other masks


def _walk(n: int, half_width: int, rng: np.random.Generator) -> np.ndarray:
    """Integer random walk of ``n`` steps in {-1, 0, 1}, reflected into ``[-half_width, half_width]``."""
    if half_width <= 0:
        return np.zeros(n, np.int64)
    steps = rng.integers(-1, 2, size=n)
    pos = np.cumsum(steps)
    period = 4 * half_width
    start = rng.integers(-half_width, half_width + 1)
    # reflect (triangle wave) to stay in the channel; still moves by at most one per step
    p = np.mod(pos + start + half_width, period)
    return np.where(p <= 2 * half_width, p, period - p) - half_width


def jittered_grid_mask(size: int, coverage: float, rng: np.random.Generator,
                       channel: float = 0.5) -> np.ndarray:
    """Jittered grid-like scan: random-walk lines in channels, ORed with an independent transposed set.

    Each horizontal line has one probe per column and wanders by at most one row per column inside a
    channel of half-width ``channel * spacing / 2`` around its nominal row. With ``m`` lines per
    direction the coverage is about ``(2 m N - m^2) / N^2``; the needed number of lines is rounded up,
    split between the two directions, and the last line stops part-way so that the coverage matches
    ``coverage`` (to the pixel, unless crossings of the last line make it fall short).

    Returns
    -------
    ndarray of bool, shape (size, size)
    """
    size = _check_size(size)
    c = _check_coverage(coverage)
    # lines per direction m solving 2 m N - m^2 = c N^2; round the total up, then cut the last line
    m = size * (1 - math.sqrt(1 - c))
    total = max(1, int(math.ceil(2 * m)))
    n_h, n_v = total // 2 + total % 2, total // 2
    target = max(1, int(round(c * size * size)))
    lines = []  # (rows, cols) of every line, horizontal first then vertical
    idx = np.arange(size)
    for n_lines, transpose in ((n_h, False), (n_v, True)):
        if n_lines == 0:
            continue
        spacing = size / n_lines
        half = int(max(0, math.floor(channel * spacing / 2)))
        for i in range(n_lines):
            centre = int((i + 0.5) * spacing)
            walk = np.clip(centre + _walk(size, half, rng), 0, size - 1)
            lines.append((idx, walk) if transpose else (walk, idx))
    mask = np.zeros((size, size), bool)
    for rr, cc in lines[:-1]:
        mask[rr, cc] = True
    rr, cc = lines[-1]
    need = target - int(mask.sum())
    if need > 0:
        new = ~mask[rr, cc]
        take = np.flatnonzero(new)[:need]  # the last line stops part-way across the field
        mask[rr[take], cc[take]] = True
    return mask


def sublattice_mask(size: int, step: int | None = None, coverage: float | None = None,
                    offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Uniform sub-lattice: every ``step``-th pixel in rows and columns (coverage ``1/step^2``).

    Give either ``step`` or ``coverage`` (then ``step = round(1/sqrt(coverage))``).
    """
    size = _check_size(size)
    if step is None:
        if coverage is None:
            raise InputError("sublattice_mask needs step or coverage")
        step = max(1, int(round(1 / math.sqrt(_check_coverage(coverage)))))
    if step < 1:
        raise InputError(f"sub-lattice step must be >= 1, got {step}")
    m = np.zeros((size, size), bool)
    m[offset[0] % step::step, offset[1] % step::step] = True
    return m


def random_pixels_mask(size: int, coverage: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``round(coverage * size^2)`` distinct pixels chosen uniformly at random."""
    size = _check_size(size)
    c = _check_coverage(coverage)
    n = max(1, int(round(c * size * size)))
    idx = rng.choice(size * size, size=n, replace=False)
    m = np.zeros(size * size, bool)
    m[idx] = True
    return m.reshape(size, size)


def random_segments_mask(size: int, coverage: float, rng: np.random.Generator,
                         length: tuple[float, float] = (0.05, 0.3)) -> np.ndarray:
    """Random straight 1-px segments until ``coverage`` is reached exactly (the last one is cut short).

    Parameters
    ----------
    length : (float, float)
        Segment length range as fractions of ``size``.
    """
    from skimage.draw import line

    size = _check_size(size)
    c = _check_coverage(coverage)
    target = max(1, int(round(c * size * size)))
    m = np.zeros((size, size), bool)
    count = 0
    while count < target:
        r0, c0 = rng.uniform(0, size, 2)
        ang = rng.uniform(0, 2 * np.pi)
        ln = rng.uniform(*length) * size
        r1 = np.clip(r0 + ln * np.sin(ang), 0, size - 1)
        c1 = np.clip(c0 + ln * np.cos(ang), 0, size - 1)
        rr, cc = line(int(r0), int(c0), int(r1), int(c1))
        new = ~m[rr, cc]
        rr, cc = rr[new], cc[new]
        # drop repeats inside the segment itself, keeping path order
        flat, first = np.unique(rr * size + cc, return_index=True)
        order = np.sort(first)
        rr, cc = rr[order], cc[order]
        take = min(len(rr), target - count)
        m[rr[:take], cc[:take]] = True
        count += take
    return m


def lissajous_path(size: int, duration: float, fx: float = 1.0, fy: float = (1 + 5 ** 0.5) / 2,
                   phase: float = np.pi / 2, step_px: float = 0.5) -> np.ndarray:
    """Lissajous path ``x = sin(2 pi fx t + phase)``, ``y = sin(2 pi fy t)`` for ``t`` in ``[0, duration]``.

    Returns
    -------
    ndarray, shape (n, 2)
        ``(row, col)`` positions in ``[0, size - 1]``, sampled every ``<= step_px`` px along the path.
    """
    size = _check_size(size)
    amp = (size - 1) / 2
    vmax = 2 * np.pi * amp * max(fx, fy) * math.sqrt(2)  # upper bound on speed, px per unit t
    n = max(2, int(math.ceil(duration * vmax / step_px)) + 1)
    t = np.linspace(0.0, duration, n)
    return np.stack([amp * (1 + np.sin(2 * np.pi * fy * t)),
                     amp * (1 + np.sin(2 * np.pi * fx * t + phase))], axis=1)


def _rasterize_points(pts: np.ndarray, size: int) -> np.ndarray:
    ij = np.rint(pts).astype(np.int64)
    ok = (ij >= 0).all(1) & (ij < size).all(1)
    m = np.zeros((size, size), bool)
    m[ij[ok, 0], ij[ok, 1]] = True
    return m


def lissajous_mask(size: int, coverage: float, fx: float = 1.0, fy: float = (1 + 5 ** 0.5) / 2,
                   phase: float = np.pi / 2, rtol: float = 0.01) -> np.ndarray:
    """Lissajous scan whose duration is bisected until the coverage is within ``rtol`` of the target.

    With an irrational frequency ratio (golden ratio by default) the curve never closes and fills the
    field of view progressively, so coverage grows monotonically with duration.
    """
    size = _check_size(size)
    c = _check_coverage(coverage)
    lo, hi = 0.0, 1.0
    while _rasterize_points(lissajous_path(size, hi, fx, fy, phase), size).mean() < c:
        lo, hi = hi, hi * 2
        if hi > 1e5:
            raise InputError(f"Lissajous scan cannot reach coverage {c}")
    best = None
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        m = _rasterize_points(lissajous_path(size, mid, fx, fy, phase), size)
        a = m.mean()
        if best is None or abs(a / c - 1) < abs(best.mean() / c - 1):
            best = m
        if abs(a / c - 1) <= rtol:
            return m
        lo, hi = (mid, hi) if a < c else (lo, mid)
    return best


def make_mask(kind: str, size: int, coverage: float, rng: np.random.Generator | None = None,
              **kwargs) -> np.ndarray:
    """One entry point for all sampling masks.

    Parameters
    ----------
    kind : {"spiral", "grid", "sublattice", "random", "segments", "lissajous"}
        ``"spiral"`` is calibrated so its *actual* coverage is within 1 % of ``coverage``
        (use :func:`spiral_mask` for Ede's nominal coverages).
    size : int
        Field-of-view side ``N``, px.
    coverage : float
        Requested fraction of probed pixels.
    rng : numpy.random.Generator, optional
        Needed by the random kinds; a fixed default is used when omitted.
    **kwargs
        Passed to the specific mask builder.

    Returns
    -------
    ndarray of bool, shape (size, size)
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    if kind == "spiral":
        return spiral_mask(size, calibrate_spiral(size, coverage), **kwargs)
    if kind in ("grid", "jittered_grid"):
        return jittered_grid_mask(size, coverage, rng, **kwargs)
    if kind == "sublattice":
        return sublattice_mask(size, coverage=coverage, **kwargs)
    if kind == "random":
        return random_pixels_mask(size, coverage, rng)
    if kind == "segments":
        return random_segments_mask(size, coverage, rng, **kwargs)
    if kind == "lissajous":
        return lissajous_mask(size, coverage, **kwargs)
    raise InputError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)}")


# ------------------------------------------------------------------------------- partial scans


def _check_pair(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.shape[-2:] != mask.shape[-2:]:
        raise InputError(f"image shape {image.shape} and mask shape {mask.shape} differ")
    return image, mask


def partial_scan(image: np.ndarray, mask: np.ndarray, mode: str = "binary",
                 rng: np.random.Generator | None = None, blur_sigma: float = 1.0) -> np.ndarray:
    """Select a partial scan from a full raster scan.

    Following Ede (2020, thesis ch. 4, "Data pipeline"): ``"binary"`` gives ``I_scan = Phi * I``
    (eq. 1). ``"blurred_dwell"`` simulates varying dwell times with non-physical noise:
    ``I_scan = Phi * I * eta`` with ``eta = Phi + (1 - Phi) * U``, ``U ~ Uniform[0, 2)`` per pixel,
    where ``Phi`` is a blurred mask in ``[0, 1]``. A boolean ``mask`` is blurred with a Gaussian of
    ``blur_sigma`` px, scaled to 1 at its peak and set to exactly 1 on the scan path, so scanned pixels
    keep their value (``Phi = eta = 1``) and pixels far from the path stay 0. A float mask is used as
    ``Phi`` directly.

    Parameters
    ----------
    image : ndarray, shape (..., H, W)
    mask : ndarray, shape (H, W) or broadcastable; bool, or float in [0, 1]
    mode : {"binary", "blurred_dwell"}
    rng : numpy.random.Generator, optional (used by ``"blurred_dwell"``)
    blur_sigma : float
        Gaussian blur of a boolean mask for ``"blurred_dwell"``, px.

    Returns
    -------
    ndarray, float32, shape of ``image``
    """
    image, mask = _check_pair(image, mask)
    img = image.astype(np.float32)
    if mode == "binary":
        return img * (mask > 0)
    if mode == "blurred_dwell":
        rng = rng if rng is not None else np.random.default_rng()
        if mask.dtype == bool:
            m = mask.astype(np.float32)
            sig = (0,) * (m.ndim - 2) + (blur_sigma, blur_sigma)
            phi = ndimage.gaussian_filter(m, sig)
            peak = phi.max(axis=(-2, -1), keepdims=True)
            phi = np.clip(phi / np.where(peak > 0, peak, 1), 0, 1)
            phi[mask] = 1.0
        else:
            phi = np.clip(mask.astype(np.float32), 0, 1)
        u = rng.uniform(0.0, 2.0, size=np.broadcast_shapes(img.shape, phi.shape)).astype(np.float32)
        eta = phi + (1 - phi) * u
        return (img * phi * eta).astype(np.float32)
    raise InputError(f"unknown partial-scan mode {mode!r}; use 'binary' or 'blurred_dwell'")


def nn_infill(partial: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill every unscanned pixel with the value of the nearest scanned pixel (Euclidean).

    Uses :func:`scipy.ndimage.distance_transform_edt` with ``return_indices``; scanned pixels are
    returned unchanged.

    Parameters
    ----------
    partial : ndarray, shape (H, W) or (B, H, W)
    mask : ndarray of bool, shape (H, W) or (B, H, W)

    Returns
    -------
    ndarray, shape of ``partial``
    """
    partial, mask = _check_pair(partial, mask)
    mask = mask.astype(bool)
    if partial.ndim == 3:
        masks = np.broadcast_to(mask, partial.shape)
        return np.stack([nn_infill(p, m) for p, m in zip(partial, masks)])
    if partial.ndim != 2:
        raise InputError(f"nn_infill expects (H, W) or (B, H, W), got {partial.shape}")
    if not mask.any():
        raise InputError("nn_infill: mask has no scanned pixels")
    idx = ndimage.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    return partial[idx[0], idx[1]]


def with_mask_channel(partial: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Stack a partial scan and its mask as channels: ``(H, W) -> (2, H, W)``, ``(B, H, W) -> (B, 2, H, W)``."""
    partial, mask = _check_pair(partial, mask)
    mask = np.broadcast_to(mask.astype(np.float32), partial.shape)
    axis = 0 if partial.ndim == 2 else 1
    return np.stack([partial.astype(np.float32), mask], axis=axis)


# ------------------------------------------------------------------------------------ scan time


@dataclass
class ScanTime:
    """Scan-time and dose estimate for one partial scan, against a full raster of the same field.

    Times in seconds, lengths in pixels. ``dose_reduction`` is the full raster's probed positions over
    this scan's (beam blanked while jumping), ``time_reduction`` the raster time over this scan's.
    """

    path_length_px: float
    n_probed: int
    n_jumps: int
    time_s: float
    raster_time_s: float
    time_reduction: float
    dose_reduction: float

    def as_dict(self) -> dict:
        return asdict(self)


def _raster_time(size: int, dwell: float, flyback: float) -> float:
    return size * size * dwell + size * flyback


def scan_time(mask_or_path: np.ndarray, dwell: float = 1e-6, flyback: float = 50e-6,
              speed: float = 1e6, settle: float = 2e-6, size: int | None = None,
              jump_px: float = math.inf) -> ScanTime:
    """Time and dose of a scan, and reduction factors against a full raster.

    Model: the probe dwells ``dwell`` s per pixel of path while acquiring (so a path of length ``L`` px
    takes ``L * dwell``); a move between non-adjacent positions is a blanked jump costing
    ``settle + distance / speed``. A full raster of ``N x N`` pixels takes
    ``N^2 * dwell + N * flyback`` (one line fly-back per row).

    Parameters
    ----------
    mask_or_path : ndarray
        Either a boolean mask ``(N, N)`` (pixels visited in raster order; each break in a row or a row
        change is a jump) or an ordered path ``(n, 2)`` of ``(row, col)`` positions in px, scanned
        continuously along its polyline (the probe dose inside the field of view is the path length
        inside it, in px).
    dwell : float
        Dwell time per pixel, s.
    flyback : float
        Raster line fly-back time, s.
    speed : float
        Blanked jump speed, px/s.
    settle : float
        Beam settling time per jump, s.
    size : int, optional
        Field of view side for a path (default: from the path's extent).
    jump_px : float
        Path steps longer than this are blanked jumps rather than scanned segments.

    Returns
    -------
    ScanTime
    """
    arr = np.asarray(mask_or_path)
    if arr.ndim == 2 and arr.shape[1] == 2 and arr.dtype != bool and arr.shape[0] != 2:
        pts = arr.astype(np.float64)
        if len(pts) < 2:
            raise InputError("a scan path needs at least 2 points")
        seg = np.diff(pts, axis=0)
        steps = np.hypot(seg[:, 0], seg[:, 1])
        jump = steps > jump_px
        length = float(steps[~jump].sum())
        n_jumps = int(jump.sum())
        jump_time = float((settle + steps[jump] / speed).sum())
        n = size if size is not None else int(math.ceil(np.ptp(pts, axis=0).max())) + 1
        # dose inside the field of view: path length of the segments whose midpoints lie inside
        mid = 0.5 * (pts[1:] + pts[:-1])
        inside = ((mid >= 0) & (mid < n)).all(1) & ~jump
        n_probed = int(round(steps[inside].sum()))
        t = length * dwell + jump_time
    elif arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
        m = arr.astype(bool)
        n = m.shape[0]
        r, c = np.nonzero(m)  # raster order
        n_probed = int(len(r))
        if n_probed == 0:
            raise InputError("scan_time: mask has no probed pixels")
        adjacent = (np.diff(r) == 0) & (np.diff(c) == 1)
        dist = np.hypot(np.diff(r), np.diff(c))[~adjacent]
        n_jumps = int(len(dist))
        length = float(n_probed)
        t = n_probed * dwell + float((settle + dist / speed).sum())
    else:
        raise InputError(f"scan_time expects a square mask (N, N) or a path (n, 2); got shape {arr.shape}")
    raster = _raster_time(n, dwell, flyback)
    return ScanTime(path_length_px=length, n_probed=n_probed, n_jumps=n_jumps, time_s=float(t),
                    raster_time_s=raster, time_reduction=raster / t if t > 0 else math.inf,
                    dose_reduction=(n * n) / max(n_probed, 1))


# --------------------------------------------------------------------------------------- output


def simulate_batch(n: int, size: int = 512, seed: int = 0, kind: str = "spiral",
                   coverage: float = 1 / 20, start: int = 0, tick=None) -> dict:
    """``n`` masks of one kind (``kind="mixed"`` draws a kind per mask), reproducible from ``seed``.

    Mask ``i`` depends only on ``(seed, start + i)``; ``tick`` is called with 1 after each mask.

    Returns
    -------
    dict
        ``"masks"`` bool ``(n, size, size)``, ``"kinds"`` list of str, ``"coverage"`` float64 ``(n,)``
        actual coverages.
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    if kind != "mixed" and kind not in MASK_KINDS + ("jittered_grid",):
        raise InputError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)} or mixed")
    masks = np.zeros((n, size, size), bool)
    kinds = []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, start + i]))
        k = MASK_KINDS[rng.integers(len(MASK_KINDS))] if kind == "mixed" else kind
        masks[i] = make_mask(k, size, coverage, rng)
        kinds.append(k)
        if tick is not None:
            tick(1)
    return {"masks": masks, "kinds": kinds, "coverage": masks.reshape(n, -1).mean(1)}


def gallery_png(seed: int = 0, size: int = 256, coverage: float = 1 / 20) -> bytes:
    """PNG of every mask kind at one coverage, plus a spiral partial scan and its NN infill."""
    from ..report import image_grid

    rng = np.random.default_rng(seed)
    imgs, titles = [], []
    for k in MASK_KINDS:
        m = make_mask(k, size, coverage, rng)
        imgs.append(m.astype(np.float32))
        titles.append(f"{k} ({1 / m.mean():.1f} px/probe)")
    yy, xx = np.mgrid[:size, :size] / size
    img = (0.5 + 0.25 * np.sin(40 * xx) * np.cos(30 * yy) + 0.25 * xx).astype(np.float32)
    m = spiral_mask(size, 1 / 16)
    imgs += [partial_scan(img, m), nn_infill(partial_scan(img, m), m)]
    titles += ["spiral partial scan", "nearest-neighbour infill"]
    return image_grid(imgs, titles, ncols=4, robust=False)


def write_dataset(out_dir, n: int, seed: int = 0, size: int = 512, kind: str = "spiral",
                  coverage: float = 1 / 20, shard_size: int = 1000, progress: bool = True,
                  overwrite: bool = False):
    """Write ``n`` masks as ``.npz`` shards plus ``manifest.json`` (see :func:`simulate_batch`)."""
    from ._shards import write_shards

    def make(start: int, count: int, tick=None) -> dict:
        b = simulate_batch(count, size, seed, kind, coverage, start=start, tick=tick)
        return {"masks": b["masks"], "kinds": np.array(b["kinds"]), "coverage": b["coverage"]}

    return write_shards(out_dir, n, make, shard_size=shard_size, progress=progress, overwrite=overwrite,
                        meta={"generator": "scopenet.simulate.scans", "kind": kind, "size": size,
                              "coverage": coverage, "seed": seed})
