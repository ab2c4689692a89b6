"""Frame-to-frame drift by phase correlation (scikit-image's ``phase_cross_correlation``, sub-pixel).

Convention: ``drift[t] = (dy, dx)`` is the displacement (px) of the content of frame ``t`` relative to
frame 0 (``drift[0] = (0, 0)``): a feature at ``(y, x)`` in frame 0 appears at ``(y + dy, x + dx)`` in
frame ``t``. :func:`correct_drift` moves every frame back.

>>> import numpy as np
>>> from scopenet.simulate.em.movies import shift_image
>>> rng = np.random.default_rng(0)
>>> a = np.asarray(__import__("scipy").ndimage.gaussian_filter(rng.random((64, 64)), 2))
>>> d = estimate_drift(np.stack([a, shift_image(a, 1.3, -2.7)]))
>>> np.round(d[1], 2).tolist()
[1.3, -2.7]
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from ...errors import InputError

__all__ = ["estimate_drift", "correct_drift", "frame_shift"]


def _window(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def _pc(a: np.ndarray, b: np.ndarray, upsample: int, window: bool) -> np.ndarray:
    from skimage.registration import phase_cross_correlation

    a = a - a.mean()
    b = b - b.mean()
    if window:
        w = _window(a.shape)
        a, b = a * w, b * w
    shift, _err, _phase = phase_cross_correlation(a, b, upsample_factor=int(upsample), normalization=None)
    return -np.asarray(shift, float)  # skimage gives the shift that registers moving onto reference


def _coarse_peak(a: np.ndarray, b: np.ndarray, centre: np.ndarray, radius: float, window: bool) -> np.ndarray:
    """Integer shift of ``b``'s content relative to ``a``: the phase-correlation peak within ``radius`` px of
    ``centre`` (periodic images assumed; a Hann window first)."""
    a = a - a.mean()
    b = b - b.mean()
    if window:
        w = _window(a.shape)
        a, b = a * w, b * w
    cross = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    r = np.fft.ifft2(cross / np.maximum(np.abs(cross), 1e-12)).real
    h, w_ = a.shape
    sy = np.fft.fftfreq(h) * h
    sx = np.fft.fftfreq(w_) * w_
    far = np.hypot(sy[:, None] - centre[0], sx[None, :] - centre[1]) > radius
    r[far] = -np.inf
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    return np.array([sy[iy], sx[ix]], float)


def frame_shift(reference: np.ndarray, moving: np.ndarray, *, upsample: int = 100, window: bool = True,
                iterations: int = 2, guess: tuple[float, float] | None = None,
                max_step: float | None = None) -> np.ndarray:
    """``(dy, dx)``: how far the content of ``moving`` is displaced relative to ``reference`` (px).

    Windowed phase correlation is biased toward zero shift (the window does not move with the content), so
    the estimate is refined: ``moving`` is moved back by the current estimate (cubic spline) and the
    residual shift of the inner region (the border the move exposed left out) is added, ``iterations``
    times; the bias shrinks with the residual (a residual over 2 px is taken for a false peak and ignored).

    ``guess`` and ``max_step``: look for the correlation peak only within ``max_step`` px of ``guess`` (the
    previous frame's drift), so that sparse moving objects matched to their neighbours cannot pull the
    estimate far away.
    """
    from scipy import ndimage

    a = np.asarray(reference, np.float64)
    b = np.asarray(moving, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"frames to register must be 2-D and of one shape, got {a.shape} and {b.shape}")
    if min(a.shape) < 8:
        raise InputError(f"frames of shape {a.shape} are too small to register")
    if max_step is not None:
        g = np.zeros(2) if guess is None else np.asarray(guess, float)
        d = _coarse_peak(a, b, g, float(max_step), window)
    else:
        d = _pc(a, b, upsample, window)
    for _ in range(max(0, int(iterations)) + (max_step is not None)):
        m = int(np.ceil(np.abs(d).max())) + 2
        if 2 * m + 8 > min(a.shape):
            break
        back = ndimage.shift(b, -d, order=3, mode="nearest")
        r = _pc(a[m:-m, m:-m], back[m:-m, m:-m], upsample, window)
        if np.abs(r).max() > 2:  # a refinement is a small correction; a jump is a false peak
            break
        d = d + r
    return d


def estimate_drift(frames, *, reference: Literal["first", "previous"] = "first", upsample: int = 100,
                   window: bool = True, highpass: float | None = 1.0, max_step: float | None = 8.0) -> np.ndarray:
    """The drift of every frame relative to the first, ``(T, 2)`` ``(dy, dx)`` px.

    Parameters
    ----------
    frames : array_like (T, H, W) or Micrograph stack
    reference : {"first", "previous"}
        Register each frame to the first (no accumulated error; needs content shared with frame 0) or to
        the previous frame, summing the shifts (follows content that changes).
    upsample : int
        Sub-pixel precision ``1 / upsample`` px.
    window : bool
        Multiply by a Hann window first (edges of non-periodic images would bias the correlation).
    highpass : float or None
        Subtract a Gaussian blur of this sigma (px) first: fine static texture (a support film, a lattice)
        then outweighs large moving objects, whose own motion would otherwise pull the estimate.
    max_step : float or None
        Largest change of the drift from one frame to the next (px); the correlation peak is sought only
        that close to the previous frame's drift (None: anywhere).
    """
    f = np.asarray(getattr(frames, "data", frames), np.float64)
    if f.ndim != 3 or f.shape[0] < 1:
        raise InputError(f"drift needs a (T, H, W) stack of frames, got shape {f.shape}")
    if reference not in ("first", "previous"):
        raise InputError(f"reference must be 'first' or 'previous', got {reference!r}")
    # a frame without contrast (blank, saturated) holds no drift: it keeps the previous frame's
    flat = f.std(axis=(1, 2)) <= 1e-6 * (np.abs(f).mean(axis=(1, 2)) + 1e-30)
    if flat.any():
        import warnings

        warnings.warn(f"{int(flat.sum())} of {len(f)} frames have no contrast; their drift is not measured "
                      "(each keeps the previous frame's)", stacklevel=2)
    if highpass:
        from scipy import ndimage

        f = f - ndimage.gaussian_filter(f, (0, float(highpass), float(highpass)))
    d = np.zeros((len(f), 2))
    for t in range(1, len(f)):
        if flat[t] or flat[0 if reference == "first" else t - 1]:
            d[t] = d[t - 1]
        elif reference == "first":
            d[t] = frame_shift(f[0], f[t], upsample=upsample, window=window, guess=d[t - 1], max_step=max_step)
        else:
            d[t] = d[t - 1] + frame_shift(f[t - 1], f[t], upsample=upsample, window=window, max_step=max_step)
    return d


def correct_drift(frames, drift: np.ndarray) -> np.ndarray:
    """Frames moved back by ``drift`` (Fourier shift; float32 ``(T, H, W)``)."""
    from ...simulate.em.movies import shift_image

    f = np.asarray(getattr(frames, "data", frames), np.float32)
    d = np.asarray(drift, float)
    if f.ndim != 3 or d.shape != (len(f), 2):
        raise InputError(f"drift of shape {d.shape} does not fit frames of shape {f.shape}")
    return np.stack([shift_image(fr, -dy, -dx) for fr, (dy, dx) in zip(f, d)])
