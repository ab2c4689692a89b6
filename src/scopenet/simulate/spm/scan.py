"""The raster scan: timing, drift and creep, scan noise, and line flattening.

The image is recorded line by line (forward fast-scan direction along x). Pixel ``(i, j)`` is
taken at time ``t = i + j / W`` (in line periods); everything time-dependent (drift, creep, tip
changes, 1/f noise) is a function of ``t``, so artefacts fall on lines the way they do on an
instrument.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft


def scan_times(shape: tuple[int, int]) -> np.ndarray:
    """Acquisition time of every pixel in line periods, float64 [H, W]: ``t[i, j] = i + j / W``."""
    h, w = shape
    return np.arange(h)[:, None] + np.arange(w)[None, :] / w


def drift_positions(shape: tuple[int, int], velocity: tuple[float, float] = (0.0, 0.0),
                    creep: tuple[float, float] = (0.0, 0.0), creep_tau: float = 10.0,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Where the tip really is when pixel ``(i, j)`` is recorded (image pixels).

    Parameters
    ----------
    shape : (int, int)
    velocity : (float, float)
        Thermal drift ``(vy, vx)`` in pixels per line period.
    creep : (float, float)
        Piezo creep amplitude ``(cy, cx)`` in pixels: the displacement ``c (1 - exp(-t / tau))``
        after an offset move just before the scan started.
    creep_tau : float
        Creep time constant (line periods).

    Returns
    -------
    y, x : ndarray, float64 [H, W]
        Surface coordinates (pixels) sampled by each image pixel.
    """
    t = scan_times(shape)
    h, w = shape
    c = 1.0 - np.exp(-t / max(creep_tau, 1e-6))
    y = np.arange(h)[:, None] + velocity[0] * t + creep[0] * c
    x = np.arange(w)[None, :] + velocity[1] * t + creep[1] * c
    return y, x


@lru_cache(maxsize=16)
def _log_rfftfreq(n: int) -> np.ndarray:
    f = sfft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    out = np.log(f)
    out.setflags(write=False)
    return out


def pink_noise(rng: np.random.Generator, n: int, alpha: float = 1.0) -> np.ndarray:
    """A time series with power spectrum ``1/f^alpha`` (zero mean, unit std), float64 [n]."""
    logf = _log_rfftfreq(n)
    amp = np.exp((-alpha / 2) * logf)
    spec = np.empty(len(logf), complex)
    spec.real = rng.standard_normal(len(logf))
    spec.imag = rng.standard_normal(len(logf))
    spec *= amp
    spec[0] = 0
    x = sfft.irfft(spec, n=n)
    sd = x.std()
    return x / sd if sd > 0 else x


def line_offsets(rng: np.random.Generator, n_lines: int, sigma_walk: float, sigma_jump: float = 0.0,
                 p_jump: float = 0.0) -> np.ndarray:
    """Per-line height offsets: a random walk plus occasional jumps, float64 [n_lines]."""
    steps = sigma_walk * rng.standard_normal(n_lines)
    if p_jump > 0 and sigma_jump > 0:
        steps += (rng.random(n_lines) < p_jump) * sigma_jump * rng.standard_normal(n_lines)
    return np.cumsum(steps)


def scars(rng: np.random.Generator, shape: tuple[int, int], n: int, amplitude: float) -> tuple[np.ndarray, list]:
    """Scars/streaks: short segments along scan lines where the feedback slipped.

    Each scar is a run of 3 to W/3 pixels on one line with a height ``+-amplitude * U(0.5, 2)``
    that decays exponentially along the line.

    Returns
    -------
    map : ndarray, float64 [H, W]
    scars : list of [line, start, length, height]
    """
    h, w = shape
    out = np.zeros(shape)
    info = []
    for _ in range(n):
        i = int(rng.integers(h))
        ln = int(rng.integers(3, max(4, w // 3)))
        j0 = int(rng.integers(0, max(1, w - 3)))
        amp = amplitude * rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0], p=[0.3, 0.7])
        j1 = min(w, j0 + ln)
        k = np.arange(j1 - j0)
        out[i, j0:j1] += amp * np.exp(-k / max(ln / 2, 1))
        info.append([i, j0, j1 - j0, float(amp)])
    return out, info


def flatten_lines(image: np.ndarray, order: int = 1) -> np.ndarray:
    """X-flattening as done by the acquisition software: subtract a per-line polynomial fit.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    order : int
        0 subtracts each line's mean, 1 a least-squares straight line (MATRIX's default line
        flattening removes offset and slope).

    Returns
    -------
    ndarray, float64, shape (H, W)
        Every line has zero mean (and zero slope for ``order=1``).
    """
    img = np.asarray(image, float)
    out = img - img.mean(axis=1, keepdims=True)
    if order >= 1 and img.shape[1] > 1:
        x = np.arange(img.shape[1], dtype=float)
        x -= x.mean()
        slope = out @ x / (x @ x)
        out = out - slope[:, None] * x[None, :]
    return out
